"""The One-Cycle peak of a run: the recipe's max_lr, or the LR range test's suggestion (run, or reused when it matches).

Notebook 03 calls `lr_test(net, data, recipe)`; notebook 04 `peak_lr(net, data, recipe)` and `lr_schedule(recipe,
peak)` to show the peak and the schedule before training; training.fit calls choose_peak.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import ImageData
from .device import all_reduce_sum, precision_name
from .files import save_json
from .lr_finder import PROBE, RULES, lr_range_test, suggest
from .probe import probe_peak
from .recipe import Recipe
from .run_setup import Setup, prepare, recipe_sgd
from .schedule import one_cycle_lr

LR_FINDER_FILE = "lr_finder.json"  # the range test's result in out_dir, which notebook 03 writes and fit reuses


@dataclass
class Peak:
    """The One-Cycle peak a run trains with: given in the recipe, or the LR range test's suggestion."""

    max_lr: float
    source: str  # "given" or "lr range test"
    steps_per_epoch: int  # training steps per epoch with the recipe's batch size
    lr_finder: dict[str, Any] | None = None  # the range test's result, when it chose


def lr_test(model: nn.Module, data: ImageData, recipe: Recipe, *, reuse: str | Path | None = None) -> dict[str, Any]:
    """The LR range test of notebook 03: the recipe's model, optimiser, loss, loader and precision.

    The model is restored afterwards. See range_test for what the result holds and what `reuse` does.
    """
    return range_test(prepare(model, data, recipe, rank=0, world=1), reuse=reuse)


def range_test(setup: Setup, *, reuse: str | Path | None = None) -> dict[str, Any] | None:
    """The LR range test on a prepared setup; the model is restored after.

    The result carries a fingerprint of everything that shapes the curve: the model's class, logit scale and
    weights, the training images, the loader and augmentation settings, the precision and the range test's own
    settings. `reuse` names an earlier result (notebook 03's lr_finder.json, say): when its fingerprint is this
    one, its curve is returned (with the recipe's rule's suggestion) instead of running the same test again.

    Under DDP it runs on rank 0 alone, on the global batch that training steps with, and returns None on
    the other ranks: a per-rank slice of the batch would suggest an LR for another batch size.
    """
    if setup.world > 1:
        if setup.rank > 0:
            return None
        setup = prepare(setup.model, setup.data, setup.recipe, rank=0, world=1)
    rt, optim = setup.recipe.range_test, setup.recipe.optim
    rule = rt.lr_rule if rt.lr_rule in RULES else "blowup"  # the probe starts from blowup's pick (choose_peak)
    fingerprint = range_test_fingerprint(setup)
    earlier = _read_result(reuse)
    if isinstance(earlier, dict) and earlier.get("fingerprint") == fingerprint:
        suggestions, _ = suggest(lr=earlier["lr"], loss=earlier["loss"])  # read again: a saved file may predate a rule
        return {**earlier, "rule": rule, "suggestions": suggestions, "suggested_lr": suggestions[rule],
                "reused": True}  # fmt: skip
    setup.train_loader.set_epoch(-1)  # its own shuffle, so training epochs draw the same data with or without it
    found = lr_range_test(model=setup.model, optimizer=recipe_sgd(setup.model, optim, lr=rt.finder_start_lr),
                          criterion=nn.CrossEntropyLoss(label_smoothing=optim.label_smoothing),
                          train_loader=setup.train_loader, device=setup.device, start_lr=rt.finder_start_lr,
                          end_lr=rt.finder_end_lr, num_iter=rt.finder_iters, amp_dtype=setup.amp_dtype,
                          rule=rule, progress=setup.recipe.machine.progress)  # fmt: skip
    return {**found, "fingerprint": fingerprint, "reused": False}


def _read_result(path: str | Path | None) -> dict[str, Any] | None:
    """An earlier range test's JSON, or None when there is none or it cannot be read (the test then runs)."""
    try:
        return json.loads(Path(path).read_text()) if path is not None and Path(path).is_file() else None
    except (OSError, ValueError):
        return None


def range_test_fingerprint(setup: Setup) -> str:
    """A sha256 of what shapes a range test's curve: model, weights, training images, loader, precision, settings."""
    digest = hashlib.sha256()
    for name, tensor in setup.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for array in (setup.data.x_train, setup.data.y_train):
        digest.update(np.ascontiguousarray(array).tobytes())
    r = setup.recipe
    shaping = {**asdict(r.range_test), **asdict(r.optim), "seed": r.machine.seed, "loader": r.machine.loader,
               "channels_last": r.machine.channels_last, "num_workers": r.machine.num_workers}  # fmt: skip
    for later in ("epochs", "peak_epoch", "max_lr", "div_factor", "final_div_factor", "lr_rule", "ema"):
        shaping.pop(later)  # the training schedule and the reading of the curve do not change the curve
    described = {**shaping, "model": type(setup.model).__name__,
                 "logit_scale": getattr(setup.model, "logit_scale", 1.0), "augment": setup.augment,
                 "amp": precision_name(setup.amp_dtype), "device": setup.device.type,
                 "torch": torch.__version__}  # fmt: skip
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def choose_peak(setup: Setup, *, saved: Path) -> Peak:
    """The recipe's max_lr, or (max_lr None) the range test's suggestion, reusing the one in `saved` when it matches.

    With lr_rule 'probe' the rehearsals of probe.py choose around blowup's pick (reused from `saved` too).
    A range test that ran is written to `saved` (by rank 0); under DDP every rank gets rank 0's suggestion.
    """
    if setup.recipe.optim.max_lr is not None:
        return Peak(max_lr=setup.recipe.optim.max_lr, source="given", steps_per_epoch=len(setup.train_loader))
    found = range_test(setup, reuse=saved)
    if setup.recipe.range_test.lr_rule == PROBE and setup.rank == 0:
        found = _probe(setup, found)
    max_lr = all_reduce_sum([found["suggested_lr"] if setup.rank == 0 else 0.0], setup.device)[0]
    if setup.rank == 0 and not found["reused"]:
        save_json(obj=found, path=saved)
    return Peak(max_lr=max_lr, source="lr range test", steps_per_epoch=len(setup.train_loader), lr_finder=found)


def _probe(setup: Setup, found: dict[str, Any]) -> dict[str, Any]:
    """The probe's choice on one process; under DDP only a saved one (the rehearsals train on one device)."""
    if setup.world == 1:
        return probe_peak(setup, found)
    if found.get("probe") is None:
        raise ValueError(
            "lr_rule='probe' trains short rehearsals on one device, so it cannot start under torchrun; run peak_lr "
            "(notebook 04's peak cell) with the same recipe and out_dir on one GPU first (its lr_finder.json is then "
            "reused), or give max_lr, or choose a rule read off the curve (lr_rule='blowup')."
        )
    return probe_peak(prepare(setup.model, setup.data, setup.recipe, rank=0, world=1), found, may_train=False)


def peak_lr(model: nn.Module, data: ImageData, recipe: Recipe) -> Peak:
    """The peak that fit(model, data, recipe) will train with, found before training (notebook 04 shows it).

    With max_lr None the range test runs, or notebook 03's {out_dir}/lr_finder.json is reused when it was made
    with the same model, weights, data and settings; fit then reuses this one.
    """
    return choose_peak(
        prepare(model, data, recipe, rank=0, world=1), saved=Path(recipe.outputs.out_dir) / LR_FINDER_FILE
    )


def lr_schedule(recipe: Recipe, peak: Peak) -> list[float]:
    """The LR of every training step that fit will use: the recipe's One-Cycle schedule at this peak."""
    o = recipe.optim
    return [one_cycle_lr(step=i, max_lr=peak.max_lr, epochs=o.epochs, peak_epoch=o.peak_epoch,
                         steps_per_epoch=peak.steps_per_epoch, div_factor=o.div_factor,
                         final_div_factor=o.final_div_factor)
            for i in range(o.epochs * peak.steps_per_epoch)]  # fmt: skip
