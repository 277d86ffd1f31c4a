"""Figures of training: the LR range test, the One-Cycle schedule, the learning curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..validate import whole
from .common import _subplots

RULE_COLOURS = {"valley": "tab:green", "steep": "tab:orange", "minimum": "tab:purple", "blowup": "tab:red"}


def plot_lr_finder(*, lr: Sequence[float], loss: Sequence[float], suggestions: Mapping[str, float] | None = None,
                   rule: str | None = None, diverged: bool = False) -> Figure:  # fmt: skip
    """The LR range test's smoothed loss against the LR (log x): every rule's suggestion, the chosen one large.

    What lies past the loss minimum is shaded: there the loss climbs, and only blowup reads it (where the climb
    begins in earnest, to divide that LR by ten).
    """
    lr, loss = np.asarray(lr, dtype=float), np.asarray(loss, dtype=float)
    if lr.ndim != 1 or lr.shape != loss.shape or len(lr) < 2:
        raise ValueError(f"lr and loss must be 1-D and the same length (>= 2), got {lr.shape} and {loss.shape}")
    if (lr <= 0).any():
        raise ValueError("learning rates must be > 0 for a log axis")
    fig, ax = _subplots(figsize=(7.5, 4.2))
    _draw_lr_finder(ax, lr=lr, loss=loss, suggestions=suggestions, rule=rule, diverged=diverged)
    fig.tight_layout()
    return fig


def _draw_lr_finder(ax, *, lr: np.ndarray, loss: np.ndarray, suggestions, rule, diverged: bool) -> None:
    ax.plot(lr, loss, color="tab:blue", label="training loss (smoothed)")
    ax.set_xscale("log")
    finite = np.isfinite(loss)
    low = int(np.flatnonzero(finite)[loss[finite].argmin()])
    ax.axvspan(lr[low], lr[-1], color="tab:gray", alpha=0.15, label="past the minimum: the loss climbs")
    for name, value in (suggestions or {}).items():
        at = float(np.interp(np.log(value), np.log(lr), loss))
        chosen = name == rule
        ax.scatter([value], [at], s=140 if chosen else 45, zorder=3, color=RULE_COLOURS.get(name, "tab:red"),
                   edgecolors="black" if chosen else "none",
                   label=f"{name}: {value:.2e}" + (" (chosen)" if chosen else ""))  # fmt: skip
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("LR range test" + (": stopped early, the loss diverged" if diverged else ""))
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def plot_lr_schedule(*, lrs: Sequence[float], steps_per_epoch: int, peak_epoch: float | None = None) -> Figure:
    """Learning rate per optimizer step against epochs, with the peak marked."""
    lrs = np.asarray(lrs, dtype=float)
    if lrs.ndim != 1 or len(lrs) == 0:
        raise ValueError(f"lrs must be a non-empty 1-D sequence of learning rates, got shape {lrs.shape}")
    whole("steps_per_epoch", steps_per_epoch, low=1)
    fig, ax = _subplots(figsize=(7, 4))
    _draw_lr_schedule(ax, lrs=lrs, steps_per_epoch=steps_per_epoch, peak_epoch=peak_epoch)
    fig.tight_layout()
    return fig


def _draw_lr_schedule(ax, *, lrs: np.ndarray, steps_per_epoch: int, peak_epoch: float | None) -> None:
    epochs = np.arange(1, len(lrs) + 1) / steps_per_epoch  # step i's LR holds until the end of step i
    peak = int(np.argmax(lrs))
    ax.plot(epochs, lrs, label="learning rate")
    ax.scatter([epochs[peak]], [lrs[peak]], color="tab:red", zorder=3,
               label=f"peak {lrs[peak]:.2e} at epoch {epochs[peak]:.2f}")  # fmt: skip
    if peak_epoch is not None:
        ax.axvline(peak_epoch, color="tab:gray", linestyle="--", label=f"peak_epoch = {peak_epoch:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("One-Cycle learning rate schedule")
    ax.legend()
    ax.grid(True, alpha=0.3)


def plot_peak(*, peak, lrs: Sequence[float], peak_epoch: int) -> Figure:
    """Before training: the range test's curve with its pick (when max_lr was None) beside the schedule it gives.

    `peak` is peak.peak_lr's result, `lrs` the schedule of every step (peak.lr_schedule).
    """
    lrs = np.asarray(lrs, dtype=float)
    f = peak.lr_finder
    fig, axes = _subplots(ncols=2 if f else 1, figsize=(14, 4.2) if f else (7, 4))
    axes = np.atleast_1d(axes)
    if f:
        lr, loss = np.asarray(f["lr"], dtype=float), np.asarray(f["loss"], dtype=float)
        _draw_lr_finder(axes[0], lr=lr, loss=loss, suggestions=f.get("suggestions"), rule=f.get("rule"),
                        diverged=f.get("diverged", False))  # fmt: skip
    _draw_lr_schedule(axes[-1], lrs=lrs, steps_per_epoch=peak.steps_per_epoch, peak_epoch=peak_epoch)
    fig.suptitle(f"max_lr {peak.max_lr:.3g}: {peak.source}")
    fig.tight_layout()
    return fig


def plot_history(*, history: Sequence[Mapping[str, float]], test_split: str = "test") -> Figure:
    """Loss and accuracy (%) per epoch for the training and held-out splits."""
    if not history:
        raise ValueError("history is empty: train for at least one epoch first")
    keys = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")
    missing = [k for k in keys if k not in history[0]]
    if missing:
        raise ValueError(f"history rows need the keys {keys}; missing {missing}")
    col = {k: np.array([row[k] for row in history], dtype=float) for k in keys}
    fig, (ax_loss, ax_acc) = _subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(col["epoch"], col["train_loss"], marker=".", label="train")
    ax_loss.plot(col["epoch"], col["test_loss"], marker=".", label=test_split)
    ax_loss.set_title("Loss")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.plot(col["epoch"], 100 * col["train_acc"], marker=".", label="train")
    ax_acc.plot(col["epoch"], 100 * col["test_acc"], marker=".", label=test_split)
    ax_acc.set_title(f"Accuracy (final {test_split} {100 * col['test_acc'][-1]:.2f}% after epoch {col['epoch'][-1]:g})")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def train_figures(*, result) -> dict[str, Figure]:
    """The figures of a train.fit result that notebook 04 and the command line save: range test, schedule, curves."""
    m, figures = result.metrics, {}
    if result.lr_finder is not None:
        f = result.lr_finder
        figures["lr_finder"] = plot_lr_finder(lr=f["lr"], loss=f["loss"], suggestions=f.get("suggestions"),
                                              rule=f.get("rule"), diverged=f.get("diverged", False))  # fmt: skip
    figures["lr_schedule"] = plot_lr_schedule(
        lrs=m["lr_per_step"], steps_per_epoch=m["steps_per_epoch"], peak_epoch=m["params"]["peak_epoch"]
    )
    figures["history"] = plot_history(history=m["history"], test_split=m["test_split"])
    return figures
