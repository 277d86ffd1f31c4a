"""The Hugging Face Space folder: app.py, the inference code it needs (no training code), the bundle, a README."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

from .. import __version__
from .bundle import save_bundle
from .card import model_card, page_title
from .service import AppModel

PACKAGE = Path(__file__).resolve().parents[1]
# What the Space's app imports, and nothing else: no engine, train, schedule, lr_finder, augment, loaders.
VENDORED = ("inference.py", "images.py", "analysis.py", "model_file.py", "models.py", "validate.py", "device.py",
            "files.py", "data/index.py", "app/service.py", "app/bundle.py", "app/card.py", "app/ui.py")  # fmt: skip
STUBS = {  # the __init__ files, without the names of the modules left out
    "__init__.py": '"""eva_helpers as this Space needs it: inference, Grad-CAM and the app, no training code."""'
    f'\n\n__version__ = "{__version__}"\n',
    "data/__init__.py": '"""The part of eva_helpers.data that inference needs: index.py, which files are images."""\n',
    "app/__init__.py": '"""The app as this Space runs it: service (what it computes), bundle, card, ui."""\n',
}
APP_PY = '''"""The Space: the model in this folder, served by eva_helpers.app (the copy beside this file)."""

from pathlib import Path

from eva_helpers.app.bundle import load_folder
from eva_helpers.app.ui import app_threads, build_ui, serve

demo = build_ui(app=load_folder(folder=Path(__file__).resolve().parent, device="auto"))

if __name__ == "__main__":
    # host=None: $GRADIO_SERVER_NAME (a Space sets 0.0.0.0), else localhost; the port is $GRADIO_SERVER_PORT or 7860.
    serve(demo=demo, host=None, threads=app_threads())  # the Space's CPU quota (2 on the free tier), else 1
'''
REQUIREMENTS = """# What app.py imports. torch has a lower bound only: the registry's default build runs on CPU and GPU.
torch>=2.4
torchvision>=0.19
numpy>=1.26
pillow>=10
grad-cam>=1.5
torchinfo>=1.8
safetensors>=0.4
gradio>={gradio},<{next_major}
"""


def gradio_version() -> str:
    """The installed Gradio's version: the Space's sdk_version, the one the app was tested with."""
    return importlib.metadata.version("gradio")


def repository() -> str:
    """'[eva_helpers](URL)' with the repository URL of pyproject.toml's [project.urls], or 'eva_helpers'."""
    try:
        urls = importlib.metadata.metadata("eva-helpers").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        urls = []
    url = next((u.split(",", 1)[1].strip() for u in urls if u.lower().startswith("repository,")), None)
    return f"[eva_helpers]({url})" if url else "eva_helpers"


def space_readme(*, app: AppModel, title: str) -> str:
    """README.md with the Space's front matter: what the app does, how the model was trained, how to push it."""
    meta = app.meta
    short = f"{meta['data'].get('dataset', 'image')} {meta['model']}".replace("_", " ")[:28]
    front = ["---", f"title: {short}", "emoji: 🔍", "colorFrom: blue", "colorTo: gray", "sdk: gradio",
             f"sdk_version: {gradio_version()}", "app_file: app.py", "pinned: false", "---"]  # fmt: skip
    body = f"""# {title}

A {meta["model"]} trained on {meta["data"].get("dataset", "its data")} with
{repository()}, in a Gradio app:

- **One image**: upload any image (any size or colour mode; it is prepared exactly as in evaluation) or pick one
  of the {len(app.examples)} examples; see the top k classes (k up to {app.max_k}) and, on request, Grad-CAM from
  the layers you choose ({", ".join(app.layer_names)}) at the opacity you choose, for the predicted class and for
  a class you pick.
- **Many images**: several files at once give a table (file, top class, probability) and a CSV to download.
- **Mistakes**: the held-out images the model gets wrong ({len(app.mistakes)} kept, computed at export, not per
  request), as many as you ask for, captioned true and predicted class, with Grad-CAM for both if you like.
- **The model**: what is below, with the confusion matrix, the accuracy per class and the training curves.

This folder holds no training code: `eva_helpers/` here is the inference, Grad-CAM and app part of the package.
The weights are `model.safetensors` (no pickle is loaded), `meta.json` says how to prepare an image.

{model_card(app)}
## Run it here

```bash
python -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python app.py
```

It listens on localhost (`GRADIO_SERVER_NAME=0.0.0.0` makes it listen on every interface, as a Space does).

## Push it to a Space

Create a Space with the Gradio SDK on the Hub, then from this folder:

```bash
hf auth login                                   # a token with write access
hf upload <your-name>/<space-name> . . --repo-type space
```

or with git: `git clone` the Space's repository, copy this folder's files into it, `git lfs track
"*.safetensors"`, then `git add . && git commit -m "app" && git push`.
"""
    return "\n".join(front) + "\n" + body


def machine_paths(folder: Path) -> list[str]:
    """'file: string' for every text file in `folder` that names this machine's home or working folders."""
    needles = {s for s in (str(Path.home()), str(PACKAGE.parent), os.getcwd(), "/work/") if len(s) > 1}
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".md", ".json", ".txt", ".csv"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(folder)}: {n}" for n in sorted(needles) if n in text]
    return found


def export_space(*, app: AppModel, out: str | Path, title: str | None = None) -> Path:
    """Write the Space folder for `app` into `out`: it runs on its own with `pip install -r requirements.txt`."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "app.py").is_file():
        raise FileExistsError(f"{out} holds other files; choose a new folder for the Space (or empty this one).")
    shutil.rmtree(out / "eva_helpers", ignore_errors=True)
    save_bundle(app=app, folder=out)
    for rel in VENDORED:
        (out / "eva_helpers" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / rel, out / "eva_helpers" / rel)
    for rel, text in STUBS.items():
        (out / "eva_helpers" / rel).write_text(text, encoding="utf-8")
    version = gradio_version()
    title = title or page_title(app)
    (out / "app.py").write_text(APP_PY, encoding="utf-8")
    (out / "requirements.txt").write_text(
        REQUIREMENTS.format(gradio=version, next_major=int(version.split(".")[0]) + 1), encoding="utf-8"
    )
    (out / "README.md").write_text(space_readme(app=app, title=title), encoding="utf-8")
    leaks = machine_paths(out)
    if leaks:
        raise ValueError(f"the Space in {out} names paths of this machine ({'; '.join(leaks[:5])}); report this bug.")
    return out
