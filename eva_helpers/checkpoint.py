"""checkpoint.pt: what training writes after every epoch, and what resume reads back (model.pt: model_file.py)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .files import load_torch, rng_state, save_torch, set_rng_state

FORMAT = 2  # 2: the run's identity (its parameters, the data's under "data.") is stored to check a resume against


@dataclass
class RunLog:
    """What a run has done so far: one history row per epoch, the LR of every step, the seconds of every epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    lr_per_step: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # training and evaluation, not the checkpoint
    checkpoint_seconds: list[float] = field(default_factory=list)  # writing each epoch's checkpoint
    wall_seconds: float = 0.0  # the whole fit: range test, compile, training, evaluation, checkpoints

    def metrics(self, *, record: dict[str, Any], finished: bool) -> dict[str, Any]:
        """metrics.json: the run's record, then how far it got and what it measured."""
        accs = [h["test_acc"] for h in self.history]
        return {
            **record,
            "finished": finished,
            "epochs_done": len(self.history),
            "history": self.history,
            "lr_per_step": self.lr_per_step,
            "test_acc": accs[-1] if accs else None,
            "best_test_acc": max(accs) if accs else None,
            "epoch_seconds": self.epoch_seconds,
            "checkpoint_seconds": self.checkpoint_seconds,
            "wall_seconds": self.wall_seconds,
        }


def save_checkpoint(*, path: Path, identity: dict, max_lr: float, lr_finder: dict | None, model: nn.Module,
                    optimizer, scheduler, scaler, precision: str, log: RunLog, elapsed: float,
                    ema: nn.Module | None = None) -> None:  # fmt: skip
    """Write everything an interrupted run needs to continue to the same weights, atomically.

    elapsed: the seconds this fit call has run so far, added to the wall clock of the runs it resumed; ema: the
    weights' moving average (an AveragedModel), if the run keeps one.
    """
    save_torch(
        path=path,
        obj={
            "format": FORMAT,
            "epoch": len(log.history),
            "identity": identity,
            "max_lr": max_lr,
            "lr_finder": lr_finder,
            "model": model.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "precision": precision,  # what ran ("bfloat16", ...), not what was asked for ("auto")
            "rng": rng_state(),
            "history": log.history,
            "lr_per_step": log.lr_per_step,
            "epoch_seconds": log.epoch_seconds,
            "checkpoint_seconds": log.checkpoint_seconds,
            "wall_seconds": log.wall_seconds + elapsed,
        },
    )


def load_checkpoint(*, path: Path, resume: bool, identity: dict, may_differ: set[str], defaults: dict,
                    device: torch.device, rank: int) -> dict | None:  # fmt: skip
    """The checkpoint to continue from (checked against this run), or None to start afresh; stale temp files go.

    Every entry of `identity` must match the checkpoint's, except those named in `may_differ` (where and how fast
    the run goes: the recipe fields marked resume_may_differ); a parameter newer than the checkpoint counts as
    its entry in `defaults` (what runs did before it existed). The precision may change too (a bf16 run from an
    A100 resumed on a T4 in fp16); restore then warns. The state is loaded onto the CPU whatever `device` is.
    """
    if rank == 0 and path.parent.is_dir():
        for stale in path.parent.glob(".*.tmp"):  # left by a write that a kill interrupted
            stale.unlink(missing_ok=True)
    if not path.exists():
        if resume and rank == 0:
            warnings.warn(f"resume=True but {path} does not exist; starting from scratch.", stacklevel=3)
        return None
    if not resume:
        if rank == 0:
            warnings.warn(
                f"{path} holds an earlier run; it will be replaced. Pass resume=True to continue it instead.",
                stacklevel=3,
            )
        return None
    # Always onto the CPU: the RNG states must stay CPU tensors, and load_state_dict copies weights and
    # optimiser buffers onto whatever device the model is on (a CPU checkpoint resumes on a GPU and back).
    state = load_torch(path=path, map_location="cpu")
    saved = state.get("identity")
    if state.get("format") != FORMAT or saved is None:
        raise ValueError(
            f"resume=True but {path} was written by another version of eva_helpers; choose a new "
            "out_dir, or delete it to start again."
        )
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    diff = {
        k: (saved.get(k), identity.get(k))
        for k in set(saved) | set(identity)
        if k not in may_differ and saved.get(k) != identity.get(k)
    }
    if diff:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
        raise ValueError(
            f"resume=True but the checkpoint in out_dir was made with other parameters ({lines}). "
            f"Pass the same parameters to continue it, or choose a new out_dir."
        )
    return state


def restore(*, state: dict, model: nn.Module, optimizer, scheduler, scaler, precision: str,
            ema: nn.Module | None = None) -> RunLog:  # fmt: skip
    """Put the checkpoint's weights (and their moving average), optimiser, schedule, scaler and RNG states back;
    return the run so far."""
    parts = [("model", model), ("optimizer", optimizer), ("scheduler", scheduler)]
    for part, obj in parts + ([("ema", ema)] if ema is not None else []):
        obj.load_state_dict(state[part])
    ran = state.get("precision")
    if ran != precision:
        warnings.warn(
            f"the checkpoint ran in {ran} and this run resumes in {precision}; an fp16 loss scale starts afresh, "
            "and the results will differ a little from an uninterrupted run.",
            stacklevel=3,
        )
    elif state["scaler"] and scaler.is_enabled():  # an fp16 run's loss scale; a disabled scaler saves {}
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return RunLog(history=state["history"], lr_per_step=state["lr_per_step"], epoch_seconds=state["epoch_seconds"],
                  checkpoint_seconds=state["checkpoint_seconds"], wall_seconds=state["wall_seconds"])  # fmt: skip
