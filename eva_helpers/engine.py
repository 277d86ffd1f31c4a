"""The loops: one training epoch, evaluation and prediction, with autocast and divergence checks."""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message gives the epoch, the step and the LR."""


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; other names are checked against the machine."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but this machine has no CUDA GPU; use device='auto' or 'cpu'.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={name!r} was asked for but MPS is not available here; use device='auto' or 'cpu'.")
    return device


def cpu_has_bf16() -> bool:
    """True where the CPU runs bf16 matrix work natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(*, precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None = fp32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise ValueError(f"precision={precision!r} is unknown; choose 'auto', 'bf16', 'fp16' or 'fp32'.")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """How metrics and benchmarks name an autocast dtype: 'bfloat16', 'float16', or 'float32' for none."""
    return str(dtype).replace("torch.", "") if dtype is not None else "float32"


def autocast(*, device: torch.device, dtype: torch.dtype | None):
    """An autocast context for dtype, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def train_epoch(
    *, model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer, scheduler, criterion: Callable,
    device: torch.device, amp_dtype: torch.dtype | None = None, scaler: torch.amp.GradScaler | None = None,
    epoch: int = 0, channels_last: bool = True, progress: bool = True, check_every: int = 20,
) -> dict:
    """Train for one pass over `loader`, stepping the scheduler after every batch.

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
        losses[step] = loss.detach().float()
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
        bar.update()
        if step + 1 - checked >= check_every or step + 1 == steps:
            _check_finite(losses[checked:step + 1], first_step=checked, epoch=epoch, lrs=lrs, steps=steps)
            checked = step + 1
            bar.set_postfix(loss=f"{losses[step].item():.3f}", lr=f"{lrs[-1]:.2e}")
    bar.close()
    return {"loss": losses.mean().item(), "correct": int(correct.item()), "seen": seen, "lrs": lrs}


def _check_finite(chunk: torch.Tensor, *, first_step: int, epoch: int, lrs: list, steps: int) -> None:
    finite = torch.isfinite(chunk)
    if bool(finite.all()):
        return
    bad = first_step + int((~finite).nonzero()[0])
    raise TrainingDiverged(
        f"the training loss became {chunk[bad - first_step].item()} at epoch {epoch + 1}, step {bad + 1} of {steps} "
        f"(LR {lrs[bad]:.4g}). Training stopped; the last good checkpoint is kept. Lower max_lr "
        f"(or run the LR range test with max_lr=None) and start again."
    )


@torch.no_grad()
def evaluate(
    *, model: torch.nn.Module, loader, device: torch.device, amp_dtype: torch.dtype | None = None,
    channels_last: bool = True, progress: bool = False,
) -> dict:
    """Summed cross-entropy, correct count and image count over `loader` (sums, so ranks can add them)."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        x, y = _to(x, device, channels_last), y.to(device, non_blocking=True)
        with autocast(device=device, dtype=amp_dtype):
            out = model(x)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
    return {"loss_sum": loss_sum.item(), "correct": int(correct.item()), "seen": seen}


@torch.no_grad()
def predict(
    *, model: torch.nn.Module, loader, device: torch.device, amp_dtype: torch.dtype | None = None,
    channels_last: bool = True, progress: bool = False,
) -> dict[str, np.ndarray]:
    """Logits (float32), per-image loss and targets for every image of `loader`, in its order."""
    model.eval()
    logits, targets = [], []
    for x, y in tqdm(loader, desc="predict", leave=False, disable=not progress):
        x = _to(x, device, channels_last)
        with autocast(device=device, dtype=amp_dtype):
            logits.append(model(x).float().cpu())
        targets.append(y.cpu())
    logits_t, targets_t = torch.cat(logits), torch.cat(targets)
    loss = F.cross_entropy(logits_t, targets_t, reduction="none")
    return {"logits": logits_t.numpy(), "loss": loss.numpy(), "targets": targets_t.numpy()}



def misclassified(*, logits: np.ndarray, targets: np.ndarray, classes) -> dict:
    """Predictions, confidences, the confusion matrix, per-class accuracy, and the mistakes sorted by loss."""
    logits_t, targets_t = torch.as_tensor(logits, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.long)
    probs = logits_t.softmax(1)
    confidence, pred = probs.max(1)
    loss = F.cross_entropy(logits_t, targets_t, reduction="none")
    k = len(classes)
    confusion = torch.bincount(targets_t * k + pred, minlength=k * k).view(k, k).numpy()  # rows: true class
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    wrong = (pred != targets_t).nonzero().flatten()
    order = wrong[loss[wrong].argsort(descending=True)].numpy()
    n = len(targets_t)
    return {"pred": pred.numpy(), "confidence": confidence.numpy(), "loss": loss.numpy(), "order": order,
            "count": int(len(wrong)), "n": n, "accuracy": 1 - len(wrong) / max(n, 1), "confusion": confusion,
            "per_class_accuracy": per_class.tolist()}


def misclassified_summary(*, report: dict, classes, test_split: str) -> dict:
    """The JSON-ready part of a misclassified() report: counts and per-class accuracy by class name."""
    return {"split": test_split, "count": report["count"], "n": report["n"], "accuracy": report["accuracy"],
            "per_class_accuracy": dict(zip(classes, report["per_class_accuracy"])),
            "confusion_matrix": report["confusion"].tolist()}
