"""Datasets as uint8 arrays: ImageData, load_data (limits, train-only stats, cache), synthetic, and the REGISTRY."""

# Everything is decoded once into memory as uint8 (N, H, W, 3) arrays; decoded arrays are cached as plain .npy files
# so that a second run starts in seconds (see cache.py for where). Listing the files (``imagefolder_index``,
# ``tinyimagenet_index``) and the Tiny ImageNet split (``tinyimagenet_split``) need no decoding.
#
# Each dataset is a module with TEST_SPLIT (what its held-out split is called), AUGMENT (its augmentation defaults),
# DOWNLOADS (whether read() can fetch it) and read(*, data_dir, download, split_seed, cache_dir) -> Decoded | Listed
# (index.py). Adding one = its file + a REGISTRY line.

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..files import project_root
from ..validate import DataError, choice, whole
from . import cifar10, decode, folders, tinyimagenet
from .cache import cache_dir as choose_cache_dir
from .folders import imagefolder_index
from .index import Decoded, FileIndex, Listed
from .stats import balanced_subset, channel_stats, class_counts, limited, mean_var
from .tinyimagenet import tinyimagenet_index, tinyimagenet_split

if TYPE_CHECKING:
    from ..recipe import Recipe

__all__ = [
    "DATASETS",
    "REGISTRY",
    "DataError",
    "Decoded",
    "FileIndex",
    "ImageData",
    "Listed",
    "augment_defaults",
    "balanced_subset",
    "channel_stats",
    "class_counts",
    "dataset_stats",
    "hold_out",
    "imagefolder_index",
    "load_data",
    "read_data",
    "synthetic",
    "tinyimagenet_index",
    "tinyimagenet_split",
]

REGISTRY = {"cifar10": cifar10, "imagefolder": folders, "tinyimagenet": tinyimagenet}  # name -> dataset module
DATASETS = tuple(REGISTRY)


@dataclass(repr=False)
class ImageData:
    """A dataset decoded into memory: uint8 (N, H, W, 3) images, int64 labels, class names, train-only mean/std."""

    name: str
    classes: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    test_split: str
    source: str
    args: dict = field(default_factory=dict)  # plain JSON: read_data(**args, progress=...) rebuilds it ({}: synthetic)

    @property
    def image_size(self) -> int:
        """Height (= width) of the images in pixels."""
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __repr__(self) -> str:
        mean = ", ".join(f"{v:.4f}" for v in self.mean)
        std = ", ".join(f"{v:.4f}" for v in self.std)
        return (
            f"ImageData(name={self.name!r}, {self.num_classes} classes, train {tuple(self.x_train.shape)}, "
            f"{self.test_split} {tuple(self.x_test.shape)}, mean=({mean}), std=({std}), source={self.source!r})"
        )


def augment_defaults(dataset: str) -> dict:
    """A copy of the dataset's augmentation defaults: {"pad", "cutout", "rotate", "rgb_shift"}."""
    return dict(REGISTRY[choice("dataset", dataset, DATASETS)].AUGMENT)


# ----------------------------------------------------------------------------- small public helpers


def dataset_stats(data: ImageData) -> dict:
    """What stats.json holds: per-channel statistics of the training split, class names and counts."""
    return {
        "dataset": data.name,
        **channel_stats(data.x_train),
        "classes": list(data.classes),
        "n_train": int(len(data.y_train)),
        "n_test": int(len(data.y_test)),
        "test_split": data.test_split,
        "train_counts": class_counts(y=data.y_train, num_classes=data.num_classes),
        "image_size": data.image_size,
        "source": data.source,
    }


# ----------------------------------------------------------------------------- load_data, synthetic


def load_data(recipe: Recipe) -> ImageData:
    """The recipe's dataset as uint8 arrays (decoded once, then cached), with its limits; mean/std from train."""
    d = recipe.data
    return read_data(dataset=d.dataset, data_dir=d.data_dir, train_limit=d.train_limit, test_limit=d.test_limit,
                     seed=recipe.machine.seed, split_seed=d.split_seed, download=d.download, cache_dir=d.cache_dir,
                     skip_bad_images=d.skip_bad_images, progress=recipe.machine.progress)  # fmt: skip


def read_data(*, dataset: str, data_dir: str | Path | None, train_limit: int, test_limit: int, seed: int,
              split_seed: int, download: bool, cache_dir: str | Path | None, skip_bad_images: bool,
              progress: bool) -> ImageData:  # fmt: skip
    """Read a dataset into uint8 arrays (cached after the first run), apply limits, compute mean/std on train."""
    module = REGISTRY[choice("dataset", dataset, DATASETS)]
    limit_hint = "0 for all images or a positive number of images"
    train_limit = whole("train_limit", train_limit, low=0, hint=limit_hint)
    test_limit = whole("test_limit", test_limit, low=0, hint=limit_hint)
    seed = whole("seed", seed, low=0, hint="a non-negative integer")
    split_seed = whole("split_seed", split_seed, low=0, hint="a non-negative integer")
    if data_dir is not None and str(data_dir) == "":
        raise ValueError("data_dir='' is empty; pass the folder that holds (or should receive) the data, or None.")
    data_dir = project_root() / "data" if data_dir is None else Path(data_dir).expanduser()
    args = {
        "dataset": dataset,
        "data_dir": str(data_dir),
        "train_limit": train_limit,
        "test_limit": test_limit,
        "seed": seed,
        "split_seed": split_seed,
        "download": bool(download),
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "skip_bad_images": bool(skip_bad_images),
    }
    test_what = f"{module.TEST_SPLIT} split"

    got = module.read(data_dir=data_dir, download=download, split_seed=split_seed, cache_dir=cache_dir)
    if isinstance(got, Decoded):
        tr = limited(got.y_train, train_limit, seed, "train_limit", "training split")
        te = limited(got.y_test, test_limit, seed, "test_limit", test_what)
        x_tr, y_tr, x_te, y_te = got.x_train[tr], got.y_train[tr], got.x_test[te], got.y_test[te]
        classes, source = got.classes, got.source
    else:
        index = got.index
        train_pos = got.train_pos[
            limited(index.labels[got.train_pos], train_limit, seed, "train_limit", "training split")
        ]
        test_pos = got.test_pos[limited(index.labels[got.test_pos], test_limit, seed, "test_limit", test_what)]
        x_tr, y_tr, x_te, y_te = decode.read_indexed(
            index=index,
            dataset=dataset,
            train_pos=train_pos,
            test_pos=test_pos,
            use_all=(train_limit == 0 and test_limit == 0),
            cache_dir=choose_cache_dir(cache_dir=cache_dir, data_dir=index.root),
            skip_bad_images=skip_bad_images,
            progress=progress,
        )
        classes, source = index.classes, str(index.root)

    if len(x_tr) == 0:
        raise DataError(f"no training images left in {source}; check the data or the skipped files listed above.")
    return _image_data(
        name=dataset,
        classes=classes,
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        test_split=module.TEST_SPLIT,
        source=source,
        args=args,
    )


def load_model_data(
    *, meta: Mapping[str, Any], data_dir: str | Path | None = None, test_limit: int = 0, progress: bool = True
) -> ImageData:
    """The data a model was trained on, rebuilt from the `meta` in its model.pt; `data_dir` points at another copy."""
    args = {**meta["data"], "test_limit": test_limit, "progress": progress}
    if data_dir is not None:
        args["data_dir"] = str(data_dir)
    elif not Path(args["data_dir"]).exists() and not REGISTRY[args["dataset"]].DOWNLOADS:
        raise FileNotFoundError(
            f"model.pt says its data was in {args['data_dir']}, which is not on this machine; "
            "pass data_dir=<the folder that holds it here>."
        )
    data = read_data(**args)
    if list(data.classes) != list(meta["classes"]):
        raise DataError(
            f"the classes in {data.source} ({len(data.classes)}: {data.classes[:3]}...) are not the model's "
            f"({len(meta['classes'])}: {list(meta['classes'])[:3]}...); point data_dir at the data it was trained on."
        )
    return data


def hold_out(data: ImageData, *, n: int, seed: int, classes: int = 0, train_images: int = 0) -> ImageData:
    """`data` scored on a class-balanced n of its own training images, held out from training (the test split unused).

    For choosing settings without looking at the set that is reported: benchmarks/lr_sweep.py trains on the
    rest and scores on these. classes > 0 first keeps a seeded choice of that many classes (relabelled 0..k-1),
    for a smaller proxy of a many-class dataset; train_images > 0 then trains on a class-balanced subset of that
    many of the rest. mean/std come from the images left for training. The result
    cannot be rebuilt by read_data (its args are empty).
    """
    x, y, names = data.x_train, data.y_train, list(data.classes)
    if whole("classes", classes, low=0, hint="0 for all classes, or how many to keep") > 0:
        if classes > len(names):
            raise ValueError(f"classes={classes} is more than the {len(names)} classes of {data.name}.")
        kept = np.sort(np.random.default_rng(seed).choice(len(names), size=classes, replace=False))
        rows = np.flatnonzero(np.isin(y, kept))
        x, y, names = x[rows], np.searchsorted(kept, y[rows]), [names[c] for c in kept]
    held = balanced_subset(y=y, n=n, seed=seed)
    if len(held) >= len(y):
        raise ValueError(f"holding out n={n} of {len(y)} training images leaves none to train on; pass a smaller n.")
    rest = np.setdiff1d(np.arange(len(y)), held)
    if whole("train_images", train_images, low=0, hint="0 for all the rest") > 0:
        if train_images > len(rest):
            raise ValueError(f"train_images={train_images} is more than the {len(rest)} images left after holding out.")
        rest = rest[balanced_subset(y=y[rest], n=train_images, seed=seed)]
    return _image_data(name=data.name, classes=names, x_train=x[rest], y_train=y[rest], x_test=x[held],
                       y_test=y[held], test_split="held-out training images", source=data.source,
                       args={})  # fmt: skip


def synthetic(
    *, n_train: int, n_test: int = 8, image_size: int = 32, num_classes: int = 10, name: str = "cifar10", seed: int = 0
) -> ImageData:
    """Random uint8 images and labels in memory, shaped like dataset `name` claims; for benchmarks and smoke tests."""
    module = REGISTRY[choice("name", name, DATASETS)]
    n_train = whole("n_train", n_train, low=1, hint="a number of training images of at least 1")
    n_test = whole("n_test", n_test, low=0, hint="a number of test images")
    size = whole("image_size", image_size, low=1, hint="the height (= width) in pixels")
    classes = whole("num_classes", num_classes, low=1, hint="the number of classes")
    seed = whole("seed", seed, low=0, hint="a non-negative integer")
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, size=(n_train, size, size, 3), dtype=np.uint8)
    x_te = rng.integers(0, 256, size=(n_test, size, size, 3), dtype=np.uint8)
    return _image_data(
        name=name,
        classes=[f"class_{i}" for i in range(classes)],
        x_train=x_tr,
        y_train=rng.integers(0, classes, n_train),
        x_test=x_te,
        y_test=rng.integers(0, classes, n_test),
        test_split=module.TEST_SPLIT,
        source="synthetic",
        args={},
    )


def _image_data(
    *,
    name: str,
    classes: list[str],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    test_split: str,
    source: str,
    args: dict,
) -> ImageData:
    """ImageData with contiguous arrays, int64 labels and the mean/std of the training images in [0, 1] units."""
    mean, var = mean_var(x_train)
    return ImageData(
        name=name,
        classes=list(classes),
        x_train=np.ascontiguousarray(x_train),
        y_train=np.ascontiguousarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test),
        y_test=np.ascontiguousarray(y_test, dtype=np.int64),
        mean=tuple(float(v) / 255.0 for v in mean),
        std=tuple(float(np.sqrt(v)) / 255.0 for v in var),
        test_split=test_split,
        source=source,
        args=args,
    )
