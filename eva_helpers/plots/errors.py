"""Figures of what a model predicts and gets wrong: mistakes, confusion, per-class accuracy, Grad-CAM, your images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..analysis import overlay
from ..validate import whole
from .common import MANY_CLASSES, _grid, _image_panel, _images, _rotate_xticks, _short, _subplots, message_figure


def plot_misclassified(
    *,
    images: np.ndarray,
    true: Sequence[int],
    pred: Sequence[int],
    confidence: Sequence[float],
    loss: Sequence[float],
    classes: Sequence[str],
    ncols: int = 5,
    title: str | None = None,
) -> Figure:
    """Grid of misclassified images, each titled true class, predicted class (confidence) and loss.

    `title` says what they were drawn from, e.g. ErrorReport.title (the split, the count and the accuracy)."""
    images = _images(images)
    n = len(images)
    for what, values in (("true", true), ("pred", pred), ("confidence", confidence), ("loss", loss)):
        if len(values) != n:
            raise ValueError(f"{what} has {len(values)} entries for {n} images: pass one per image")
    if n == 0:  # a model that got every image right: say so instead of drawing an empty grid
        return message_figure(f"No misclassified images to show.\n{title}" if title else "No misclassified images.")
    fig, axes = _grid(n, ncols, tile=2.0, extra_h=0.8)
    for ax, image, t, p, conf, item_loss in zip(axes, images, true, pred, confidence, loss):
        ax.imshow(image)
        ax.set_title(
            f"true: {_short(classes[int(t)])}\npred: {_short(classes[int(p)])} ({100 * conf:.0f}%)\n"
            f"loss {item_loss:.2f}",
            fontsize=8,
        )
    fig.suptitle(f"{title}\nthe {n} with the highest loss" if title else "Misclassified, highest loss first")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    *, cm: np.ndarray, classes: Sequence[str], normalize: bool = True, title: str | None = None
) -> Figure:
    """Heatmap of the confusion matrix, rows = true class; numbers in the cells only for a few classes.

    `title` says what it counts, e.g. ErrorReport.title (the split, the count and the accuracy)."""
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
        _rotate_xticks(ax)
    ax.set_xlabel("predicted class" + (" (index)" if many else ""))
    ax.set_ylabel("true class" + (" (index)" if many else ""))
    what = "Confusion matrix" + (" (each row sums to 1)" if normalize else " (counts)")
    ax.set_title(f"{what}\n{title}" if title else what, fontsize=10)
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
    whole("top", top, low=1)
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


def plot_gradcam(*, images: np.ndarray, cams: Mapping[str, np.ndarray], titles: Sequence[str] | None = None) -> Figure:
    """Rows = images; columns = the image, then its Grad-CAM overlay for each entry of `cams`."""
    images = _images(images)
    n = len(images)
    if not cams:
        raise ValueError("cams is empty: pass {column title: heatmaps (N, H, W)}, e.g. from analysis.explain")
    for key, heatmaps in cams.items():
        if np.shape(heatmaps) != images.shape[:3]:
            raise ValueError(f"cams[{key!r}] has shape {np.shape(heatmaps)}, expected {images.shape[:3]}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images: pass one per image or None")
    if n == 0:
        return message_figure("No images to explain: with no misclassified images there is no mistake to look into.")
    ncols = 1 + len(cams)
    fig, axes = _subplots(n, ncols, figsize=(2.2 * ncols + 0.8, 2.4 * n + 0.4), squeeze=False)
    for r in range(n):
        panels = [images[r]] + [overlay(image=images[r], heatmap=np.asarray(h[r])) for h in cams.values()]
        for c, panel in enumerate(panels):
            _image_panel(axes[r, c], panel)
        if titles is not None:
            axes[r, 0].set_xlabel(titles[r], fontsize=8)
    for c, header in enumerate(["image", *cams]):  # "layer3 / predicted" reads "layer3\nfor the predicted class"
        layer, _, which = header.partition(" / ")
        axes[0, c].set_title(f"{layer}\nfor the {which} class" if which else header, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 0.7 / fig.get_figwidth(), 1))
    cax = fig.add_axes((1 - 0.55 / fig.get_figwidth(), 0.2, 0.12 / fig.get_figwidth(), 0.6))
    fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap="jet"), cax=cax)  # the colours show_cam_on_image uses
    cax.set_ylabel("Grad-CAM: how much the region raised the class score", fontsize=8)
    return fig


def plot_predictions(*, predictions: Sequence[Mapping], cams: np.ndarray | None = None) -> Figure:
    """Your own images, one row each: the picture, its Grad-CAM for the top class, and the top classes as bars."""
    if not predictions:
        raise ValueError("predictions is empty: pass inference.predict_images(...)")
    images = _images(np.stack([p["image"] for p in predictions]), what="the predictions' images")
    n = len(predictions)
    if cams is not None and np.shape(cams) != images.shape[:3]:
        raise ValueError(f"cams has shape {np.shape(cams)}, expected {images.shape[:3]} (one heatmap per image)")
    ncols = 3 if cams is not None else 2
    fig, axes = _subplots(n, ncols, figsize=(3.0 * ncols + 1.5, 2.3 * n), squeeze=False,
                          gridspec_kw={"width_ratios": [1] * (ncols - 1) + [1.8]})  # fmt: skip
    for r, pred in enumerate(predictions):
        _image_panel(axes[r, 0], images[r])
        axes[r, 0].set_xlabel(_short(Path(pred["path"]).name, 24), fontsize=8)
        if cams is not None:
            _image_panel(axes[r, 1], overlay(image=images[r], heatmap=cams[r]))
            axes[r, 1].set_xlabel(f"Grad-CAM: {_short(pred['top'][0]['class'])}", fontsize=8)
        bars = axes[r, -1]
        names = [_short(t["class"], 22) for t in pred["top"]]
        bars.barh(range(len(names)), [100 * t["prob"] for t in pred["top"]], color="tab:blue")
        bars.set_yticks(range(len(names)), labels=names, fontsize=8)
        bars.invert_yaxis()  # the most probable class on top
        bars.set_xlim(0, 100)
        bars.set_xlabel("probability (%)", fontsize=8)
    fig.suptitle("Your images: the model's top classes, and where it looked for the first")
    fig.tight_layout()
    return fig
