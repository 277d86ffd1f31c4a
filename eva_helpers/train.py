"""Notebook 04's recipe: One-Cycle SGD with a checkpoint every epoch, resume, and data-parallel training.

python -m eva_helpers.train --dataset cifar10 --epochs 24 --out_dir outputs   (the command line: cli.py)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .augment import resolve_augment
from .checkpoint import RunLog, load_checkpoint, restore, save_checkpoint, save_model
from .data import ImageData
from .device import (
    all_reduce_sum,
    distributed,
    pick_device,
    pick_precision,
    precision_name,
    provenance,
    rank_and_world,
    seed_everything,
    versions,
)
from .engine import evaluate, train_epoch
from .files import save_json
from .loaders import eval_batch_size, make_loaders
from .lr_finder import RULES, lr_range_test
from .models import model_name
from .params import pick
from .schedule import one_cycle
from .validate import choice

_PRODUCTS = {"checkpoint": "pt", "metrics": "json", "model": "pt", "lr_finder": "json"}  # what fit writes in out_dir


@dataclass
class Setup:
    """What training and the LR range test share: the model placed on its device, the loaders, the precision."""

    model: nn.Module
    data: ImageData
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype; None is fp32
    augment: dict  # the resolved augmentation knobs
    train_loader: Any
    test_loader: Any
    knobs: dict  # prepare's own arguments, to build the same loaders again
    rank: int = 0
    world: int = 1


@dataclass
class FitResult:
    """What fit returns: the metrics (as in metrics.json), where the products are, and the range test if it ran."""

    metrics: dict[str, Any]
    paths: dict[str, Path]
    lr_finder: dict[str, Any] | None = None

    @property
    def history(self) -> list[dict[str, float]]:
        """Per epoch: epoch, train_loss, train_acc, test_loss, test_acc, lr."""
        return self.metrics["history"]

    @property
    def test_acc(self) -> float | None:
        """The last epoch's accuracy on the held-out split."""
        return self.metrics["test_acc"]


def prepare(*, model: nn.Module, data: ImageData, batch_size: int = 512, loader: str = "auto", device: str = "auto",
            precision: str = "auto", channels_last: bool = True, num_workers: int | None = None, seed: int = 1,
            pad: int | None = None, flip: bool = True, cutout: int | None = None, rotate: float | None = None,
            rgb_shift: int | None = None, rank: int | None = None, world: int | None = None) -> Setup:  # fmt: skip
    """Place the model on the device, build the loaders with the dataset's augmentation, choose the precision.

    rank and world default to this process's under torchrun (0 and 1 otherwise).
    """
    knobs = {k: v for k, v in locals().items() if k not in ("model", "data", "rank", "world")}
    here_rank, here_world = rank_and_world()
    rank, world = here_rank if rank is None else rank, here_world if world is None else world
    dev = pick_device(device)
    if dev.type == "cuda" and here_world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", here_rank)))
    tune_backends(dev)
    augment = resolve_augment(dataset=data.name, pad=pad, flip=flip, cutout=cutout, rotate=rotate, rgb_shift=rgb_shift)
    model = model.to(device=dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    share = len(range(rank, len(data.y_test), world))  # this rank's held-out images
    train_loader, test_loader = make_loaders(
        data=data, batch_size=batch_size, device=dev, augment=augment, loader=loader, seed=seed,
        num_workers=num_workers, channels_last=channels_last, rank=rank, world_size=world,
        eval_batch_size=eval_batch_size(n=share, cap=max(batch_size, 1000) if dev.type == "cuda" else batch_size),
    )  # fmt: skip
    return Setup(model=model, data=data, device=dev, amp_dtype=pick_precision(precision=precision, device=dev),
                 augment=augment, train_loader=train_loader, test_loader=test_loader, knobs=knobs, rank=rank,
                 world=world)  # fmt: skip


def tune_backends(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once: training shapes are fixed, the last batch dropped."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def make_sgd(*, model: nn.Module, lr: float, momentum: float = 0.9, nesterov: bool = True,
             weight_decay: float = 5e-4) -> torch.optim.SGD:  # fmt: skip
    """The recipe's optimiser: SGD with momentum (Nesterov where momentum > 0) and L2 weight decay.

    On CUDA it is torch's fused SGD: fewer kernels, and fp16's inf check stays on the GPU (no host sync).
    """
    params = list(model.parameters())
    fused = "fused" in inspect.signature(torch.optim.SGD).parameters and all(p.is_cuda for p in params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                           weight_decay=weight_decay, **({"fused": True} if fused else {}))  # fmt: skip


def lr_test(*, setup: Setup, finder_start_lr: float = 1e-5, finder_end_lr: float = 10.0, finder_iters: int = 100,
            lr_rule: str = "valley", momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 5e-4,
            label_smoothing: float = 0.0, progress: bool = True,
            reuse: str | Path | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The LR range test with the recipe's optimiser, loss, loader and precision; the model is restored after.

    The result carries a fingerprint of everything that shapes the curve: the model's class, logit scale and
    weights, the training images, the loader and augmentation settings, the precision and the range test's own
    settings. `reuse` names an earlier result (notebook 03's lr_finder.json, say): when its fingerprint is this
    one, its curve is returned (with `lr_rule`'s suggestion) instead of running the same test again.

    Under DDP it runs on rank 0 alone, on the global batch that training steps with, and returns None on
    the other ranks: a per-rank slice of the batch would suggest an LR for another batch size.
    """
    if setup.world > 1:
        if setup.rank > 0:
            return None
        setup = prepare(model=setup.model, data=setup.data, **setup.knobs, rank=0, world=1)
    fingerprint = range_test_fingerprint(setup=setup, settings={
        "finder_start_lr": finder_start_lr, "finder_end_lr": finder_end_lr, "finder_iters": finder_iters,
        "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay, "label_smoothing": label_smoothing,
    })  # fmt: skip
    earlier = _read_result(reuse)
    if isinstance(earlier, dict) and earlier.get("fingerprint") == fingerprint:
        choice("lr_rule", lr_rule, RULES)
        return {**earlier, "rule": lr_rule, "suggested_lr": earlier["suggestions"][lr_rule], "reused": str(reuse)}
    setup.train_loader.set_epoch(-1)  # its own shuffle, so training epochs draw the same data with or without it
    sgd = make_sgd(model=setup.model, lr=finder_start_lr, momentum=momentum, nesterov=nesterov,
                   weight_decay=weight_decay)  # fmt: skip
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    found = lr_range_test(model=setup.model, optimizer=sgd, criterion=criterion, train_loader=setup.train_loader,
                          device=setup.device, start_lr=finder_start_lr, end_lr=finder_end_lr, num_iter=finder_iters,
                          amp_dtype=setup.amp_dtype, rule=lr_rule, progress=progress)  # fmt: skip
    return {**found, "fingerprint": fingerprint, "reused": None}


def _read_result(path: str | Path | None) -> dict[str, Any] | None:
    """An earlier range test's JSON, or None when there is none or it cannot be read (the test then runs)."""
    try:
        return json.loads(Path(path).read_text()) if path is not None and Path(path).is_file() else None
    except (OSError, ValueError):
        return None


def range_test_fingerprint(*, setup: Setup, settings: dict[str, Any]) -> str:
    """A sha256 of what shapes a range test's curve: model, weights, training images, loader, precision, settings."""
    digest = hashlib.sha256()
    for name, tensor in setup.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for array in (setup.data.x_train, setup.data.y_train):
        digest.update(np.ascontiguousarray(array).tobytes())
    described = {**settings, **{k: v for k, v in setup.knobs.items() if k not in ("device", "precision")},
                 "model": type(setup.model).__name__, "logit_scale": getattr(setup.model, "logit_scale", 1.0),
                 "augment": setup.augment, "amp": precision_name(setup.amp_dtype), "device": setup.device.type,
                 "torch": torch.__version__}  # fmt: skip
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def eta(epoch_seconds: list[float], left: int) -> str:
    """The time the run still needs, from the mean epoch so far (the first one, with its warm-up, left out once
    there are others), and the clock time it should end: 'ETA 12m 30s (ends 14:05)'."""
    if left <= 0:
        return "done"
    timed = epoch_seconds[1:] or epoch_seconds
    seconds = round(sum(timed) / len(timed) * left)
    ends = time.strftime("%H:%M", time.localtime(time.time() + seconds))
    h, rest = divmod(seconds, 3600)
    return f"ETA {f'{h}h ' if h else ''}{rest // 60}m {rest % 60:02d}s (ends {ends})"


def fit(
    *,
    model: nn.Module,
    data: ImageData,
    epochs: int = 24,
    peak_epoch: int = 5,
    max_lr: float | None = None,
    div_factor: float = 100.0,
    final_div_factor: float = 100.0,
    batch_size: int = 512,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.0,
    finder_start_lr: float = 1e-5,
    finder_end_lr: float = 10.0,
    finder_iters: int = 100,
    lr_rule: str = "valley",
    pad: int | None = None,
    flip: bool = True,
    cutout: int | None = None,
    rotate: float | None = None,
    rgb_shift: int | None = None,
    seed: int = 1,
    device: str = "auto",
    loader: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    tta: bool = False,
    compile: bool = False,
    sync_bn: bool = True,
    num_workers: int | None = None,
    progress: bool = True,
    out_dir: str | Path = "outputs",
    resume: bool = False,
) -> FitResult:
    """Train `model` in place on `data` with One-Cycle SGD; write checkpoint.pt, metrics.json and model.pt.

    Every epoch ends with an atomic checkpoint in out_dir; resume=True continues from it and ends
    with the same weights and metrics as an uninterrupted run (bitwise on the CPU). With
    max_lr=None the LR range test runs first (lr_finder.json) and its suggestion is the peak.
    """
    started = time.perf_counter()
    hyper = {k: v for k, v in locals().items() if k not in ("model", "data", "started")}  # the arguments, for records
    hyper["out_dir"] = str(out_dir)
    seed_everything(seed)
    setup = prepare(model=model, data=data, **pick(prepare, hyper))
    rank, world, dev, amp_dtype = setup.rank, setup.world, setup.device, setup.amp_dtype
    ran = precision_name(amp_dtype)
    paths = {k: Path(out_dir) / f"{k}.{ext}" for k, ext in _PRODUCTS.items()}
    identity = {**hyper, "logit_scale": getattr(model, "logit_scale", 1.0),
                **{f"data.{k}": v for k, v in data.args.items()}}  # what a resumed run must share  # fmt: skip
    state = load_checkpoint(path=paths["checkpoint"], resume=resume, identity=identity, device=dev, rank=rank)

    finder = None
    if state is not None:
        max_lr, finder = state["max_lr"], state.get("lr_finder")
    elif max_lr is None:
        finder = lr_test(setup=setup, reuse=paths["lr_finder"], **pick(lr_test, hyper))  # notebook 03's, if the same
        max_lr = all_reduce_sum([finder["suggested_lr"] if rank == 0 else 0.0], dev)[0]  # rank 0's suggestion
        if rank == 0:
            save_json(obj=finder, path=paths["lr_finder"])

    # The One-Cycle recipe: SGD, a schedule stepped after every batch, and the loop over epochs.
    net = distributed(model=model, device=dev, sync_bn=sync_bn) if world > 1 else model
    net = torch.compile(net) if compile else net
    optimizer = make_sgd(model=model, lr=max_lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    steps = len(setup.train_loader)
    scheduler = one_cycle(optimizer=optimizer, max_lr=max_lr, epochs=epochs, peak_epoch=peak_epoch,
                          steps_per_epoch=steps, div_factor=div_factor, final_div_factor=final_div_factor)  # fmt: skip
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    log = RunLog()
    if state is not None:
        log = restore(state=state, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, precision=ran)

    record = {
        "params": {**hyper, "model": model_name(model), "logit_scale": identity["logit_scale"], "max_lr": max_lr,
                   "augment": setup.augment},
        "data": data.args, "device": str(dev), "precision": ran, "compile": compile, **provenance(dev),
        "world_size": world, "seed": seed, "versions": versions(), "test_split": data.test_split,
        "classes": data.classes, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
        "steps_per_epoch": steps, "eval_batch_size": setup.test_loader.batch_size,
        "max_lr_source": "lr range test" if hyper["max_lr"] is None else "given",
        "lr_range_test_reused": bool(finder and finder.get("reused")),
    }  # fmt: skip
    show = progress and rank == 0
    for epoch in range(len(log.history), epochs):
        setup.train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        tr = train_epoch(model=net, loader=setup.train_loader, optimizer=optimizer, scheduler=scheduler,
                         criterion=criterion, device=dev, amp_dtype=amp_dtype, scaler=scaler, epoch=epoch,
                         channels_last=channels_last, progress=show)  # fmt: skip
        # fp32, whatever training ran in: notebook 05 and the app recompute this accuracy from model.pt in fp32 on
        # any device, and a bf16 evaluation differs from it by a few images (5 of 10,000 measured on CIFAR-10)
        ev = evaluate(model=net, loader=setup.test_loader, device=dev, amp_dtype=None, channels_last=channels_last,
                      tta=tta)  # fmt: skip
        loss, correct, seen, ev_loss, ev_correct, ev_seen = all_reduce_sum(
            [tr["loss"], tr["correct"], tr["seen"], ev["loss_sum"], ev["correct"], ev["seen"]], dev
        )
        log.epoch_seconds.append(time.perf_counter() - t0)
        row = {"epoch": epoch + 1, "train_loss": loss / world, "train_acc": correct / seen,
               "test_loss": ev_loss / ev_seen, "test_acc": ev_correct / ev_seen, "lr": tr["lrs"][-1]}  # fmt: skip
        log.history.append(row)
        log.lr_per_step.extend(tr["lrs"])
        t0 = time.perf_counter()
        if rank == 0:
            save_checkpoint(path=paths["checkpoint"], identity=identity, max_lr=max_lr, lr_finder=finder, model=model,
                            optimizer=optimizer, scheduler=scheduler, scaler=scaler, precision=ran, log=log,
                            elapsed=time.perf_counter() - started)  # fmt: skip
            log.checkpoint_seconds.append(time.perf_counter() - t0)  # in metrics.json; the next checkpoint holds it
            save_json(obj=log.metrics(record=record, finished=False), path=paths["metrics"])
        if show:
            h = log.history[-1]
            print(f"epoch {h['epoch']:>3}/{epochs}  train loss {h['train_loss']:.4f} acc {h['train_acc']:.2%}  "
                  f"{data.test_split} loss {h['test_loss']:.4f} acc {h['test_acc']:.2%}  "
                  f"lr {h['lr']:.2e}  {log.epoch_seconds[-1]:.1f}s  {eta(log.epoch_seconds, epochs - epoch - 1)}",
                  flush=True)  # fmt: skip

    log.wall_seconds += time.perf_counter() - started
    result = log.metrics(record=record, finished=True)
    if rank == 0:
        save_model(path=paths["model"], model=model, data=data, metrics=result)
        save_json(obj=result, path=paths["metrics"])
    return FitResult(metrics=result, paths=paths, lr_finder=finder)


if __name__ == "__main__":  # python -m eva_helpers.train: the command line lives in cli.py
    from eva_helpers.cli import main

    sys.exit(main())
