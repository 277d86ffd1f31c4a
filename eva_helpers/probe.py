"""The `probe` rule: the One-Cycle peak chosen by short rehearsals of the recipe, scored on held-out training images.

A range test reads the training loss over its first ~100 steps. On the two proxies of benchmarks/lr_sweep.py the
best peaks are 16x apart while their curves look alike, so no rule that reads one point of the curve lands near
both. The probe asks the question itself, as Smith reads held-out accuracy: it trains the recipe for half its
epochs (peaking at half its peak epoch) at blowup's pick and at 1/4, 1/16 and 1/64 of it, each from the same
starting weights on the training images less a class-balanced held-out part. The candidates are x4 apart, so the
peak is read between them: a parabola in log(LR) through the best rehearsal and its two neighbours, whose top lies
within x2 of the best (at the ends of the range, or beside a diverged rehearsal, the best itself). It costs about
two runs of the recipe; the test split is never read.
"""

from __future__ import annotations

import copy
import math
import time
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


def held_out_size(n_train: int) -> int:
    """Images held out to score the rehearsals: 5% of the training split, at least 1,000, at most a fifth."""
    return min(n_train // 5, max(1000, n_train // 20))


def probe_peak(setup: Setup, found: dict[str, Any]) -> dict[str, Any]:
    """The range test's result `found` with the probe's choice as its suggested_lr, and the rehearsals under "probe".

    The rehearsals start from blowup's pick in `found`; a result that already holds this probe's rehearsals (same
    top, schedule and seed) is returned as it is. The model is left as it was.
    """
    recipe, o = setup.recipe, setup.recipe.optim
    top = float(found["suggestions"]["blowup"])
    schedule = {"epochs": max(1, o.epochs // 2), "peak_epoch": max(1, o.peak_epoch // 2)}
    key = {"top": top, **schedule, "seed": recipe.machine.seed, "n_train": int(len(setup.data.y_train))}
    earlier = found.get("probe") or {}
    if earlier.get("key") == key:  # the pick is read again from the scores: a probe saved by an older rule is kept
        chosen = read_peak(earlier["runs"])
        return {**found, "rule": PROBE, "suggested_lr": chosen, "probe": {**earlier, "max_lr": chosen}}
    n = held_out_size(len(setup.data.y_train))
    if n < len(set(setup.data.y_train.tolist())):
        raise ValueError(
            f"lr_rule='probe' holds out {n} of {len(setup.data.y_train)} training images, fewer than one per class; "
            "use another lr_rule (blowup) for so little data, or give max_lr."
        )
    data = hold_out(setup.data, n=n, seed=recipe.machine.seed)
    runs, rng = [], rng_state()  # each rehearsal seeds afresh; the run that follows goes on as without them
    for k in range(CANDIDATES):
        max_lr = top / APART**k
        started = time.perf_counter()
        try:
            score = rehearse(copy.deepcopy(setup.model), data, recipe.replace(max_lr=max_lr, **schedule, tta=False))
        except TrainingDiverged:
            score = None  # a peak at which the recipe diverges is never chosen
        runs.append({"max_lr": max_lr, "score": score, "seconds": round(time.perf_counter() - started, 1)})
        if recipe.machine.progress:
            said = "diverged" if score is None else f"{score:.2%} on {n:,} held-out training images"
            print(f"probe {k + 1}/{CANDIDATES}: max_lr {max_lr:.3g} for {schedule['epochs']} epochs, {said}",
                  flush=True)  # fmt: skip
    set_rng_state(rng)
    trained = [r for r in runs if r["score"] is not None]
    if not trained:
        raise TrainingDiverged(
            f"lr_rule='probe': the recipe diverged at every peak from {top:.3g} down to "
            f"{top / APART ** (CANDIDATES - 1):.3g}; give max_lr, or lower finder_end_lr so that the range test "
            "blows up lower."
        )
    chosen = read_peak(runs)
    probe = {"key": key, "max_lr": chosen, "held_out": n, "runs": runs}
    return {**found, "rule": PROBE, "suggested_lr": chosen, "probe": probe, "reused": False}


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
