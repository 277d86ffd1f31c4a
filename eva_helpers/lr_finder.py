"""The LR range test through torch-lr-finder (safe for NaN losses, quiet), and the rules that read its suggestion."""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from unittest import mock

import numpy as np
import torch
import torch_lr_finder.lr_finder
from torch_lr_finder import LRFinder, TrainDataLoaderIter

from .validate import choice


class _Diverged(Exception):
    """Raised inside the range test when the loss is NaN or infinite."""


class _GuardedLoss(torch.nn.Module):
    """The criterion, raising _Diverged on a non-finite loss (torch-lr-finder's own check misses NaN)."""

    def __init__(self, criterion):
        super().__init__()
        self.criterion = criterion

    def forward(self, out, y):
        loss = self.criterion(out, y)
        if not torch.isfinite(loss.detach()).item():
            raise _Diverged
        return loss


class _Batches(TrainDataLoaderIter):
    """Adapts any iterable of (inputs, labels) batches (our loaders) to torch-lr-finder."""

    def inputs_labels_from_batch(self, batch_data):
        x, y = batch_data
        return x, y


def _finite_curve(*, lr, loss) -> tuple[np.ndarray, np.ndarray]:
    """The curve's points with a finite loss, as float arrays; fewer than 3 of them is an error naming the fix."""
    lr, loss = np.asarray(lr, dtype=float), np.asarray(loss, dtype=float)
    keep = np.isfinite(loss)
    lr, loss = lr[keep], loss[keep]
    if len(loss) < 3:
        raise ValueError(
            f"the range test has only {len(loss)} finite points; raise finder_iters or lower finder_start_lr."
        )
    return lr, loss


def steepest_lr(*, lr, loss, skip_start: int = 10, skip_end: int = 5) -> float:
    """torch-lr-finder's suggestion: the LR where the loss falls fastest, after trimming both ends."""
    lr, loss = _finite_curve(lr=lr, loss=loss)
    while len(loss) - skip_start - skip_end < 3:  # short curves: trim less
        skip_start, skip_end = max(0, skip_start // 2), max(0, skip_end // 2)
        if skip_start == skip_end == 0:
            break
    stop = len(loss) - skip_end
    window_lr, window_loss = lr[skip_start:stop], loss[skip_start:stop]
    return float(window_lr[np.gradient(window_loss).argmin()])


RULES = ("valley", "steep", "minimum", "blowup")  # how a suggestion is read off the curve
PROBE = "probe"  # not read off the curve: short rehearsals of the recipe choose around blowup's pick (probe.py)
LR_RULES = (*RULES, PROBE)  # what lr_rule may be
MIN_DROP = 0.05  # a curve whose loss never falls by 5% of its start has no usable descent
BLOWUP_CLIMB = 0.25  # the loss has blown up once it climbs a quarter of the curve's whole fall above its best so far
BLOWUP_FACTOR = 10.0  # the blowup rule trains an order of magnitude below the blow-up (Smith's margin)


def suggest(*, lr, loss) -> tuple[dict[str, float], str | None]:
    """Each rule's LR, all of them read off the descending part of the curve (before the loss minimum).

    - valley: the middle of the longest stretch over which the loss keeps falling (fastai's idea);
    - steep: where the loss falls fastest, after the first points (torch-lr-finder's rule, cut at the minimum);
    - minimum: a tenth of the LR at the loss minimum;
    - blowup: the largest LR before the loss blows up (climbs BLOWUP_CLIMB of the curve's whole fall above its
      best so far), divided by BLOWUP_FACTOR; a curve that never blows up gives its last LR, a lower bound,
      divided the same way.

    Past the minimum the loss has blown up, and a later dip (the loss falling back from its blow-up
    before it diverges) is no place to train at. Returns ({rule: lr}, None), or, for a curve with no
    usable descent (flat, or rising from the start), every rule at a tenth of the lowest-loss LR and a
    warning saying what to try.
    """
    lr, loss = _finite_curve(lr=lr, loss=loss)
    low = int(loss.argmin())
    drop = (loss[0] - loss[low]) / max(abs(loss[0]), 1e-12)
    if low < 2 or drop < MIN_DROP:
        fallback = float(lr[low] / 10)
        why = (f"the LR range test found no usable descent: the loss went from {loss[0]:.3g} to at best "
               f"{loss[low]:.3g} at LR {lr[low]:.2g} ({100 * drop:.0f}% lower), so the curve is flat or rises from the "
               f"start. Its suggestion {fallback:.2g} is a guess; lower finder_start_lr, raise finder_iters, or give "
               "max_lr yourself (the recipe's value in configs/).")  # fmt: skip
        return dict.fromkeys(RULES, fallback), why
    descent = loss[: low + 1]
    skip = min(len(descent) // 4, 10)  # the first points are the noisiest
    steep = skip + int(np.gradient(descent)[skip:].argmin()) if len(descent) - skip >= 2 else low
    return {
        "valley": float(lr[_valley_middle(descent)]),
        "steep": float(lr[steep]),
        "minimum": float(lr[low] / 10),
        "blowup": float(lr[_blowup(loss)] / BLOWUP_FACTOR),
    }, None


def _blowup(loss: np.ndarray) -> int:
    """The last index before the loss first climbs BLOWUP_CLIMB of the whole fall above its best so far (else the
    last index). Measured against the whole fall, the noise of a flat start never counts as a blow-up."""
    best = np.minimum.accumulate(loss)
    up = np.flatnonzero(loss - best > BLOWUP_CLIMB * (loss[0] - loss.min()))
    return int(up[0]) - 1 if len(up) else len(loss) - 1


def _valley_middle(loss: np.ndarray) -> int:
    """The index halfway along the longest strictly falling subsequence of loss (in log-LR steps)."""
    n = len(loss)
    length, start = [1] * n, list(range(n))
    for i in range(n):
        for j in range(i):
            if loss[j] > loss[i] and length[j] + 1 > length[i]:
                length[i], start[i] = length[j] + 1, start[j]
    end = max(range(n), key=lambda i: (length[i], -i))  # the longest; of equals, the first to end
    return (start[end] + end) // 2


def lr_range_test(
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion,
    train_loader,
    device: torch.device,
    start_lr: float = 1e-5,
    end_lr: float = 10.0,
    num_iter: int = 100,
    amp_dtype: torch.dtype | None = None,
    diverge_th: float = 5.0,
    rule: str = "valley",
    progress: bool = True,
) -> dict:
    """Run an exponential LR range test and restore the model and optimizer afterwards.

    Returns {"suggested_lr", "rule", "suggestions", "lr", "loss", "diverged", "warning"}: the curve
    (smoothed losses, as torch-lr-finder records them), every rule's LR (see suggest) and the chosen
    rule's. The test stops early, cleanly, when the loss exceeds diverge_th times its best or becomes
    NaN/inf. A curve with no usable descent warns (and "warning" says so too).
    """
    choice("lr_rule", rule, RULES)
    amp = {}
    if amp_dtype is not None:
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        amp = dict(amp_backend="torch", amp_config={"device_type": device.type, "dtype": amp_dtype}, grad_scaler=scaler)
    finder = LRFinder(model, optimizer, _GuardedLoss(criterion), device=device, **amp)
    diverged = False
    try:
        # the library prints and draws its own tqdm bar; we return values, and honour progress=False
        quiet_bar = (
            contextlib.nullcontext()
            if progress
            else mock.patch.object(
                torch_lr_finder.lr_finder, "tqdm", functools.partial(torch_lr_finder.lr_finder.tqdm, disable=True)
            )
        )
        with contextlib.redirect_stdout(io.StringIO()), quiet_bar:
            finder.range_test(
                _Batches(train_loader),
                start_lr=start_lr,
                end_lr=end_lr,
                num_iter=num_iter,
                step_mode="exp",
                diverge_th=diverge_th,
            )
    except _Diverged:
        diverged = True
    finally:
        finder.reset()
    lr, loss = list(map(float, finder.history["lr"])), list(map(float, finder.history["loss"]))
    n = len(loss)
    if n < num_iter:
        lr = lr[:n]
        diverged = True
    elif n and loss[-1] > diverge_th * min(loss):
        diverged = True
    suggestions, why = suggest(lr=lr, loss=loss)
    if why:
        warnings.warn(why, stacklevel=2)
    return {"suggested_lr": suggestions[rule], "rule": rule, "suggestions": suggestions, "lr": lr, "loss": loss,
            "diverged": diverged, "warning": why}  # fmt: skip
