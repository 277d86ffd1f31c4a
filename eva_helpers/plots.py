"""Every figure the notebooks show; each function returns a matplotlib Figure and shows nothing."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt  # noqa: F401  (registers Jupyter's figure display)
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from eva_helpers.cam import overlay

MANY_CLASSES = 20  # above this many classes: no per-cell numbers, no per-class tick labels


def _subplots(*args, figsize, **kwargs):
    """A figure outside pyplot's registry: shown once when a cell returns it, never twice, never leaked."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _short(name: str, width: int = 18) -> str:
    """Return a class name short enough for a tile title: the first of WordNet's comma-separated synonyms, cut."""
    name = str(name).split(",")[0].strip()
    return name if len(name) <= width else name[: width - 1] + "…"


def _images(images: np.ndarray, what: str = "images") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (N, H, W, 3) like ImageData.x_train, got {images.dtype} {images.shape}")
    return images


def _grid(n: int, ncols: int, *, tile: float = 1.6, extra_h: float = 0.5) -> tuple[Figure, list]:
    """Return a figure with n image tiles in rows of ncols (unused cells removed) and its axes, row-major."""
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    if n < 1:
        raise ValueError("no images to show: pass at least one image")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(tile * ncols, (tile + extra_h) * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    for ax in flat[:n]:
        ax.set_axis_off()
    return fig, flat[:n]


def plot_samples(
    *, images: np.ndarray, labels: Sequence[int], classes: Sequence[str], ncols: int = 8, title: str | None = None
) -> Figure:
    """Show images in a grid, each titled with its class name."""
    images = _images(images)
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images: pass one label per image")
    fig, axes = _grid(len(images), ncols)
    for ax, image, label in zip(axes, images, labels):
        ax.imshow(image)
        ax.set_title(_short(classes[int(label)]), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_class_counts(*, counts: Mapping[str, Sequence[int]], classes: Sequence[str]) -> Figure:
    """Bar chart of images per class, one colour per split (e.g. {"train": [...], "test": [...]})."""
    if not counts:
        raise ValueError("counts is empty: pass {split name: per-class counts}")
    for split, values in counts.items():
        if len(values) != len(classes):
            raise ValueError(f"counts[{split!r}] has {len(values)} entries for {len(classes)} classes")
    k = len(classes)
    many = k > MANY_CLASSES
    data = {
        "class": [i if many else _short(c) for _ in counts for i, c in enumerate(classes)],
        "images": [int(v) for values in counts.values() for v in values],
        "split": [split for split, values in counts.items() for _ in values],
    }
    fig, ax = _subplots(figsize=(12 if many else 8, 4))
    sns.barplot(data=data, x="class", y="images", hue="split", ax=ax, native_scale=many)
    if many:
        ax.set_xlabel("class index")
        ax.set_xlim(-1, k)
    else:
        ax.set_xlabel("class")
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_ylabel("images")
    ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Images per class ({k} classes)")
    fig.tight_layout()
    return fig


def plot_augmentations(
    *, images: np.ndarray, steps: Mapping[str, Callable[..., dict]], seed: int = 0
) -> Figure:
    """Grid of the same images: the original row, then one row per augmentation step (`step(image=img)["image"]`)."""
    images = _images(images)
    if not steps:
        raise ValueError("steps is empty: pass {display name: transform}, e.g. augment.albumentations_steps(...)")
    n, nrows = len(images), len(steps) + 1
    fig, axes = _subplots(nrows, n, figsize=(1.5 * n + 1.2, 1.5 * nrows), squeeze=False)
    rows: list[tuple[str, list[np.ndarray]]] = [("original", list(images))]
    for name, step in steps.items():
        # Seed a copy, so the figure is the same on every run and the caller's transform keeps its own state.
        step = copy.deepcopy(step)
        if hasattr(step, "set_random_seed"):
            step.set_random_seed(seed)
        rows.append((name, [np.asarray(step(image=image)["image"]) for image in images]))
    for r, (name, row_images) in enumerate(rows):
        for c, image in enumerate(row_images):
            ax = axes[r, c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle("Augmentations: each step on its own, then all together")
    fig.tight_layout()
    return fig


def plot_lr_finder(*, lr: Sequence[float], loss: Sequence[float], suggested_lr: float | None) -> Figure:
    """Loss against learning rate (log x) from the LR range test, with the suggested learning rate marked."""
    lr, loss = np.asarray(lr, dtype=float), np.asarray(loss, dtype=float)
    if lr.ndim != 1 or lr.shape != loss.shape or len(lr) < 2:
        raise ValueError(f"lr and loss must be 1-D and the same length (>= 2), got {lr.shape} and {loss.shape}")
    if (lr <= 0).any():
        raise ValueError("learning rates must be > 0 for a log axis")
    fig, ax = _subplots(figsize=(7, 4))
    ax.plot(lr, loss, label="loss")
    ax.set_xscale("log")
    if suggested_lr is not None:
        at = float(np.interp(np.log(suggested_lr), np.log(lr), loss))
        ax.scatter([suggested_lr], [at], s=80, color="tab:red", zorder=3, label=f"suggested lr {suggested_lr:.2e}")
        ax.annotate(f"{suggested_lr:.2e}", (suggested_lr, at), textcoords="offset points", xytext=(8, 8),
                    color="tab:red")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_lr_schedule(*, lrs: Sequence[float], steps_per_epoch: int, peak_epoch: float | None = None) -> Figure:
    """Learning rate per optimizer step against epochs, with the peak marked."""
    lrs = np.asarray(lrs, dtype=float)
    if lrs.ndim != 1 or len(lrs) == 0:
        raise ValueError(f"lrs must be a non-empty 1-D sequence of learning rates, got shape {lrs.shape}")
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
    epochs = np.arange(1, len(lrs) + 1) / steps_per_epoch  # step i's LR holds until the end of step i
    peak = int(np.argmax(lrs))
    fig, ax = _subplots(figsize=(7, 4))
    ax.plot(epochs, lrs, label="learning rate")
    ax.scatter([epochs[peak]], [lrs[peak]], color="tab:red", zorder=3,
               label=f"peak {lrs[peak]:.2e} at epoch {epochs[peak]:.2f}")
    if peak_epoch is not None:
        ax.axvline(peak_epoch, color="tab:gray", linestyle="--", label=f"peak_epoch = {peak_epoch:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("One-Cycle learning rate schedule")
    ax.legend()
    ax.grid(True, alpha=0.3)
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


def plot_misclassified(
    *,
    images: np.ndarray,
    true: Sequence[int],
    pred: Sequence[int],
    confidence: Sequence[float],
    loss: Sequence[float],
    classes: Sequence[str],
    ncols: int = 5,
) -> Figure:
    """Grid of misclassified images, each titled true class, predicted class (confidence) and loss."""
    images = _images(images)
    n = len(images)
    for what, values in (("true", true), ("pred", pred), ("confidence", confidence), ("loss", loss)):
        if len(values) != n:
            raise ValueError(f"{what} has {len(values)} entries for {n} images: pass one per image")
    fig, axes = _grid(n, ncols, tile=2.0, extra_h=0.8)
    for ax, image, t, p, conf, item_loss in zip(axes, images, true, pred, confidence, loss):
        ax.imshow(image)
        ax.set_title(f"true: {_short(classes[int(t)])}\npred: {_short(classes[int(p)])} ({100 * conf:.0f}%)\n"
                     f"loss {item_loss:.2f}", fontsize=8)
    fig.suptitle("Misclassified, highest loss first")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(*, cm: np.ndarray, classes: Sequence[str], normalize: bool = True) -> Figure:
    """Heatmap of the confusion matrix, rows = true class; numbers in the cells only for a few classes."""
    cm = np.asarray(cm, dtype=float)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"cm must be ({k}, {k}) for {k} classes, got {cm.shape}")
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    many = k > MANY_CLASSES
    fig, ax = _subplots(figsize=(10, 9) if many else (8, 7))
    sns.heatmap(
        cm,
        ax=ax,
        cmap="Blues",
        square=True,
        vmin=0.0,
        vmax=1.0 if normalize else None,
        annot=not many,
        fmt=".2f" if normalize else ".0f",
        annot_kws={"fontsize": 8},
        xticklabels=False if many else [_short(c, 14) for c in classes],
        yticklabels=False if many else [_short(c, 14) for c in classes],
        cbar_kws={"label": "fraction of the true class" if normalize else "images", "shrink": 0.8},
    )
    if many:
        ticks = np.arange(0, k, 20)
        ax.set_xticks(ticks + 0.5, labels=[str(t) for t in ticks])
        ax.set_yticks(ticks + 0.5, labels=[str(t) for t in ticks])
    else:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_xlabel("predicted class" + (" (index)" if many else ""))
    ax.set_ylabel("true class" + (" (index)" if many else ""))
    ax.set_title("Confusion matrix" + (" (each row sums to 1)" if normalize else " (counts)"))
    fig.tight_layout()
    return fig


def plot_per_class_accuracy(*, accuracy: Sequence[float], classes: Sequence[str], top: int = 20) -> Figure:
    """Per-class accuracy (%) as horizontal bars: all classes when few, else the worst and best `top`."""
    acc = np.asarray(accuracy, dtype=float)
    if acc.shape != (len(classes),):
        raise ValueError(f"accuracy has {acc.size} entries for {len(classes)} classes: pass one fraction per class")
    known = ~np.isnan(acc)  # NaN: a class with no held-out images
    if ((acc[known] < 0) | (acc[known] > 1)).any():
        raise ValueError("accuracy must be fractions in [0, 1] (not percent)")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive int, got {top!r}")
    order = [int(i) for i in np.argsort(acc, kind="stable") if known[i]]  # worst first
    mean = 100 * acc[known].mean() if known.any() else float("nan")
    if len(order) <= 2 * top:
        panels = [(f"Accuracy per class (mean {mean:.1f}%)", order[::-1])]
    else:
        panels = [(f"Worst {top} classes", order[:top]), (f"Best {top} classes", order[-top:][::-1])]
    height = max(3.0, 0.25 * max(len(p[1]) for p in panels) + 1.0)
    fig, axes = _subplots(1, len(panels), figsize=(6 * len(panels), height), squeeze=False)
    for ax, (title, idx) in zip(axes[0], panels):
        ax.barh(range(len(idx)), 100 * acc[idx], color="tab:blue")
        ax.set_yticks(range(len(idx)), labels=[_short(classes[i], 24) for i in idx], fontsize=8)
        ax.invert_yaxis()  # the first listed class at the top
        ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.1f}%")
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy (%)")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_gradcam(
    *, images: np.ndarray, cams: Mapping[str, np.ndarray], titles: Sequence[str] | None = None
) -> Figure:
    """Rows = images; columns = the image, then its Grad-CAM overlay for each entry of `cams`."""
    images = _images(images)
    n = len(images)
    if not cams:
        raise ValueError("cams is empty: pass {column title: heatmaps (N, H, W)} from cam.gradcam")
    for key, heatmaps in cams.items():
        if np.shape(heatmaps) != images.shape[:3]:
            raise ValueError(f"cams[{key!r}] has shape {np.shape(heatmaps)}, expected {images.shape[:3]}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images: pass one per image or None")
    ncols = 1 + len(cams)
    fig, axes = _subplots(n, ncols, figsize=(2.2 * ncols, 2.4 * n), squeeze=False)
    for r in range(n):
        panels = [images[r]] + [overlay(image=images[r], cam=np.asarray(h[r])) for h in cams.values()]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
        if titles is not None:
            axes[r, 0].set_xlabel(titles[r], fontsize=8)
    for c, header in enumerate(["image", *cams]):
        axes[0, c].set_title(header, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(*, fig: Figure, path: str | Path) -> Path:
    """Save the figure as a PNG (parent folders created, tight bounding box) and return its path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; give a path ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", facecolor="white")
    return path
