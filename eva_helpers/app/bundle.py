"""The app's model as a folder: weights as safetensors, meta and metrics as JSON, examples, mistakes and figures.

export writes this folder into the Space and the Space's app.py reads it back with load_folder: nothing in it
is a pickle, and no path of the machine that wrote it is kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..device import pick_device
from ..model_file import META_KEYS
from ..models import build_model
from .service import AppModel, Mistake

WEIGHTS = "model.safetensors"
META = "meta.json"
METRICS = "metrics.json"
REPORT = "report.json"
MISTAKES = "mistakes"  # NNN.png and mistakes.json (true, pred, prob of each, worst first)
EXAMPLES = "examples"
FIGURES = "figures"  # NN_<title>.png and figures.json (the titles in order)
PATH_KEYS = {"data_dir", "cache_dir", "out_dir"}  # where files were on the training machine: not for a Space
BULKY_KEYS = {"lr_per_step", "epoch_seconds", "checkpoint_seconds"}  # per-step lists the app does not show


def scrub(obj: Any) -> Any:
    """A JSON-ready copy of meta or metrics without the training machine's paths and the per-step lists."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if k not in PATH_KEYS | BULKY_KEYS}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    return obj


def save_weights(*, model: nn.Module, path: str | Path) -> Path:
    """The model's state_dict as a safetensors file (plain tensors, nothing executable)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return Path(path)


def load_weights(*, path: str | Path, meta: dict[str, Any], device: str = "cpu") -> nn.Module:
    """The model that `meta` describes with the weights in the safetensors file `path`, strictly, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"the metadata beside {path.name} lacks {missing}; export the Space again.")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; export the Space again (it writes {WEIGHTS}).")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path.name} cannot be read as safetensors ({e}); export the Space again.") from e
    model = build_model(name=meta["model"], num_classes=meta["num_classes"], logit_scale=meta.get("logit_scale", 1.0),
                        width=meta.get("width", 1.0))  # fmt: skip
    try:
        model.load_state_dict(state, strict=True)  # a file for another network, or one with keys missing, fails here
    except RuntimeError as e:
        raise ValueError(
            f"the weights in {path.name} do not fit a {meta['model']} with {meta['num_classes']} classes "
            f"({' '.join(str(e).split()[6:])[:300]}); the file is damaged or belongs to another model."
        ) from e
    return model.to(pick_device(device)).eval()


def save_png(*, image: np.ndarray, path: Path) -> None:
    """Write a uint8 (H, W, 3) image as a PNG (lossless: the app shows the pixels the model saw)."""
    from PIL import Image

    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)


def read_png(path: Path) -> np.ndarray:
    """A PNG as uint8 (H, W, 3)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _write_json(*, obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_bundle(*, app: AppModel, folder: str | Path) -> Path:
    """Write the app's model and what it shows into `folder` (created; its bundle files are replaced)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for sub in (EXAMPLES, MISTAKES, FIGURES):
        shutil.rmtree(folder / sub, ignore_errors=True)
        (folder / sub).mkdir()
    save_weights(model=app.model, path=folder / WEIGHTS)
    _write_json(obj=scrub(app.meta), path=folder / META)
    _write_json(obj=scrub(app.metrics), path=folder / METRICS)
    _write_json(obj={"report": app.report, "notes": app.notes}, path=folder / REPORT)
    for src in app.examples:
        shutil.copyfile(src, folder / EXAMPLES / Path(src).name)
    listed = []
    for i, m in enumerate(app.mistakes):
        save_png(image=m.image, path=folder / MISTAKES / f"{i:03d}.png")
        listed.append({"file": f"{i:03d}.png", "true": m.true, "pred": m.pred, "prob": m.prob})
    _write_json(obj=listed, path=folder / MISTAKES / "mistakes.json")
    titles = []
    for i, (title, image) in enumerate(app.figures):
        save_png(image=image, path=folder / FIGURES / f"{i:02d}.png")
        titles.append({"file": f"{i:02d}.png", "title": title})
    _write_json(obj=titles, path=folder / FIGURES / "figures.json")
    return folder


def load_folder(*, folder: str | Path, device: str = "cpu") -> AppModel:
    """The AppModel that save_bundle wrote into `folder`: weights checked strictly, nothing unpickled."""
    folder = Path(folder)
    if not (folder / META).is_file():
        raise FileNotFoundError(f"{folder / META} does not exist; point at a folder written by the app's export.")
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    model = load_weights(path=folder / WEIGHTS, meta=meta, device=device)
    shown = json.loads((folder / REPORT).read_text(encoding="utf-8")) if (folder / REPORT).is_file() else {}
    listed = json.loads((folder / MISTAKES / "mistakes.json").read_text()) if (folder / MISTAKES).is_dir() else []
    titles = json.loads((folder / FIGURES / "figures.json").read_text()) if (folder / FIGURES).is_dir() else []
    return AppModel(
        model=model,
        meta=meta,
        examples=sorted((folder / EXAMPLES).glob("*.png")),
        mistakes=[
            Mistake(
                image=read_png(folder / MISTAKES / m["file"]),
                true=int(m["true"]),
                pred=int(m["pred"]),
                prob=float(m["prob"]),
            )
            for m in listed
        ],  # fmt: skip
        report=shown.get("report"),
        metrics=json.loads((folder / METRICS).read_text(encoding="utf-8")) if (folder / METRICS).is_file() else None,
        figures=[(t["title"], read_png(folder / FIGURES / t["file"])) for t in titles],
        notes=list(shown.get("notes", [])),
    )
