"""The loops: one training epoch and one evaluation pass, under autocast, with divergence checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from .device import autocast, rank_and_world
from .inference import eval_logits


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message gives the epoch, the step and the LR."""


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def train_epoch(
    *,
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    criterion: Callable,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int = 0,
    channels_last: bool = True,
    progress: bool = True,
    check_every: int = 20,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
) -> dict:
    """Train for one pass over `loader`, stepping the scheduler (and `ema`, the weights' moving average, if given)
    after every batch.

    Returns the epoch's mean loss, accuracy, image count and the LR each step used. Losses stay
    on the device and are checked for NaN/inf every `check_every` steps, so a GPU is not made to
    wait on every step; a bad loss raises TrainingDiverged naming the first bad step.
    """
    model.train()
    steps = len(loader)
    losses = torch.zeros(steps, device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, lrs = 0, []
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
    checked = 0
    for step, (x, y) in enumerate(loader):
        x, y = _to(x, device, channels_last), y.to(device, non_blocking=True)
        lrs.append(optimizer.param_groups[0]["lr"])
        with autocast(device=device, dtype=amp_dtype):
            out = model(x)
            loss = criterion(out, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)  # a DDP or compiled wrapper yields the same parameters in order
        losses[step] = loss.detach().float()
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
        bar.update()
        if step + 1 - checked >= check_every or step + 1 == steps:
            last = _check_finite(losses[checked : step + 1], first_step=checked, epoch=epoch, lrs=lrs, steps=steps)
            checked = step + 1
            if progress:
                bar.set_postfix(loss=f"{last:.3f}", lr=f"{lrs[-1]:.2e}")
    bar.close()
    return {"loss": losses.mean().item(), "correct": int(correct.item()), "seen": seen, "lrs": lrs}


def _check_finite(chunk: torch.Tensor, *, first_step: int, epoch: int, lrs: list, steps: int) -> float:
    """Raise TrainingDiverged on every rank if any rank's losses in chunk are not finite; else the last loss.

    One host sync per check: the chunk comes back in one copy. Under DDP the first bad step is agreed
    on with one tiny all-reduce, so a NaN on one rank stops all of them instead of leaving the others
    waiting in the next gradient all-reduce.
    """
    values = chunk.tolist()
    bad = next((first_step + i for i, v in enumerate(values) if not math.isfinite(v)), steps)
    rank, world = rank_and_world()
    if world > 1:
        flag = torch.tensor([bad], dtype=torch.int64, device=chunk.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        where = int(flag.item())
        if where < steps:
            value = values[where - first_step] if where == bad else "not finite on another rank"
            raise TrainingDiverged(_diverged(value, epoch, where, steps, lrs, f" (rank {rank} of {world})"))
    elif bad < steps:
        raise TrainingDiverged(_diverged(values[bad - first_step], epoch, bad, steps, lrs, ""))
    return values[-1]


def _diverged(value, epoch: int, step: int, steps: int, lrs: list, where: str) -> str:
    return (
        f"the training loss became {value} at epoch {epoch + 1}, step {step + 1} of {steps} "
        f"(LR {lrs[step]:.4g}){where}. Training stopped; the last good checkpoint is kept. Lower max_lr "
        f"(or run the LR range test with max_lr=None) and start again."
    )


@torch.no_grad()
def evaluate(
    *,
    model: torch.nn.Module,
    loader,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    tta: bool = False,
    progress: bool = False,
) -> dict:
    """Summed cross-entropy, correct count and image count over `loader` (sums, so ranks can add them).

    tta: also classify each image mirrored left to right and average the two logits
    (inference.eval_logits, which notebook 05 and the app use too).
    """
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        x, y = _to(x, device, channels_last), y.to(device, non_blocking=True)
        with autocast(device=device, dtype=amp_dtype):
            out = eval_logits(model, x, tta=tta)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
    return {"loss_sum": loss_sum.item(), "correct": int(correct.item()), "seen": seen}
