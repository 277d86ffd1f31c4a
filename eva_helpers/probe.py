"""The `probe` rule: the One-Cycle peak chosen by short rehearsals of the recipe, scored on held-out training images.

A range test reads the training loss over its first ~100 steps. On the two proxies of benchmarks/lr_sweep.py the
best peaks are 16x apart while their curves look alike, so no rule that reads one point of the curve lands near
both. The probe asks the question itself, as Smith reads held-out accuracy: it trains the recipe for half its
epochs (peaking at half its peak epoch) at blowup's pick and at 1/4, 1/16 and 1/64 of it, each from the same
starting weights on the training images less a class-balanced held-out part. A range test that blows up early puts
blowup's pick below the best peak, so while the top rehearsal alone scores best the probe steps up by x4 (three
times at most, never above the range test's finder_end_lr). The candidates are x4 apart, so the peak is read
between them: a parabola in log(LR) through the best rehearsal and its two neighbours, whose top lies within x2 of
the best (at the ends of the range, or beside a diverged rehearsal, the best itself). It costs about two runs of
the recipe, and half a run for each step up; the test split is never read.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .data import ImageData, hold_out
from .device import seed_everything
from .engine import TrainingDiverged, evaluate, train_epoch
from .files import rng_state, set_rng_state
from .lr_finder import PROBE
from .recipe import Recipe
from .run_setup import Setup, one_cycle_parts, prepare

CANDIDATES = 4  # blowup's pick and three below it
APART = 4.0  # each candidate a quarter of the one above
STEPS_UP = 3  # at most this many steps above blowup's pick, each x APART


def held_out_size(n_train: int) -> int:
    """Images held out to score the rehearsals: 5% of the training split, at least 1,000, at most a fifth."""
    return min(n_train // 5, max(1000, n_train // 20))


def probe_peak(setup: Setup, found: dict[str, Any], *, may_train: bool = True) -> dict[str, Any]:
    """The range test's result `found` with the probe's choice as its suggested_lr, and the rehearsals under "probe".

    The rehearsals start from blowup's pick in `found`. Those that `found` already holds for this probe (same top,
    schedule, seed and training images) are reused, and only missing ones train; with may_train False (under
    torchrun) a missing one is an error. The model is left as it was.
    """
    recipe, o = setup.recipe, setup.recipe.optim
    top = float(found["suggestions"]["blowup"])
    schedule = {"epochs": max(1, o.epochs // 2), "peak_epoch": max(1, o.peak_epoch // 2)}
    key = {"top": top, **schedule, "seed": recipe.machine.seed, "n_train": int(len(setup.data.y_train))}
    earlier = found.get("probe") or {}
    saved = earlier["runs"] if earlier.get("key") == key else []
    n = held_out_size(len(setup.data.y_train))
    if n < len(set(setup.data.y_train.tolist())):
        raise ValueError(
            f"lr_rule='probe' holds out {n} of {len(setup.data.y_train)} training images, fewer than one per class; "
            "use another lr_rule (blowup) for so little data, or give max_lr."
        )
    data, rng = None, rng_state()  # each rehearsal seeds afresh; the run that follows goes on as without them
    runs: list[dict[str, Any]] = []
    for max_lr in candidates(top, runs, ceiling=recipe.range_test.finder_end_lr):
        kept = [r for r in saved if math.isclose(r["max_lr"], max_lr)]
        if kept:
            runs.append(kept[0])
            continue
        if not may_train:
            raise ValueError(
                f"lr_rule='probe' needs a rehearsal at max_lr {max_lr:.3g} that the saved probe lacks, and rehearsals "
                "train on one device, not under torchrun; run peak_lr (notebook 04's peak cell) with the same recipe "
                "and out_dir on one GPU first, or give max_lr."
            )
        if data is None:
            data = hold_out(setup.data, n=n, seed=recipe.machine.seed)
        runs.append(rehearsal(setup.model, data, recipe.replace(max_lr=max_lr, **schedule, tta=False)))
    set_rng_state(rng)
    runs.sort(key=lambda r: -r["max_lr"])
    if all(r["score"] is None for r in runs):
        raise TrainingDiverged(
            f"lr_rule='probe': the recipe diverged at every peak from {runs[0]['max_lr']:.3g} down to "
            f"{runs[-1]['max_lr']:.3g}; give max_lr, or lower finder_end_lr so that the range test blows up lower."
        )
    chosen = read_peak(runs)
    probe = {"key": key, "max_lr": chosen, "held_out": n, "runs": runs}
    trained = data is not None
    return {**found, "rule": PROBE, "suggested_lr": chosen, "probe": probe, **({"reused": False} if trained else {})}


def candidates(top: float, runs: list[dict[str, Any]], *, ceiling: float) -> Iterator[float]:
    """The peaks to rehearse, given the rehearsals so far in `runs` (the caller appends each one): blowup's pick
    `top` and CANDIDATES - 1 below it, x APART apart; then, up to STEPS_UP times, x APART above the highest while
    it alone scores best (a tie at chance says nothing) and the next stays within the range test's range, `ceiling`."""
    yield from (top / APART**k for k in range(CANDIDATES))
    for _ in range(STEPS_UP):
        highest = max(runs, key=lambda r: r["max_lr"])
        others = [r["score"] for r in runs if r is not highest and r["score"] is not None]
        if highest["score"] is None or highest["score"] <= max(others) or highest["max_lr"] * APART > ceiling:
            return
        yield highest["max_lr"] * APART


def rehearsal(model: nn.Module, data: ImageData, recipe: Recipe) -> dict[str, Any]:
    """{max_lr, score, seconds} of one rehearsal of `recipe` on a copy of `model`; score None where it diverged."""
    started = time.perf_counter()
    try:
        score = rehearse(copy.deepcopy(model), data, recipe)
    except TrainingDiverged:
        score = None  # a peak at which the recipe diverges is never chosen
    o = recipe.optim
    if recipe.machine.progress:
        said = "diverged" if score is None else f"{score:.2%} on {len(data.y_test):,} held-out training images"
        print(f"probe: max_lr {o.max_lr:.3g} for {o.epochs} epochs, {said}", flush=True)
    return {"max_lr": o.max_lr, "score": score, "seconds": round(time.perf_counter() - started, 1)}


def read_peak(runs: list[dict[str, Any]]) -> float:
    """The peak the rehearsals point to: the top of the parabola in log(LR) through the best-scoring rehearsal and
    its two neighbours; the best rehearsal's own peak when it lies at an end of the range, or beside one that
    diverged (score None). The top of such a parabola is never more than half a step (x2) from the best."""
    scored = [i for i, r in enumerate(runs) if r["score"] is not None]
    i = max(scored, key=lambda j: runs[j]["score"])
    if i == 0 or i == len(runs) - 1 or runs[i - 1]["score"] is None or runs[i + 1]["score"] is None:
        return float(runs[i]["max_lr"])
    above, best, below = (runs[j]["score"] for j in (i - 1, i, i + 1))
    bend = above - 2 * best + below  # <= 0: the middle scores best
    step = 0.0 if bend == 0 else (below - above) / (2 * bend)  # in steps towards the larger peak, within +-1/2
    lo, hi = math.log(runs[i]["max_lr"]), math.log(runs[i - 1]["max_lr"])
    return float(math.exp(lo + step * (hi - lo)))


def rehearse(model: nn.Module, data: ImageData, recipe: Recipe) -> float:
    """The accuracy on data's held-out images after training `model` in place with the recipe (its max_lr given):
    training.fit's steps on one device, without its checkpoints, files or evaluation after every epoch."""
    seed_everything(recipe.machine.seed)
    setup = prepare(model, data, recipe, rank=0, world=1)
    parts = one_cycle_parts(model, setup, max_lr=recipe.optim.max_lr)
    net = torch.compile(model) if recipe.machine.compile else model
    for epoch in range(recipe.optim.epochs):
        setup.train_loader.set_epoch(epoch)
        train_epoch(model=net, loader=setup.train_loader, optimizer=parts.optimizer, scheduler=parts.scheduler,
                    criterion=parts.criterion, device=setup.device, amp_dtype=setup.amp_dtype, scaler=parts.scaler,
                    epoch=epoch, channels_last=recipe.machine.channels_last, progress=False, ema=parts.ema)  # fmt: skip
    scored = parts.ema.module if parts.ema is not None else net
    ev = evaluate(model=scored, loader=setup.test_loader, device=setup.device, amp_dtype=None,
                  channels_last=recipe.machine.channels_last, tta=recipe.network.tta)  # fmt: skip
    return ev["correct"] / ev["seen"]
