"""Every notebook parameter in one table, the one function that checks them where they enter, and YAML files of them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import DATASETS
from .device import PRECISIONS, check_device_name
from .files import project_root
from .loaders import LOADERS
from .lr_finder import RULES
from .models import MODELS
from .validate import choice, nearest_name, real, whole


@dataclass(frozen=True)
class Param:
    """One parameter: its type, its default, and the values it may take."""

    kind: type  # int, float, bool or str
    default: Any
    help: str
    choices: tuple = ()
    low: float | None = None  # inclusive unless low_open (ints: always inclusive)
    high: float | None = None  # inclusive unless high_open
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    path: bool = False
    many: bool = False  # a list of values is allowed too (each one checked)


SPEC: dict[str, Param] = {
    # data
    "dataset": Param(str, "cifar10", "which dataset to read", choices=DATASETS),
    "data_dir": Param(
        str,
        None,
        "where the data lives, downloaded there if absent (None: data/ in the project; in notebook 05 and the app: "
        "the folder stored in model.pt)",
        nullable=True,
        path=True,
    ),
    "download": Param(bool, True, "download the official archive when data_dir lacks it"),
    "cache_dir": Param(str, None, "where decoded arrays are cached (None: beside the data)", nullable=True, path=True),
    "skip_bad_images": Param(bool, False, "warn and skip unreadable images instead of stopping"),
    "train_limit": Param(int, 0, "0 = all; else a seeded class-balanced subset of this many training images", low=0),
    "test_limit": Param(int, 0, "0 = all; else a seeded class-balanced subset of the held-out split", low=0),
    "split_seed": Param(int, 0, "seed of the Tiny ImageNet 70/30 split", low=0),
    # augmentation (None: the dataset's default)
    "pad": Param(int, None, "pixels of reflect padding before the random crop", low=0, nullable=True),
    "flip": Param(bool, True, "random horizontal flip"),
    "cutout": Param(int, None, "side of the square cutout hole in pixels, 0 = off", low=0, nullable=True),
    "rotate": Param(float, None, "random rotation limit in degrees, 0 = off", low=0, high=180, nullable=True),
    "rgb_shift": Param(int, None, "per-channel shift limit in 0..255 units, 0 = off", low=0, high=255, nullable=True),
    # model and optimisation
    "model": Param(str, "custom_resnet", "which network", choices=tuple(MODELS)),
    "epochs": Param(int, 24, "training epochs", low=1),
    "peak_epoch": Param(int, 5, "epoch at whose end the LR peaks", low=1),
    "max_lr": Param(
        float, None, "peak LR; None runs the LR range test and uses its suggestion", low=0, low_open=True, nullable=True
    ),
    "div_factor": Param(float, 100.0, "initial LR = max_lr / div_factor", low=1),
    "final_div_factor": Param(float, 100.0, "final LR = max_lr / (div_factor * final_div_factor)", low=1),
    "batch_size": Param(int, 512, "images per step (global, across all ranks)", low=1),
    "momentum": Param(float, 0.9, "SGD momentum", low=0, high=1, high_open=True),
    "nesterov": Param(bool, True, "Nesterov momentum"),
    "weight_decay": Param(float, 5e-4, "L2 weight decay", low=0),
    "label_smoothing": Param(float, 0.0, "cross-entropy label smoothing", low=0, high=1, high_open=True),
    "logit_scale": Param(float, 1.0, "multiply the logits by this (David Page's recipe: 0.125)", low=0, low_open=True),
    "tta": Param(bool, False, "evaluate on each image and its mirror image, logits averaged"),
    # LR range test
    "finder_start_lr": Param(float, 1e-5, "LR range test: first LR", low=0, low_open=True),
    "finder_end_lr": Param(float, 10.0, "LR range test: last LR", low=0, low_open=True),
    "finder_iters": Param(int, 100, "LR range test: steps", low=2),
    "lr_rule": Param(str, "valley", "LR range test: how the suggestion is read off the curve", choices=RULES),
    # machine
    "seed": Param(int, 1, "seed for weights, shuffling and augmentation", low=0),
    "device": Param(str, "auto", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    "loader": Param(
        str,
        "auto",
        "'device': data on the device, batched augmentation; 'torch': DataLoader + albumentations",
        choices=LOADERS,
    ),
    "precision": Param(
        str,
        "auto",
        "'bf16' or 'fp16' autocast, 'fp32', or 'auto' (bf16 where the hardware has it, else fp16 on CUDA)",
        choices=PRECISIONS,
    ),
    "channels_last": Param(bool, True, "channels_last memory format"),
    "compile": Param(bool, False, "torch.compile the model"),
    "sync_bn": Param(bool, True, "under DDP on CUDA, BatchNorm over the global batch (SyncBatchNorm)"),
    "num_workers": Param(
        int, None, "DataLoader workers for loader='torch' (None: chosen for the machine)", low=0, nullable=True
    ),
    "progress": Param(bool, True, "show progress bars"),
    # products
    "out_dir": Param(str, "outputs", "where results are written", path=True),
    "resume": Param(bool, False, "continue from the checkpoint in out_dir"),
    "checkpoint": Param(str, None, "model file to analyse (None: {out_dir}/model.pt)", nullable=True, path=True),
    "images": Param(
        str,
        None,
        "your own images: a file, a list of files or a folder (None: none)",
        nullable=True,
        path=True,
        many=True,
    ),  # fmt: skip
    "n_samples": Param(int, 32, "images in the sample grid", low=1),
    "n_preview": Param(int, 6, "images in the augmentation preview", low=1),
    "n_misclassified": Param(int, 20, "misclassified images to show", low=1),
    "n_gradcam": Param(int, 6, "misclassified images to explain with Grad-CAM", low=1),
}

# The parameters notebook 04 and `python -m eva_helpers.train` take (a test keeps this equal to 04's cell).
TRAIN_PARAMS = (
    "dataset", "data_dir", "download", "cache_dir", "skip_bad_images", "train_limit", "test_limit", "split_seed",
    "pad", "flip", "cutout", "rotate", "rgb_shift",
    "model", "epochs", "peak_epoch", "max_lr", "div_factor", "final_div_factor", "batch_size", "momentum",
    "nesterov", "weight_decay", "label_smoothing", "logit_scale", "tta", "finder_start_lr", "finder_end_lr",
    "finder_iters", "lr_rule",
    "seed", "device", "loader", "precision", "channels_last", "compile", "sync_bn", "num_workers", "progress",
    "out_dir", "resume",
)  # fmt: skip


def _coerce(name: str, value: Any, p: Param) -> Any:
    """Convert what papermill or a command line passes into the parameter's type, where that is safe."""
    if value is None:
        if p.nullable:
            return None
        raise ValueError(f"{name}=None is not allowed; give a {p.kind.__name__} ({p.help}). Default: {p.default!r}.")
    if isinstance(value, str) and value.strip().lower() in ("none", "null") and p.nullable:
        return None
    bad = ValueError(f"{name}={value!r} is not a {p.kind.__name__} ({p.help}). Default: {p.default!r}.")
    if p.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise bad
    if p.kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        return value  # whole() names anything else
    if p.kind is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if p.kind is str:
        if isinstance(value, (str, Path)):
            return str(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and p.path:
            return str(value)
        raise bad
    raise TypeError(f"unsupported parameter kind {p.kind}")


def _check_value(name: str, value: Any, p: Param) -> Any:
    """The value checked by validate's functions: range for numbers, membership for choices."""
    if value is None:
        return None
    try:
        if p.choices:
            return choice(name, value, p.choices)
        if p.kind is int:
            return whole(name, value, low=p.low, high=p.high, hint=p.help)
        if p.kind is float:
            return real(name, value, low=p.low, high=p.high, low_open=p.low_open, high_open=p.high_open, hint=p.help)
    except ValueError as e:
        raise ValueError(f"{e} Default: {p.default!r}.") from None
    return value


def check_param(name: str, value: Any) -> Any:
    """Check and coerce one parameter's value; unknown names raise with the nearest known name."""
    if name not in SPEC:
        near = nearest_name(name, SPEC)
        hint = f" Did you mean {near!r}?" if near else ""
        raise ValueError(f"unknown parameter {name!r}.{hint} Known parameters: {', '.join(sorted(SPEC))}.")
    p = SPEC[name]
    if p.many and isinstance(value, (list, tuple)):
        return [_checked(name, v, p) for v in value]
    return _checked(name, value, p)


def _checked(name: str, value: Any, p: Param) -> Any:
    value = _check_value(name, _coerce(name, value, p), p)
    if name == "device":
        check_device_name(value)
    if p.path and value is not None:
        path = Path(value).expanduser()
        value = str(path if path.is_absolute() else project_root() / path)
    return value


def check_params(*, namespace: Mapping[str, Any], names=None) -> dict[str, Any]:
    """Check, coerce and return the known parameters found in `namespace` (e.g. a notebook's globals())."""
    if names is None:
        names = [n for n in SPEC if n in namespace]
    else:
        missing = [n for n in names if n not in namespace]
        if missing:
            raise ValueError(f"parameters {missing} were not given; defaults: {[SPEC[n].default for n in missing]}.")
    params = {n: check_param(n, namespace[n]) for n in names}
    if "epochs" in params and "peak_epoch" in params and params["peak_epoch"] > params["epochs"]:
        raise ValueError(
            f"peak_epoch={params['peak_epoch']} is outside (0, epochs={params['epochs']}]: "
            f"the LR must peak within training; lower peak_epoch or raise epochs."
        )
    if (
        "finder_start_lr" in params
        and "finder_end_lr" in params
        and params["finder_end_lr"] <= params["finder_start_lr"]
    ):
        raise ValueError(
            f"finder_end_lr={params['finder_end_lr']} must be above finder_start_lr={params['finder_start_lr']}."
        )
    return params


def defaults(names=None) -> dict[str, Any]:
    """The default value of each named parameter (all when names is None)."""
    return {n: SPEC[n].default for n in (names or SPEC)}


def pick(fn: Callable, params: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `params` that are knobs of `fn` (its keyword arguments with defaults): `fn(**pick(fn, params))`.

    Required arguments are never picked: `fit(model=net, data=data, **pick(fit, params))` passes the network
    itself, while params["model"] (its name) stays with build_model.
    """
    knobs = {
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }
    return {k: v for k, v in params.items() if k in knobs}


def read_config(path: str | Path, *, check_names: bool = True) -> dict[str, Any]:
    """A YAML parameters file (as papermill's -f takes), its names checked against SPEC unless told otherwise."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; see configs/ for the shipped recipes.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of parameter names to values.")
    for name in values if check_names else ():
        if name not in SPEC:
            check_params(namespace=values, names=[name])  # raises, naming the nearest known name
    return values
