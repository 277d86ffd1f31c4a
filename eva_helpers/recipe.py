"""The recipe: every parameter of the notebooks and the command line, with its default, help and limits, written once.

A `Recipe` is frozen dataclasses grouped by concern (data, augmentation, network, optimiser and schedule, range
test, machine, outputs). Each field's default is *the* default: notebooks' parameters cells, the command line's
options and `fit` all read it from here. Its metadata holds the help text, the range or choices, and whether it
may change when a run is resumed. Values are checked (and coerced: "0.1" from a command line becomes 0.1) when a
group is built, so a Recipe that exists is valid. A notebook does `recipe = eva.check_params(globals())`.

The parameter names are flat and unique across groups, as papermill, YAML configs and `--name value` use them:
`recipe.optim.max_lr` is the parameter `max_lr`; `recipe.to_dict()` gives them back flat.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import DATASETS
from .device import PRECISIONS, check_device_name
from .files import project_root
from .loaders import LOADERS
from .lr_finder import LR_RULES
from .models import MODELS
from .validate import choice, coerce, nearest_name, real, whole


def knob(default: Any, help: str, *, choices: tuple = (), low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False, path: bool = False, many: bool = False,
         resume_may_differ: bool = False) -> Any:  # fmt: skip
    """A recipe field: its default and, as metadata, what a user reads about it and the values it may take.

    low/high are inclusive unless low_open/high_open; path: a folder or file, made absolute from the project
    root; many: a list of such values is allowed too; resume_may_differ: where and how fast the run goes, not
    what it computes, so a resumed run may change it.
    """
    return field(default=default, metadata={
        "help": help, "choices": choices, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
        "path": path, "many": many, "resume_may_differ": resume_may_differ,
    })  # fmt: skip


@dataclass(frozen=True)
class Param:
    """One parameter as the checks, the command line and the docs see it (built from its field)."""

    name: str
    group: str
    kind: type  # int, float, bool or str
    nullable: bool
    default: Any
    help: str
    choices: tuple
    low: float | None
    high: float | None
    low_open: bool
    high_open: bool
    path: bool
    many: bool
    resume_may_differ: bool


class _Group:
    """Checks every field of a recipe group when it is built (coercing what papermill or a command line passes)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, check_param(f.name, getattr(self, f.name)))


@dataclass(frozen=True, kw_only=True)
class DataRecipe(_Group):
    """Which images, from where, and how many."""

    dataset: str = knob("cifar10", "'cifar10', 'tinyimagenet' or 'imagefolder' (data_dir/{train,test}/<class>/*)",
                        choices=DATASETS)  # fmt: skip
    data_dir: str | None = knob(None, "where the data lives (relative: from the project root); None: data/; "
                                "fetched if absent", path=True, resume_may_differ=True)  # fmt: skip
    download: bool = knob(True, "fetch the official archive (checksum verified) when data_dir lacks it",
                          resume_may_differ=True)  # fmt: skip
    cache_dir: str | None = knob(None, "where decoded arrays are cached; None: beside the data (else "
                                 "~/.cache/eva_helpers)", path=True, resume_may_differ=True)  # fmt: skip
    skip_bad_images: bool = knob(False, "warn about unreadable images and skip them instead of stopping")
    train_limit: int = knob(0, "0: all; n: a seeded, class-balanced subset of n training images", low=0)
    test_limit: int = knob(0, "0: all; n: a seeded, class-balanced subset of the held-out split", low=0)
    split_seed: int = knob(0, "seed of the Tiny ImageNet 70/30 split (saved: every run uses the same one)", low=0)


@dataclass(frozen=True, kw_only=True)
class AugmentRecipe(_Group):
    """Training-time augmentation; None takes the dataset's own default (its module's AUGMENT)."""

    pad: int | None = knob(None, "reflect padding for the random crop, px", low=0)
    flip: bool = knob(True, "random horizontal flip")
    cutout: int | None = knob(None, "cutout hole side in px, 0: off", low=0)
    rotate: float | None = knob(None, "rotation limit in degrees, 0: off", low=0, high=180)
    rgb_shift: int | None = knob(None, "per-channel shift, 0..255, 0: off", low=0, high=255)


@dataclass(frozen=True, kw_only=True)
class NetworkRecipe(_Group):
    """The network, its logits, and how it is evaluated."""

    model: str = knob("custom_resnet", "'custom_resnet' (ResNet-9, 6.57M parameters) or 'resnet18' (CIFAR-style)",
                      choices=tuple(MODELS))  # fmt: skip
    logit_scale: float = knob(0.125, "multiply the logits by this (David Page's 1/8; 1.0: unscaled)", low=0,
                              low_open=True)  # fmt: skip
    tta: bool = knob(True, "evaluate on each image and its mirror image, logits averaged")


@dataclass(frozen=True, kw_only=True)
class OptimRecipe(_Group):
    """One-Cycle SGD: the schedule's length and shape, the optimiser, the loss."""

    epochs: int = knob(24, "training epochs", low=1)
    peak_epoch: int = knob(5, "the LR peaks at the end of this epoch", low=1)
    max_lr: float | None = knob(0.4, "peak LR (Page's, for ResNet-9 on CIFAR-10); None: the LR range test's suggestion",
                                low=0, low_open=True)  # fmt: skip
    div_factor: float = knob(100.0, "the LR starts at max_lr / div_factor", low=1)
    final_div_factor: float = knob(100.0, "the LR ends at max_lr / (div_factor * final_div_factor)", low=1)
    batch_size: int = knob(512, "images per step (global, across all ranks)", low=1)
    momentum: float = knob(0.9, "SGD momentum", low=0, high=1, high_open=True)
    nesterov: bool = knob(True, "Nesterov momentum")
    weight_decay: float = knob(5e-4, "L2 weight decay", low=0)
    label_smoothing: float = knob(0.0, "cross-entropy label smoothing", low=0, high=1, high_open=True)
    ema: float = knob(0.0, "evaluate and save a moving average of the weights, this decay per step (0: off)", low=0,
                      high=1, high_open=True)  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.peak_epoch > self.epochs:
            raise ValueError(
                f"peak_epoch={self.peak_epoch} is outside (0, epochs={self.epochs}]: the LR must peak within "
                "training; lower peak_epoch or raise epochs."
            )


@dataclass(frozen=True, kw_only=True)
class RangeTestRecipe(_Group):
    """The LR range test (notebook 03, and notebook 04 when max_lr is None)."""

    finder_start_lr: float = knob(1e-5, "LR range test: first LR", low=0, low_open=True)
    finder_end_lr: float = knob(10.0, "LR range test: last LR (stops early if the loss diverges)", low=0,
                                low_open=True)  # fmt: skip
    finder_iters: int = knob(100, "LR range test: steps", low=2)
    lr_rule: str = knob("probe", "LR range test: 'probe' (short rehearsals) or a rule read off the curve (notebook 03)",
                        choices=LR_RULES)  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.finder_end_lr <= self.finder_start_lr:
            raise ValueError(
                f"finder_end_lr={self.finder_end_lr} must be above finder_start_lr={self.finder_start_lr}."
            )


@dataclass(frozen=True, kw_only=True)
class MachineRecipe(_Group):
    """Where and how fast it runs: seeds, device, loader, precision."""

    seed: int = knob(1, "seed for weights, shuffling, augmentation and data subsets", low=0)
    device: str = knob("auto", "'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'",
                       resume_may_differ=True)  # fmt: skip
    loader: str = knob("auto", "'auto'/'device': batched augmentation on the device; 'torch': DataLoader, "
                       "albumentations", choices=LOADERS)  # fmt: skip
    precision: str = knob("auto", "'auto' (bf16 where the hardware has it, else fp16 on CUDA), 'bf16', 'fp16', "
                          "'fp32'", choices=PRECISIONS, resume_may_differ=True)  # fmt: skip
    channels_last: bool = knob(True, "channels_last memory format (faster convolutions)")
    compile: bool = knob(False, "torch.compile the model (slow to start, faster on a GPU)", resume_may_differ=True)
    sync_bn: bool = knob(True, "several GPUs (torchrun): BatchNorm over the global batch")
    num_workers: int | None = knob(None, "DataLoader workers when loader is 'torch' (None: chosen for this machine)",
                                   low=0, resume_may_differ=True)  # fmt: skip
    progress: bool = knob(True, "progress bars", resume_may_differ=True)


@dataclass(frozen=True, kw_only=True)
class OutputsRecipe(_Group):
    """What is written where, and what the analysis notebooks show."""

    out_dir: str = knob("outputs", "where results and figures are written (relative: from the project root)",
                        path=True, resume_may_differ=True)  # fmt: skip
    resume: bool = knob(False, "continue from the checkpoint in out_dir", resume_may_differ=True)
    checkpoint: str | None = knob(None, "the model file to analyse (None: {out_dir}/model.pt)", path=True)
    images: str | None = knob(None, "your own pictures: a file, a list of files or a folder (None: none)",
                              path=True, many=True)  # fmt: skip
    n_samples: int = knob(32, "images in the sample grid", low=1)
    n_preview: int = knob(6, "images to augment in the preview", low=1)
    n_misclassified: int = knob(20, "misclassified images to show", low=1)
    n_gradcam: int = knob(6, "misclassified images to explain with Grad-CAM", low=1)


GROUPS: dict[str, type] = {  # Recipe's attribute -> its group
    "data": DataRecipe, "augment": AugmentRecipe, "network": NetworkRecipe, "optim": OptimRecipe,
    "range_test": RangeTestRecipe, "machine": MachineRecipe, "outputs": OutputsRecipe,
}  # fmt: skip


def _param(group: str, cls: type, f: dataclasses.Field) -> Param:
    hint = typing.get_type_hints(cls)[f.name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    return Param(name=f.name, group=group, kind=kinds[0], nullable=type(None) in args, default=f.default,
                 **f.metadata)  # fmt: skip


# Every parameter by name, in the order of the groups: built from the fields above, never written again.
SPEC: dict[str, Param] = {
    f.name: _param(group, cls, f) for group, cls in GROUPS.items() for f in dataclasses.fields(cls)
}
# What notebook 04 and the train command take: all but the analysis notebooks' outputs (a test keeps 04's cell equal).
TRAIN_PARAMS = tuple(n for n, p in SPEC.items() if p.group != "outputs") + ("out_dir", "resume")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Every setting of a run, grouped; `Recipe()` is the defaults. Build one with check_params."""

    data: DataRecipe = field(default_factory=DataRecipe)
    augment: AugmentRecipe = field(default_factory=AugmentRecipe)
    network: NetworkRecipe = field(default_factory=NetworkRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    range_test: RangeTestRecipe = field(default_factory=RangeTestRecipe)
    machine: MachineRecipe = field(default_factory=MachineRecipe)
    outputs: OutputsRecipe = field(default_factory=OutputsRecipe)

    def to_dict(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The parameters flat, {name: value} in table order (plain JSON): what metrics.json and model.pt store."""
        return {n: getattr(getattr(self, SPEC[n].group), n) for n in (names or SPEC)}

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some parameters changed (flat names), checked as check_params checks them."""
        return check_params({**self.to_dict(), **changes}, strict=True)


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
    value = coerce(name, value, kind=p.kind, nullable=p.nullable, hint=p.help, default=p.default, path=p.path)
    value = _check_value(name, value, p)
    if name == "device":
        check_device_name(value)
    if p.path and value is not None:
        if not value.strip():
            raise ValueError(f"{name}={value!r} is empty; give a path ({p.help}), or None. Default: {p.default!r}.")
        path = Path(value).expanduser()
        value = str(path if path.is_absolute() else project_root() / path)
    return value


def check_params(values: Mapping[str, Any], /, *, strict: bool = False) -> Recipe:
    """The Recipe of the parameters found in `values` (a notebook's globals(), a config), the rest at their defaults.

    Every value is checked where it enters: its type, range and choices, with the default named in the message.
    strict: every name in `values` must be a parameter (a config file, a command line); a notebook's globals()
    hold other names too, so by default those are passed over.
    """
    unknown = [n for n in values if n not in SPEC] if strict else []
    if unknown:
        check_param(unknown[0], values[unknown[0]])  # raises, naming the nearest known name
    given = {n: values[n] for n in SPEC if n in values}
    return Recipe(**{
        group: cls(**{f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given})
        for group, cls in GROUPS.items()
    })  # fmt: skip


def read_config(path: str | Path, *, check_names: bool = True) -> dict[str, Any]:
    """A YAML parameters file (as papermill's -f takes), its names checked against SPEC unless told otherwise."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; see configs/ for the shipped recipes.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of parameter names to values.")
    unknown = [n for n in values if n not in SPEC] if check_names else []
    if unknown:
        check_param(unknown[0], values[unknown[0]])  # raises, naming the nearest known name
    return values


def load_recipe(*configs: str | Path, **overrides: Any) -> Recipe:
    """The defaults, then each YAML config in turn, then the overrides: the train command's and benchmarks' recipe."""
    values: dict[str, Any] = {}
    for config in configs:
        values.update(read_config(config))
    values.update(overrides)
    return check_params(values, strict=True)
