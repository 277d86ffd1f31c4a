"""The One-Cycle LR schedule without annihilation, peaking exactly at the end of a given epoch."""

from __future__ import annotations

import torch


def one_cycle_lr(
    *,
    step: int,
    max_lr: float,
    epochs: int,
    peak_epoch: int,
    steps_per_epoch: int,
    div_factor: float = 100.0,
    final_div_factor: float = 100.0,
) -> float:
    """The LR of 0-based training step `step`: linear up to max_lr at the peak epoch's last step, then linear down."""
    total = epochs * steps_per_epoch
    peak = peak_epoch * steps_per_epoch - 1  # index of the last step of the peak epoch
    if not 0 <= step < total:
        raise ValueError(f"step={step} is outside the schedule's {total} steps")
    start = max_lr / div_factor
    end = start / final_div_factor
    if step <= peak:
        return max_lr if peak == 0 else start + (max_lr - start) * step / peak
    return max_lr + (end - max_lr) * (step - peak) / (total - 1 - peak)


def one_cycle(
    *,
    optimizer: torch.optim.Optimizer,
    max_lr: float,
    epochs: int,
    peak_epoch: int,
    steps_per_epoch: int,
    div_factor: float = 100.0,
    final_div_factor: float = 100.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to step after every batch; it gives the same LRs as OneCycleLR(three_phase=False, linear).

    torch's OneCycleLR divides by zero when the warm-up is a single step (tiny runs), so the same
    piecewise-linear curve is computed in closed form here and tested against OneCycleLR.
    """
    if not 0 < peak_epoch <= epochs:
        raise ValueError(f"peak_epoch={peak_epoch} is outside (0, epochs={epochs}]; lower peak_epoch or raise epochs.")
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch={steps_per_epoch} must be at least 1")
    shape = dict(
        max_lr=max_lr,
        epochs=epochs,
        peak_epoch=peak_epoch,
        steps_per_epoch=steps_per_epoch,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
    total = epochs * steps_per_epoch
    for group in optimizer.param_groups:
        group["lr"] = max_lr
        group.pop("initial_lr", None)

    def factor(step: int) -> float:
        return one_cycle_lr(step=min(step, total - 1), **shape) / max_lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
