"""The exported Space: what its folder holds (and does not), and that it runs from its own files in a fresh venv."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_app_support import free_port

gradio = pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e .[app]")
from gradio_client import Client, handle_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # pandas 3 deprecations inside Gradio's queue
TRAINING_MODULES = ("train.py", "engine.py", "schedule.py", "lr_finder.py", "augment.py", "loaders.py", "cli.py",
                    "checkpoint.py", "params.py", "run.py", "cifar10.py", "download.py", "decode.py", "folders.py",
                    "cache.py")  # fmt: skip


@pytest.fixture(scope="module")
def space(app_model_path, tmp_path_factory):
    """The folder that `python -m eva_helpers.app export` writes."""
    out = tmp_path_factory.mktemp("space") / "space"
    done = subprocess.run([sys.executable, "-m", "eva_helpers.app", "export", "--model", str(app_model_path), "--out",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote the Space to {out}" in done.stdout
    return out


def front_matter(readme: str) -> dict[str, str]:
    head = readme.split("---\n")[1]
    return dict(line.split(": ", 1) for line in head.strip().splitlines())


def test_the_space_folder_has_the_app_its_inference_code_weights_and_images_and_no_training_code(space, app):
    names = {p.relative_to(space).as_posix() for p in space.rglob("*") if p.is_file()}
    assert {"app.py", "README.md", "requirements.txt", "model.safetensors", "meta.json", "metrics.json",
            "report.json", "mistakes/mistakes.json", "figures/figures.json"} <= names  # fmt: skip
    assert len([n for n in names if n.startswith("examples/") and n.endswith(".png")]) == 10
    assert len([n for n in names if n.startswith("mistakes/") and n.endswith(".png")]) == len(app.mistakes)
    assert not [n for n in names if n.endswith((".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy"))]
    code = {n for n in names if n.endswith(".py")}
    assert not [n for n in code if Path(n).name in TRAINING_MODULES]
    for n in code:
        text = (space / n).read_text()
        assert "import pickle" not in text and ".backward(" not in text and "optim." not in text, n


def test_the_space_vendors_exactly_the_modules_its_app_imports():
    """VENDORED is what app.py's imports reach; a package's __init__ ends the walk (the Space has a stub of it)."""
    from test_package import MODULES, PACKAGE, _module_name, import_graph

    from eva_helpers.app.export import STUBS, VENDORED

    graph, file_of = import_graph(), {_module_name(p): p.relative_to(PACKAGE).as_posix() for p in MODULES}
    reached, todo = set(), ["eva_helpers.app.bundle", "eva_helpers.app.ui"]  # what app.py imports
    while todo:
        module = todo.pop()
        if file_of[module] not in reached:
            reached.add(file_of[module])
            todo += [] if file_of[module].endswith("__init__.py") else list(graph[module])
    assert {f for f in reached if not f.endswith("__init__.py")} == set(VENDORED)
    assert {f for f in reached if f.endswith("__init__.py")} <= set(STUBS)


def test_the_space_names_no_path_of_this_machine(space):
    from eva_helpers.app.export import machine_paths

    assert machine_paths(space) == []
    for path in space.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".md", ".json", ".txt"}:
            text = path.read_text()
            assert "/work/" not in text and str(Path.home()) + "/" not in text and str(ROOT) not in text, path


def test_the_readme_has_space_front_matter_and_the_accuracy_with_its_source(space, app):
    readme = (space / "README.md").read_text()
    front = front_matter(readme)
    assert front["sdk"] == "gradio" and front["sdk_version"] == gradio.__version__ and front["app_file"] == "app.py"
    assert f"**{app.metrics['test_acc']:.2%}** test accuracy after the last epoch (2), from the run's metrics.json" in (
        readme
    )
    assert f"git commit {app.metrics['git_commit']}" in readme and "hf upload" in readme
    assert "no training code" in readme
    requirements = (space / "requirements.txt").read_text().splitlines()
    torch_line = next(r for r in requirements if re.match(r"torch\b", r))
    assert torch_line.startswith("torch>=") and "==" not in "".join(requirements)
    major = int(gradio.__version__.split(".")[0])
    assert f"gradio>={gradio.__version__},<{major + 1}" in requirements


def test_the_space_folder_gives_the_local_app_s_predictions_and_mistakes(space, app):
    from eva_helpers.app.bundle import load_folder
    from eva_helpers.app.service import read_upload, top_k

    there = load_folder(folder=space)
    for a, b in zip(there.model.state_dict().values(), app.model.state_dict().values()):
        assert a.equal(b)
    assert there.report == app.report and there.notes == app.notes
    assert [(m.true, m.pred, m.prob) for m in there.mistakes] == [(m.true, m.pred, m.prob) for m in app.mistakes]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(there.mistakes, app.mistakes))
    assert [t for t, _ in there.figures] == [t for t, _ in app.figures]
    for example in there.examples:
        image = read_upload(example, size=32)
        assert top_k(app=there, image=image, k=3) == top_k(app=app, image=image, k=3)
    assert "data_dir" not in there.meta["data"] and there.meta["classes"] == app.meta["classes"]


@pytest.mark.slow  # builds a virtual environment from the Space's requirements.txt: a few minutes
def test_the_exported_space_runs_from_its_own_files_in_a_fresh_venv(space, app, tmp_path):
    copy = shutil.copytree(space, tmp_path / "space")  # nothing else of this checkout beside it
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "-r", str(copy / "requirements.txt")]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"{shlex.join(pip)}\n{done.stderr[-3000:]}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    port = free_port()
    env.update(GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    which = subprocess.run([str(python), "-c", "import eva_helpers; print(eva_helpers.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert Path(which.strip()).parent == copy / "eva_helpers"
    proc = subprocess.Popen([str(python), "app.py"], cwd=copy, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        lines, deadline = [], time.monotonic() + 300
        while time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
            if lines[-1].startswith("The app is at") or not lines[-1]:
                break
        assert lines[-1].startswith(f"The app is at http://127.0.0.1:{port}/"), "".join(lines)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        example = sorted((copy / "examples").glob("*.png"))[5]
        got = client.predict(handle_file(example), 3, api_name="/predict")["confidences"]
        from eva_helpers.app.service import read_upload, top_k

        want = top_k(app=app, image=read_upload(example, size=32), k=3)
        assert [c["label"] for c in got] == [c for c, _ in want]
        assert [c["confidence"] for c in got] == pytest.approx([p for _, p in want], abs=1e-4)
        top, cams = client.predict(handle_file(example), 1, ["layer3"], 0.5, "", api_name="/explain")
        assert top["label"] == want[0][0] and len(cams) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(venv, ignore_errors=True)
