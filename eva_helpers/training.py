"""Training with a Recipe: One-Cycle SGD at the run's peak, a checkpoint every epoch, resume, data-parallel.

As notebook 04 calls it: `result = fit(new_model(recipe, data), data, recipe)`. The setup it shares with the LR
range test is run_setup.py, the peak is peak.py; the command line is train.py (`eva-train`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import RunLog, load_checkpoint, restore, save_checkpoint
from .data import ImageData
from .device import (
    all_reduce_sum,
    distributed,
    precision_name,
    provenance,
    seed_everything,
    versions,
)
from .engine import evaluate, train_epoch
from .files import save_json
from .model_file import save_model
from .models import model_name
from .peak import LR_FINDER_FILE, Peak, choose_peak
from .recipe import SPEC, TRAIN_PARAMS, Recipe
from .run_setup import one_cycle_parts, prepare

_PRODUCTS = {"checkpoint": "checkpoint.pt", "metrics": "metrics.json", "model": "model.pt", "lr_finder": LR_FINDER_FILE}


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

    def summary(self) -> str:
        """One line for the end of a run: the accuracy, the peak LR and where it came from, the time, the device."""
        m = self.metrics
        return (f"{m['test_split']} accuracy {m['test_acc']:.2%} after {m['epochs_done']} epochs (max_lr "
                f"{m['max_lr']:.3g}, {m['max_lr_source']}; {sum(m['epoch_seconds']):.0f}s on {m['device']}); "
                f"wrote {self.paths['metrics']}")  # fmt: skip


def _paths(recipe: Recipe) -> dict[str, Path]:
    """What fit writes in out_dir, by name."""
    return {k: Path(recipe.outputs.out_dir) / file for k, file in _PRODUCTS.items()}


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


def fit(model: nn.Module, data: ImageData, recipe: Recipe) -> FitResult:
    """Train `model` in place on `data` with the recipe's One-Cycle SGD; write checkpoint.pt, metrics.json, model.pt.

    Every epoch ends with an atomic checkpoint in out_dir; resume=True continues from it and ends with the same
    weights and metrics as an uninterrupted run (bitwise on the CPU). With max_lr None the LR range test runs
    first (lr_finder.json; notebook 03's or peak_lr's is reused when it matches) and its suggestion is the peak.
    `model` must be the recipe's network (new_model builds it): model.pt records the recipe as the truth. With
    ema > 0 the moving average of the weights is what every epoch evaluates, and what `model` holds at the end.
    """
    started = time.perf_counter()
    _check_model(model, recipe)
    o, machine = recipe.optim, recipe.machine
    seed_everything(machine.seed)
    setup = prepare(model, data, recipe)
    rank, world, dev, amp_dtype = setup.rank, setup.world, setup.device, setup.amp_dtype
    ran = precision_name(amp_dtype)
    paths = _paths(recipe)
    identity = {**recipe.to_dict(TRAIN_PARAMS), **{f"data.{k}": v for k, v in data.args.items()}}
    may_differ = {n for n, p in SPEC.items() if p.resume_may_differ}
    may_differ |= {f"data.{n}" for n in may_differ}
    state = load_checkpoint(path=paths["checkpoint"], resume=recipe.outputs.resume, identity=identity,
                            may_differ=may_differ, defaults={n: SPEC[n].default for n in TRAIN_PARAMS}, device=dev,
                            rank=rank)  # fmt: skip

    if state is not None:
        found = state.get("lr_finder")
        peak = Peak(max_lr=state["max_lr"], source="given" if o.max_lr is not None else "lr range test",
                    steps_per_epoch=len(setup.train_loader), lr_finder=found)  # fmt: skip
    else:
        peak = choose_peak(setup, saved=paths["lr_finder"])  # the range test, unless max_lr is given
    max_lr = peak.max_lr

    # The One-Cycle recipe: SGD, a schedule stepped after every batch, and the loop over epochs.
    net = distributed(model=model, device=dev, sync_bn=machine.sync_bn) if world > 1 else model
    net = torch.compile(net) if machine.compile else net
    parts = one_cycle_parts(model, setup, max_lr=max_lr)
    optimizer, scheduler, scaler, criterion, ema = (parts.optimizer, parts.scheduler, parts.scaler, parts.criterion,
                                                    parts.ema)  # fmt: skip
    steps = len(setup.train_loader)
    log = RunLog()
    if state is not None:
        log = restore(state=state, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, precision=ran,
                      ema=ema)  # fmt: skip
    scored = ema.module if ema is not None else net

    record = {
        "params": recipe.to_dict(TRAIN_PARAMS), "max_lr": max_lr, "max_lr_source": peak.source,
        "lr_range_test_reused": bool(peak.lr_finder and peak.lr_finder.get("reused")), "augment": setup.augment,
        "data": data.args, "device": str(dev), "precision": ran, **provenance(dev), "world_size": world,
        "versions": versions(), "test_split": data.test_split, "classes": data.classes,
        "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)), "steps_per_epoch": steps,
        "eval_batch_size": setup.test_loader.batch_size,
    }  # fmt: skip
    show = machine.progress and rank == 0
    for epoch in range(len(log.history), o.epochs):
        setup.train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        tr = train_epoch(model=net, loader=setup.train_loader, optimizer=optimizer, scheduler=scheduler,
                         criterion=criterion, device=dev, amp_dtype=amp_dtype, scaler=scaler, epoch=epoch,
                         channels_last=machine.channels_last, progress=show, ema=ema)  # fmt: skip
        # fp32, whatever training ran in: notebook 05 and the app recompute this accuracy from model.pt in fp32 on
        # any device, and a bf16 evaluation differs from it by a few images (5 of 10,000 measured on CIFAR-10)
        ev = evaluate(model=scored, loader=setup.test_loader, device=dev, amp_dtype=None,
                      channels_last=machine.channels_last, tta=recipe.network.tta)  # fmt: skip
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
            save_checkpoint(path=paths["checkpoint"], identity=identity, max_lr=max_lr, lr_finder=peak.lr_finder,
                            model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, precision=ran,
                            log=log, elapsed=time.perf_counter() - started, ema=ema)  # fmt: skip
            log.checkpoint_seconds.append(time.perf_counter() - t0)  # in metrics.json; the next checkpoint holds it
            save_json(obj=log.metrics(record=record, finished=False), path=paths["metrics"])
        if show:
            h = log.history[-1]
            print(f"epoch {h['epoch']:>3}/{o.epochs}  train loss {h['train_loss']:.4f} acc {h['train_acc']:.2%}  "
                  f"{data.test_split} loss {h['test_loss']:.4f} acc {h['test_acc']:.2%}  "
                  f"lr {h['lr']:.2e}  {log.epoch_seconds[-1]:.1f}s  {eta(log.epoch_seconds, o.epochs - epoch - 1)}",
                  flush=True)  # fmt: skip

    log.wall_seconds += time.perf_counter() - started
    if ema is not None:  # the model that was evaluated is the one saved and handed back
        model.load_state_dict(ema.module.state_dict())
    result = log.metrics(record=record, finished=True)
    if rank == 0:
        save_model(path=paths["model"], model=model, data=data, metrics=result)
        save_json(obj=result, path=paths["metrics"])
    return FitResult(metrics=result, paths=paths, lr_finder=peak.lr_finder)


def _check_model(model: nn.Module, recipe: Recipe) -> None:
    """The network must be the recipe's: model.pt and metrics.json name the recipe's model and logit scale."""
    name, scale = model_name(model), getattr(model, "logit_scale", None)
    want = recipe.network
    if name is not None and (name != want.model or scale != want.logit_scale):
        raise ValueError(
            f"the model is a {name} with logit_scale {scale}, but the recipe says model={want.model!r}, logit_scale="
            f"{want.logit_scale}; build it with new_model(recipe, data), or change the recipe to match."
        )
