"""What every figure shares: a Figure outside pyplot, image tiles, short class names, and saving as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..validate import whole

MANY_CLASSES = 20  # above this many classes: no per-cell numbers, no per-class tick labels


def _subplots(*args, figsize, **kwargs):
    """A figure outside pyplot's registry: shown once when a cell returns it, never twice, never leaked."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def message_figure(text: str) -> Figure:
    """A small figure that says, in words, why there is nothing to draw (a model with no mistakes, say)."""
    fig = Figure(figsize=(6, 1.2))
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    return fig


def _short(name: str, width: int = 18) -> str:
    """Return a class name short enough for a tile title: the first of WordNet's comma-separated synonyms, cut."""
    name = str(name).split(",")[0].strip()
    return name if len(name) <= width else name[: width - 1] + "…"


def _image_panel(ax, image: np.ndarray) -> None:
    """Draw an image tile with no ticks and no frame (a label set on the axis still shows)."""
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)


def _rotate_xticks(ax) -> None:
    """Slant the x tick labels so long class names do not overlap."""
    ax.tick_params(axis="x", labelrotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")


def _images(images: np.ndarray, what: str = "images") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (N, H, W, 3) like ImageData.x_train, got {images.dtype} {images.shape}")
    return images


def _grid(n: int, ncols: int, *, tile: float = 1.6, extra_h: float = 0.5) -> tuple[Figure, list]:
    """Return a figure with n image tiles in rows of ncols (unused cells removed) and its axes, row-major."""
    whole("ncols", ncols, low=1)
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


def save_figure(*, fig: Figure, path: str | Path) -> Path:
    """Save the figure as a PNG (parent folders created, tight bounding box) and return its path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; give a path ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", facecolor="white")
    return path


def save_figures(*, figures: dict[str, Figure], out_dir: str | Path) -> dict[str, Path]:
    """Save each figure as {out_dir}/{name}.png: what notebook 04 and the train command both write."""
    return {name: save_figure(fig=fig, path=Path(out_dir) / f"{name}.png") for name, fig in figures.items()}
