"""The LR range test, through torch-lr-finder, made safe for NaN losses and quiet."""

from __future__ import annotations

import contextlib
import functools
import io
from unittest import mock

import numpy as np
import torch
import torch_lr_finder.lr_finder
from torch_lr_finder import LRFinder, TrainDataLoaderIter


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


def steepest_lr(*, lr, loss, skip_start: int = 10, skip_end: int = 5) -> float:
    """torch-lr-finder's suggestion: the LR where the loss falls fastest, after trimming both ends."""
    lr, loss = np.asarray(lr, dtype=float), np.asarray(loss, dtype=float)
    keep = np.isfinite(loss)
    lr, loss = lr[keep], loss[keep]
    if len(loss) < 3:
        raise ValueError(
            f"the range test has only {len(loss)} finite points; raise finder_iters or lower finder_start_lr."
        )
    while len(loss) - skip_start - skip_end < 3:  # short curves: trim less
        skip_start, skip_end = max(0, skip_start // 2), max(0, skip_end // 2)
        if skip_start == skip_end == 0:
            break
    stop = len(loss) - skip_end
    window_lr, window_loss = lr[skip_start:stop], loss[skip_start:stop]
    return float(window_lr[np.gradient(window_loss).argmin()])


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
    progress: bool = True,
) -> dict:
    """Run an exponential LR range test and restore the model and optimizer afterwards.

    Returns {"suggested_lr", "lr", "loss", "diverged"}: the curve (smoothed losses, as torch-lr-finder
    records them) and the steepest-descent suggestion. The test stops early, cleanly, when the loss
    exceeds diverge_th times its best or becomes NaN/inf.
    """
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
    return {"suggested_lr": steepest_lr(lr=lr, loss=loss), "lr": lr, "loss": loss, "diverged": diverged}
