"""Figures of the data: sample images, images per class, and the augmentations."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from ..augment import seed_albumentations
from .common import MANY_CLASSES, _grid, _image_panel, _images, _rotate_xticks, _short, _subplots


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
        _rotate_xticks(ax)
    ax.set_ylabel("images")
    ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Images per class ({k} classes)")
    fig.tight_layout()
    return fig


def plot_augmentations(*, images: np.ndarray, steps: Mapping[str, Callable[..., dict]], seed: int = 0) -> Figure:
    """Grid of the same images: the original row, then one row per augmentation step (`step(image=img)["image"]`)."""
    images = _images(images)
    if not steps:
        raise ValueError("steps is empty: pass {display name: transform}, e.g. augment.albumentations_steps(...)")
    n, nrows = len(images), len(steps) + 1
    fig, axes = _subplots(nrows, n, figsize=(1.5 * n + 1.2, 1.5 * nrows), squeeze=False)
    rows: list[tuple[str, list[np.ndarray]]] = [("original", list(images))]
    for name, step in steps.items():
        # Seed a copy, so the figure is the same on every run and the caller's transform keeps its own state;
        # one stream shared by all its steps, as training seeds them (see augment.seed_albumentations).
        step = copy.deepcopy(step)
        if hasattr(step, "set_random_state"):
            seed_albumentations(transform=step, seed=seed)
        rows.append((name, [np.asarray(step(image=image)["image"]) for image in images]))
    for r, (name, row_images) in enumerate(rows):
        for c, image in enumerate(row_images):
            _image_panel(axes[r, c], image)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(
        "Augmentations: each step on its own, then all together\n"
        "Each is random per image: flip, rotate and RGB shift act on half the images, by a random amount,\n"
        "and the crop may land where it started, so a tile that looks unchanged is expected"
    )
    fig.tight_layout()
    return fig
