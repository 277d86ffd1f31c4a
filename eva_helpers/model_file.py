"""model.pt, written and read in one place: the trained weights and the metadata that inference needs.

Written at the end of fit (save_model), read by notebook 05, the app and predictions (load_trained). The
metadata is plain JSON: the network, classes, the training split's mean and std, the data's arguments, the run's
accuracy, and the whole recipe it was trained with ("recipe"; files from before the recipe object lack it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import __version__
from .device import pick_device
from .files import load_torch, save_torch
from .models import build_model, model_name, unwrap

if TYPE_CHECKING:
    from .data import ImageData

# What model.pt's "meta" must hold for the model to be rebuilt and its inputs prepared as in training.
META_KEYS = ("model", "num_classes", "classes", "mean", "std", "image_size", "test_split", "data")


def load_trained(
    *, out_dir: str | Path = "outputs", checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The model in `checkpoint` (default {out_dir}/model.pt), in eval mode on `device`, and its metadata."""
    path = Path(checkpoint) if checkpoint is not None else Path(out_dir) / "model.pt"
    saved = load_torch(path=path, map_location="cpu")
    if not isinstance(saved, dict) or set(saved) != {"model", "meta"}:
        raise ValueError(
            f"{path} is not a model.pt written by notebook 04 (expected exactly the keys 'model' and "
            f"'meta'); pass the model.pt from a training out_dir, not checkpoint.pt."
        )
    meta = saved["meta"]
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path} lacks the metadata {missing}; it was written by another version. Train again.")
    model = build_model(name=meta["model"], num_classes=meta["num_classes"], logit_scale=meta.get("logit_scale", 1.0),
                        width=meta.get("width", 1.0))  # fmt: skip
    try:
        model.load_state_dict(saved["model"], strict=True)  # a file for another network fails here, loudly
    except RuntimeError as e:
        raise ValueError(
            f"the weights in {path} do not fit a {meta['model']} with {meta['num_classes']} classes "
            f"({' '.join(str(e).split()[6:])[:300]}); the file is damaged or was edited. Train again."
        ) from e
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    return model.to(dev).eval(), meta


def model_meta(*, model: nn.Module, data: ImageData, metrics: dict[str, Any]) -> dict[str, Any]:
    """Plain metadata stored beside the weights: enough to rebuild the model, prepare its inputs, and its data."""
    recipe = metrics["params"]
    return {
        "model": model_name(model),
        "logit_scale": recipe["logit_scale"],
        "width": getattr(unwrap(model), "width", 1.0),
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
        "image_size": data.image_size,
        "test_split": data.test_split,
        "data": dict(data.args),
        "channels_last": recipe["channels_last"],
        "precision": metrics["precision"],
        "tta": recipe["tta"],
        "compile": recipe["compile"],
        **{k: metrics[k] for k in ("device", "device_name", "cuda", "cudnn", "git_commit")},
        "epochs": recipe["epochs"],
        "test_acc": metrics["test_acc"],
        "max_lr": metrics["max_lr"],
        "recipe": recipe,
        "eva_helpers": __version__,
    }


def save_model(*, path: Path, model: nn.Module, data: ImageData, metrics: dict[str, Any]) -> None:
    """Write model.pt: the weights and the metadata load_trained needs (it loads with weights_only=True)."""
    save_torch(
        path=path, obj={"model": model.state_dict(), "meta": model_meta(model=model, data=data, metrics=metrics)}
    )
