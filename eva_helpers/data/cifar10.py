"""CIFAR-10 from its official python batches (cifar-10-batches-py/), downloaded when asked."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..validate import DataError
from .download import fetch
from .index import Decoded

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
FILES = (*TRAIN_FILES, "test_batch", "batches.meta")

TEST_SPLIT = "test"
DOWNLOADS = True  # read() fetches the official archive when data_dir lacks it
AUGMENT = {"pad": 4, "cutout": 8, "rotate": 0, "rgb_shift": 0}


def read(*, data_dir: Path, download: bool, split_seed: int, cache_dir: str | Path | None) -> Decoded:
    """The training and test images of the batches in data_dir, fetched if asked (split_seed, cache_dir unused)."""
    folder = _find_cifar10(data_dir)
    if folder is None:
        fetch(
            url=URL,
            md5=MD5,
            data_dir=data_dir,
            filename=ARCHIVE,
            extract=True,
            download=download,
            not_found=(
                f"CIFAR-10 not found: expected {data_dir / FOLDER}/ with {', '.join(FILES)}. "
                f"Pass download=True to fetch {URL}, or extract that archive into {data_dir}."
            ),
        )
        folder = _find_cifar10(data_dir)
        if folder is None:
            raise DataError(
                f"the download into {data_dir} did not produce {FOLDER}/; delete {ARCHIVE} there and try again."
            )
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 in {folder} is incomplete: missing {', '.join(missing)}. "
            f"Delete {folder} and load again with download=True."
        )
    meta = _unpickle(folder / "batches.meta")
    names = _field(meta, "label_names", folder / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    parts = [_cifar10_batch(folder / f, len(classes)) for f in TRAIN_FILES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _cifar10_batch(folder / "test_batch", len(classes))
    return Decoded(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=classes, source=str(folder))


def _find_cifar10(data_dir: Path) -> Path | None:
    for folder in (data_dir / FOLDER, data_dir):
        if (folder / "batches.meta").is_file() or (folder / "data_batch_1").is_file():
            return folder
    return None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")  # the official batches are pickles; nothing of ours is
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise DataError(
            f"cannot read the CIFAR-10 batch {path} ({type(e).__name__}: {e}); "
            "delete the folder and load again with download=True."
        ) from e
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR-10 python batch (a pickled dict); delete it and download again.")
    return obj


def _field(obj: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in obj:
            return obj[k]
    raise DataError(
        f"{path} has no {key!r} entry, so it is not a CIFAR-10 python batch; "
        "delete the folder and load again with download=True."
    )


def _cifar10_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data = np.asarray(_field(batch, "data", path))
    labels = np.asarray(_field(batch, "labels", path), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(
            f"{path}: expected uint8 data of shape (N, 3072) and N labels, got {data.dtype} "
            f"{data.shape} and {len(labels)} labels; delete the folder and download again."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}; delete the folder and download again.")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels
