"""Numbers about uint8 image arrays: per-channel statistics, class counts, seeded class-balanced subsets."""

from __future__ import annotations

import numpy as np

from ..validate import whole


def channel_stats(x: np.ndarray) -> dict:
    """Per-channel min, max, mean, std and var of images (N, H, W, 3), in [0, 1] units (uint8 is divided by 255)."""
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[-1] != 3:
        raise ValueError(
            f"channel_stats expects images with 3 channels last, e.g. (N, H, W, 3); got shape {x.shape}. "
            "Transpose (N, 3, H, W) arrays with x.transpose(0, 2, 3, 1) first."
        )
    if x.size == 0:
        raise ValueError("channel_stats got an empty array; pass at least one image.")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-2] * 3 if x.ndim >= 3 else 3)
    mean, var = mean_var(x)
    return {
        "min": [float(v) / scale for v in rows.min(axis=0).reshape(-1, 3).min(axis=0)],
        "max": [float(v) / scale for v in rows.max(axis=0).reshape(-1, 3).max(axis=0)],
        "mean": [float(v) / scale for v in mean],
        "std": [float(np.sqrt(v)) / scale for v in var],
        "var": [float(v) / scale**2 for v in var],
    }


def class_counts(*, y: np.ndarray, num_classes: int) -> list[int]:
    """Number of images of each class, in label order."""
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1} for num_classes={num_classes}; "
            f"found {int(y.min())}..{int(y.max())}. Pass the dataset's num_classes."
        )
    return [int(c) for c in np.bincount(y.astype(np.int64), minlength=num_classes)]


def balanced_subset(*, y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of n images, as equal in number per class as the classes allow."""
    y = np.asarray(y)
    n = whole("n", n, low=1, hint="a number of images of at least 1")
    seed = whole("seed", seed, low=0, hint="a non-negative integer")
    if n > len(y):
        raise ValueError(f"n={n} is larger than the {len(y)} images available; pass n <= {len(y)}.")
    rng = np.random.default_rng(seed)
    values, counts = np.unique(y, return_counts=True)
    quota = np.zeros(len(values), dtype=np.int64)
    remaining = n
    open_classes = np.arange(len(values))
    while remaining > 0:
        share = remaining // len(open_classes)
        if share == 0:  # fewer images left than classes: one more each for a seeded choice of classes
            quota[rng.choice(open_classes, size=remaining, replace=False)] += 1
            break
        take = np.minimum(share, counts[open_classes] - quota[open_classes])
        quota[open_classes] += take
        remaining -= int(take.sum())
        open_classes = open_classes[quota[open_classes] < counts[open_classes]]
    picked = [
        rng.choice(np.flatnonzero(y == values[c]), size=int(q), replace=False) for c, q in enumerate(quota) if q > 0
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def limited(y: np.ndarray, limit: int, seed: int, what: str, split: str) -> np.ndarray:
    """Indices into y: all of them for limit 0, else a seeded class-balanced subset of `limit`."""
    if limit == 0:
        return np.arange(len(y))
    if limit > len(y):
        raise ValueError(
            f"{what}={limit} is larger than the {split} ({len(y)} images); "
            f"pass 0 for all of them or a value <= {len(y)}."
        )
    return balanced_subset(y=y, n=limit, seed=seed)


def mean_var(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) variance of channel-last values, in float64 chunks of bounded memory."""
    # Rows of whole image lines (W * 3 values) make numpy add long contiguous vectors: ~10x faster than (P, 3).
    width = x.shape[-2] * 3 if x.ndim >= 3 else 3
    rows = np.ascontiguousarray(x).reshape(-1, width)
    step = max(1, (1 << 20) // width)  # ~1M values = 8 MB of float64 per chunk
    total, total_sq = np.zeros(width), np.zeros(width)
    for start in range(0, len(rows), step):
        part = rows[start : start + step].astype(np.float64)
        total += part.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", part, part)
    n = rows.size // 3
    mean = total.reshape(-1, 3).sum(axis=0) / n
    # Uint8 sums are exact in float64 far beyond any dataset here, so E[x^2] - E[x]^2 loses nothing that matters.
    var = np.maximum(total_sq.reshape(-1, 3).sum(axis=0) / n - mean**2, 0.0)
    return mean, var
