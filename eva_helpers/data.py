"""Read CIFAR-10, an image folder or Tiny ImageNet into uint8 arrays, with limits, train-only stats and a cache.

Everything is decoded once into memory as uint8 (N, H, W, 3) arrays; decoded arrays are cached as
plain .npy files so that a second run starts in seconds. Listing the files (``imagefolder_index``,
``tinyimagenet_index``) and the Tiny ImageNet split (``tinyimagenet_split``) need no decoding.

Cache: in ``cache_dir`` if given, else in ``.eva_helpers_cache/`` beside the data when that folder may be written
(read-only mode bits are honoured even for root), else in ``~/.cache/eva_helpers``. Files are named by the
source's identity (zip path + size + mtime, or a hash of the folder's (path, size, mtime) listing), so a changed
source is decoded again; they are written atomically. The Tiny ImageNet split is saved there as
``tinyimagenet-split-seed{split_seed}.json`` and reused (checked against the files present).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eva_helpers.checkpoint import write_atomic
from eva_helpers.errors import DataError

DATASETS = ("cifar10", "imagefolder", "tinyimagenet")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Files that operating systems drop into folders; skipped without a word (as are dotfiles and __MACOSX/).
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = (*CIFAR10_TRAIN_FILES, "test_batch", "batches.meta")

TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINYIMAGENET_ZIP = "tiny-imagenet-200.zip"
TINYIMAGENET_FOLDER = "tiny-imagenet-200"
TINYIMAGENET_TRAIN_FRACTION = 0.7  # of the 550 labelled images per class (500 train + 50 val): 385 / 165

CACHE_FOLDER = ".eva_helpers_cache"  # beside the data; a dot folder so layout checks ignore it
CACHE_VERSION = 1  # bump when the cached arrays change meaning
MAX_LISTED = 10  # how many file names an error message lists before "... and N more"


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
        return (f"ImageData(name={self.name!r}, {self.num_classes} classes, train {tuple(self.x_train.shape)}, "
                f"{self.test_split} {tuple(self.x_test.shape)}, mean=({mean}), std=({std}), source={self.source!r})")


@dataclass(repr=False)
class FileIndex:
    """The labelled images of a dataset on disk, listed without decoding anything."""

    root: Path                 # the folder (or the zip file) the names are relative to
    names: list[str]           # POSIX paths relative to root (inside the zip: after zip_prefix), label order
    labels: np.ndarray         # int64, one per name
    classes: list[str]         # readable class names in label order
    split: np.ndarray | None   # int8 per name, 0 = train and 1 = test, where the folders say so; None for Tiny ImageNet
    zip_prefix: str | None = None   # member-name prefix when root is a zip file; None for a folder
    key: str = ""              # identity of the source (hash of paths, sizes, mtimes): the cache key
    wnids: list[str] = field(default_factory=list)   # Tiny ImageNet only: class ids in label order

    def __repr__(self) -> str:
        kind = "zip" if self.zip_prefix is not None else "folder"
        return f"FileIndex({kind} {str(self.root)!r}, {len(self.names)} images, {len(self.classes)} classes)"


# ----------------------------------------------------------------------------- small public helpers


DATA_KEYS = ("dataset", "data_dir", "train_limit", "test_limit", "seed", "split_seed", "download", "cache_dir",
             "skip_bad_images")


def load_data_for(params: dict) -> ImageData:
    """load_data with the data parameters of a checked parameter dict (or of a model.pt's metadata)."""
    return load_data(**{k: params[k] for k in DATA_KEYS}, progress=params.get("progress", True))


def dataset_stats(data: ImageData) -> dict:
    """What stats.json holds: per-channel statistics of the training split, class names and counts."""
    return {"dataset": data.name, **channel_stats(data.x_train), "classes": list(data.classes),
            "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)), "test_split": data.test_split,
            "train_counts": class_counts(y=data.y_train, num_classes=data.num_classes),
            "image_size": data.image_size, "source": data.source}


def channel_stats(x: np.ndarray) -> dict:
    """Per-channel min, max, mean, std and var of images (N, H, W, 3), in [0, 1] units (uint8 is divided by 255)."""
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[-1] != 3:
        raise ValueError(f"channel_stats expects images with 3 channels last, e.g. (N, H, W, 3); got shape {x.shape}. "
                         "Transpose (N, 3, H, W) arrays with x.transpose(0, 2, 3, 1) first.")
    if x.size == 0:
        raise ValueError("channel_stats got an empty array; pass at least one image.")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-2] * 3 if x.ndim >= 3 else 3)
    mean, var = _mean_var(x)
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
        raise ValueError(f"labels must lie in 0..{num_classes - 1} for num_classes={num_classes}; "
                         f"found {int(y.min())}..{int(y.max())}. Pass the dataset's num_classes.")
    return [int(c) for c in np.bincount(y.astype(np.int64), minlength=num_classes)]


def balanced_subset(*, y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of n images, as equal in number per class as the classes allow."""
    y = np.asarray(y)
    _check_int("n", n, minimum=1, hint="a number of images of at least 1")
    _check_int("seed", seed, minimum=0, hint="a non-negative integer")
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
    picked = [rng.choice(np.flatnonzero(y == values[c]), size=int(q), replace=False)
              for c, q in enumerate(quota) if q > 0]
    return np.sort(np.concatenate(picked)).astype(np.int64)


# ----------------------------------------------------------------------------- load_data


def load_data(*, dataset: str, data_dir: str | Path, train_limit: int = 0, test_limit: int = 0,
              seed: int = 0, split_seed: int = 0, download: bool = True, cache_dir: str | Path | None = None,
              skip_bad_images: bool = False, progress: bool = True) -> ImageData:
    """Read a dataset into uint8 arrays (cached after the first run), apply limits, compute mean/std on train."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset={dataset!r}; choose one of {', '.join(map(repr, DATASETS))}.")
    for name, value in (("train_limit", train_limit), ("test_limit", test_limit)):
        _check_int(name, value, minimum=0, hint="0 for all images or a positive number of images")
    for name, value in (("seed", seed), ("split_seed", split_seed)):
        _check_int(name, value, minimum=0, hint="a non-negative integer")
    if data_dir is None or str(data_dir) == "":
        raise ValueError(f"data_dir={data_dir!r} is empty; pass the folder that holds (or should receive) the data.")
    data_dir = Path(data_dir).expanduser()

    if dataset == "cifar10":
        x_tr, y_tr, x_te, y_te, classes, source = _load_cifar10(data_dir=data_dir, download=download)
        tr = _limit(y_tr, train_limit, seed, "train_limit", "training split")
        te = _limit(y_te, test_limit, seed, "test_limit", "test split")
        x_tr, y_tr, x_te, y_te = x_tr[tr], y_tr[tr], x_te[te], y_te[te]
        test_split = "test"
    else:
        if dataset == "imagefolder":
            index = imagefolder_index(data_dir=data_dir)
            train_pos, test_pos = np.flatnonzero(index.split == 0), np.flatnonzero(index.split == 1)
            test_split = "test"
        else:
            index = tinyimagenet_index(data_dir=data_dir, download=download)
            train_pos, test_pos = tinyimagenet_split(index=index, split_seed=split_seed, cache_dir=cache_dir)
            test_split = "validation"
        cache_dir = _cache_dir(cache_dir=cache_dir, data_dir=index.root)
        train_pos = train_pos[_limit(index.labels[train_pos], train_limit, seed, "train_limit", "training split")]
        test_pos = test_pos[_limit(index.labels[test_pos], test_limit, seed, "test_limit", f"{test_split} split")]
        x_tr, y_tr, x_te, y_te = _read_indexed(
            index=index, dataset=dataset, train_pos=train_pos, test_pos=test_pos,
            use_all=(train_limit == 0 and test_limit == 0), cache_dir=cache_dir,
            skip_bad_images=skip_bad_images, progress=progress)
        classes, source = index.classes, str(index.root)

    if len(x_tr) == 0:
        raise DataError(f"no training images left in {source}; check the data or the skipped files listed above.")
    mean, var = _mean_var(x_tr)
    mean_t = tuple(float(v) / 255.0 for v in mean)
    std_t = tuple(float(np.sqrt(v)) / 255.0 for v in var)
    return ImageData(name=dataset, classes=list(classes), x_train=np.ascontiguousarray(x_tr),
                     y_train=np.ascontiguousarray(y_tr, dtype=np.int64), x_test=np.ascontiguousarray(x_te),
                     y_test=np.ascontiguousarray(y_te, dtype=np.int64), mean=mean_t, std=std_t,
                     test_split=test_split, source=source)


def _limit(y: np.ndarray, limit: int, seed: int, what: str, split: str) -> np.ndarray:
    """Indices into y: all of them for limit 0, else a seeded class-balanced subset of `limit`."""
    if limit == 0:
        return np.arange(len(y))
    if limit > len(y):
        raise ValueError(f"{what}={limit} is larger than the {split} ({len(y)} images); "
                         f"pass 0 for all of them or a value <= {len(y)}.")
    return balanced_subset(y=y, n=limit, seed=seed)


def _check_int(name: str, value, *, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is not valid; pass {hint}.")


def _mean_var(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) variance of channel-last values, in float64 chunks of bounded memory."""
    # Rows of whole image lines (W * 3 values) make numpy add long contiguous vectors: ~10x faster than (P, 3).
    width = x.shape[-2] * 3 if x.ndim >= 3 else 3
    rows = np.ascontiguousarray(x).reshape(-1, width)
    step = max(1, (1 << 20) // width)  # ~1M values = 8 MB of float64 per chunk
    total, total_sq = np.zeros(width), np.zeros(width)
    for start in range(0, len(rows), step):
        part = rows[start:start + step].astype(np.float64)
        total += part.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", part, part)
    n = rows.size // 3
    mean = total.reshape(-1, 3).sum(axis=0) / n
    # Uint8 sums are exact in float64 far beyond any dataset here, so E[x^2] - E[x]^2 loses nothing that matters.
    var = np.maximum(total_sq.reshape(-1, 3).sum(axis=0) / n - mean**2, 0.0)
    return mean, var


# ----------------------------------------------------------------------------- CIFAR-10 python batches


def _load_cifar10(*, data_dir: Path, download: bool):
    folder = _find_cifar10(data_dir)
    if folder is None:
        if not download:
            raise FileNotFoundError(
                f"CIFAR-10 not found: expected {data_dir / CIFAR10_FOLDER}/ with {', '.join(CIFAR10_FILES)}. "
                f"Pass download=True to fetch {CIFAR10_URL}, or extract that archive into {data_dir}.")
        from torchvision.datasets.utils import download_and_extract_archive

        data_dir.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(CIFAR10_URL, download_root=str(data_dir),
                                     filename="cifar-10-python.tar.gz", md5=CIFAR10_MD5)
        folder = _find_cifar10(data_dir)
        if folder is None:
            raise DataError(f"the download into {data_dir} did not produce {CIFAR10_FOLDER}/; "
                            "delete cifar-10-python.tar.gz there and try again.")
    missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 in {folder} is incomplete: missing {', '.join(missing)}. "
                                f"Delete {folder} and load again with download=True.")
    meta = _unpickle(folder / "batches.meta")
    names = _field(meta, "label_names", folder / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    parts = [_cifar10_batch(folder / f, len(classes)) for f in CIFAR10_TRAIN_FILES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _cifar10_batch(folder / "test_batch", len(classes))
    return x_train, y_train, x_test, y_test, classes, str(folder)


def _find_cifar10(data_dir: Path) -> Path | None:
    for folder in (data_dir / CIFAR10_FOLDER, data_dir):
        if (folder / "batches.meta").is_file() or (folder / "data_batch_1").is_file():
            return folder
    return None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")  # the official batches are pickles; nothing of ours is
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise DataError(f"cannot read the CIFAR-10 batch {path} ({type(e).__name__}: {e}); "
                        "delete the folder and load again with download=True.") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR-10 python batch (a pickled dict); delete it and download again.")
    return obj


def _field(obj: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in obj:
            return obj[k]
    raise DataError(f"{path} has no {key!r} entry, so it is not a CIFAR-10 python batch; "
                    "delete the folder and load again with download=True.")


def _cifar10_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data = np.asarray(_field(batch, "data", path))
    labels = np.asarray(_field(batch, "labels", path), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: expected uint8 data of shape (N, 3072) and N labels, got {data.dtype} "
                        f"{data.shape} and {len(labels)} labels; delete the folder and download again.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}; delete the folder and download again.")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels


# ----------------------------------------------------------------------------- image folders


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in JUNK_FILES or name == "__MACOSX"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_junk(p.name))


def _check_data_dir(data_dir: Path, what: str) -> None:
    if not data_dir.exists():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist; pass the folder that holds {what}.")
    if not data_dir.is_dir():
        hint = " Unzip it first and pass the folder." if data_dir.suffix.lower() == ".zip" else ""
        raise FileNotFoundError(f"data_dir {data_dir} is a file, not a folder; pass the folder that holds "
                                f"{what}.{hint}")
    if not any(not _is_junk(p.name) for p in data_dir.iterdir()):
        raise FileNotFoundError(f"data_dir {data_dir} is empty; put {what} there, or pass the folder that holds it.")


def imagefolder_index(*, data_dir: str | Path) -> FileIndex:
    """List data_dir/{train,test}/<class>/<image> (or the same inside data_dir's only subfolder), without decoding."""
    data_dir = Path(data_dir).expanduser()
    expected = "train/<class>/<images> and test/<class>/<images>"
    _check_data_dir(data_dir, expected)
    root = data_dir
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        subdirs = _visible_dirs(data_dir)
        if len(subdirs) == 1 and (subdirs[0] / "train").is_dir() and (subdirs[0] / "test").is_dir():
            root = subdirs[0]
        else:
            found = sorted(p.name + ("/" if p.is_dir() else "") for p in data_dir.iterdir() if not _is_junk(p.name))
            hint = " Unzip the .zip first." if any(f.lower().endswith(".zip") for f in found) else ""
            raise DataError(f"wrong folder layout in {data_dir}: expected {expected} (directly or inside one "
                            f"subfolder), found {_listing(found)}.{hint}")

    per_split, ignored = {}, []
    for split in ("train", "test"):
        per_split[split] = _list_classes(root, split, ignored)
    if ignored:
        warnings.warn(f"skipped {len(ignored)} file(s) that are not images ({', '.join(IMAGE_EXTENSIONS)}) in "
                      f"{root}: {_listing(ignored)}", stacklevel=2)
    train_classes, test_classes = set(per_split["train"]), set(per_split["test"])
    if train_classes != test_classes:
        raise DataError(f"train and test classes differ in {root}: missing in test/: "
                        f"{sorted(train_classes - test_classes) or 'none'}; missing in train/: "
                        f"{sorted(test_classes - train_classes) or 'none'}. Give both the same class folders.")
    classes = sorted(train_classes)
    label_of = {c: i for i, c in enumerate(classes)}
    names, labels, split_ids = [], [], []
    for s, split in enumerate(("train", "test")):
        for c in classes:
            files = per_split[split][c]
            names += files
            labels += [label_of[c]] * len(files)
            split_ids += [s] * len(files)
    return FileIndex(root=root, names=names, labels=np.asarray(labels, dtype=np.int64), classes=classes,
                     split=np.asarray(split_ids, dtype=np.int8), key=_listing_key(root, names))


def _list_classes(root: Path, split: str, ignored: list[str]) -> dict[str, list[str]]:
    """{class folder: sorted relative image names} of root/split, collecting non-image files in `ignored`."""
    top = root / split
    loose = sorted(p.name for p in top.iterdir() if p.is_file() and _is_image(p.name) and not _is_junk(p.name))
    if loose:
        raise DataError(f"wrong folder layout: images lie directly in {top} (e.g. {loose[0]}); "
                        f"expected {top}/<class>/<images>. Move each image into a folder named after its class.")
    classes = _visible_dirs(top)
    if not classes:
        raise DataError(f"wrong folder layout: {top} has no class folders; expected {top}/<class>/<images>.")
    out = {}
    for cdir in classes:
        files = []
        for dirpath, dirnames, filenames in os.walk(cdir):
            dirnames[:] = sorted(d for d in dirnames if not _is_junk(d))
            for f in filenames:
                rel = Path(dirpath, f).relative_to(root).as_posix()
                if _is_junk(f):
                    continue
                (files if _is_image(f) else ignored).append(rel)
        if not files:
            raise DataError(f"the class folder {cdir} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                            "add images or delete the folder (from train/ and test/).")
        out[cdir.name] = sorted(files)
    return out


def _listing(items: list[str]) -> str:
    """First MAX_LISTED items, then a count of the rest."""
    shown = ", ".join(str(i) for i in items[:MAX_LISTED]) or "nothing"
    return shown + (f" ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _listing_key(root: Path, names: list[str]) -> str:
    """Hash of the sorted (relative path, size, mtime) listing: any change of the files changes the key."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for name in sorted(names):
        st = (root / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- Tiny ImageNet


def tinyimagenet_index(*, data_dir: str | Path, download: bool = False) -> FileIndex:
    """List Tiny ImageNet's labelled train + val images (zip or folder) with readable class names, without decoding."""
    data_dir = Path(data_dir).expanduser()
    src = _find_tinyimagenet(data_dir)
    if src is None:
        if not download:
            raise FileNotFoundError(
                f"Tiny ImageNet not found in {data_dir}: expected {TINYIMAGENET_ZIP} or the extracted "
                f"{TINYIMAGENET_FOLDER}/ folder. Pass download=True to fetch {TINYIMAGENET_URL}, or put the zip there.")
        from torchvision.datasets.utils import download_url

        data_dir.mkdir(parents=True, exist_ok=True)
        download_url(TINYIMAGENET_URL, root=str(data_dir), filename=TINYIMAGENET_ZIP, md5=TINYIMAGENET_MD5)
        src = data_dir / TINYIMAGENET_ZIP
    if src.is_file():
        if src.suffix.lower() != ".zip":
            raise ValueError(f"data_dir {src} is a file but not a .zip; pass the folder that holds "
                             f"{TINYIMAGENET_ZIP} (or {TINYIMAGENET_FOLDER}/), or the zip itself.")
        return _tin_index_zip(src)
    return _tin_index_folder(src)


def _find_tinyimagenet(data_dir: Path) -> Path | None:
    """The zip file or the folder holding wnids.txt, or None."""
    if data_dir.is_file():
        return data_dir
    for folder in (data_dir, data_dir / TINYIMAGENET_FOLDER):
        if (folder / "wnids.txt").is_file():
            return folder
    if (data_dir / TINYIMAGENET_ZIP).is_file():
        return data_dir / TINYIMAGENET_ZIP
    return None


def _damaged_zip(path: Path, err: Exception) -> DataError:
    return DataError(f"{path} is damaged or truncated ({type(err).__name__}: {err}); "
                     "delete it and download it again (load_data(..., download=True) fetches it).")


def _tin_index_zip(path: Path) -> FileIndex:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i.filename for i in zf.infolist() if not i.is_dir()]
            wnids_member = min((m for m in members if m.rsplit("/", 1)[-1] == "wnids.txt"),
                               key=lambda m: m.count("/"), default=None)
            if wnids_member is None:
                raise DataError(f"{path} has no wnids.txt, so it is not the Tiny ImageNet zip; "
                                f"delete it and download {TINYIMAGENET_URL} again.")
            prefix = wnids_member[: -len("wnids.txt")]
            names = [m[len(prefix):] for m in members if m.startswith(prefix)]
            present = set(names)

            def read_text(name: str) -> str | None:
                return zf.read(prefix + name).decode("utf-8") if name in present else None

            texts = {n: read_text(n) for n in ("wnids.txt", "words.txt", "val/val_annotations.txt")}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise _damaged_zip(path, e) from e
    st = path.stat()
    key = hashlib.sha256(f"v{CACHE_VERSION}\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    return _tin_build(root=path, zip_prefix=prefix, files=names, texts=texts, where=f"{path} ({prefix or 'top level'})",
                      key=key)


def _tin_index_folder(folder: Path) -> FileIndex:
    files = []
    for sub in ("train", "val"):
        for dirpath, dirnames, filenames in os.walk(folder / sub):
            dirnames[:] = [d for d in dirnames if not _is_junk(d)]
            rel = Path(dirpath).relative_to(folder).as_posix()
            files += [f"{rel}/{f}" for f in filenames if not _is_junk(f)]
    texts = {}
    for name in ("wnids.txt", "words.txt", "val/val_annotations.txt"):
        p = folder / name
        texts[name] = p.read_text(encoding="utf-8") if p.is_file() else None
    index = _tin_build(root=folder, zip_prefix=None, files=files, texts=texts, where=str(folder), key="")
    index.key = _listing_key(folder, index.names + [n for n in texts if texts[n] is not None])
    return index


def _tin_build(*, root: Path, zip_prefix: str | None, files: list[str], texts: dict, where: str,
               key: str) -> FileIndex:
    """Labels from wnids.txt (train folders) and val/val_annotations.txt; names from words.txt."""
    if texts["val/val_annotations.txt"] is None:
        raise DataError(f"{where} has no val/val_annotations.txt, so the validation images cannot be labelled; "
                        f"delete it and download the official {TINYIMAGENET_ZIP} again.")
    wnids = texts["wnids.txt"].split()
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"wnids.txt in {where} is empty or lists a wnid twice; download the official zip again.")
    label_of = {w: i for i, w in enumerate(wnids)}
    by_class: list[list[str]] = [[] for _ in wnids]
    for f in files:
        parts = f.split("/")
        # train/<wnid>/images/<file>; train/<wnid>/<wnid>_boxes.txt is not an image and is ignored.
        if len(parts) == 4 and parts[0] == "train" and parts[2] == "images" and _is_image(parts[3]):
            if parts[1] in label_of:
                by_class[label_of[parts[1]]].append(f)
    present = set(files)
    for lineno, line in enumerate(texts["val/val_annotations.txt"].splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or cols[1] not in label_of:
            raise DataError(f"val/val_annotations.txt line {lineno} in {where} is not 'file<TAB>wnid<TAB>box' with a "
                            f"wnid from wnids.txt: {line!r}; download the official zip again.")
        name = f"val/images/{cols[0]}"
        if name not in present:
            raise DataError(f"{name} is listed in val/val_annotations.txt but missing from {where}; "
                            "download the official zip again.")
        by_class[label_of[cols[1]]].append(name)
    empty = [w for w, members in zip(wnids, by_class) if not members]
    if empty:
        raise DataError(f"no images for wnid(s) {_listing(empty)} listed in wnids.txt of {where} "
                        f"(expected train/<wnid>/images/*.JPEG); download the official zip again.")
    classes = _tin_class_names(wnids, texts["words.txt"])
    names = [n for members in by_class for n in sorted(members)]
    labels = np.repeat(np.arange(len(wnids), dtype=np.int64), [len(m) for m in by_class])
    return FileIndex(root=root, names=names, labels=labels, classes=classes, split=None, zip_prefix=zip_prefix,
                     key=key, wnids=wnids)


def _tin_class_names(wnids: list[str], words: str | None) -> list[str]:
    """First name from words.txt per wnid (the wnid itself where absent); duplicates get '(wnid)' appended."""
    first = {}
    for line in (words or "").splitlines():
        wnid, _, text = line.partition("\t")
        if wnid in first or not text.strip():
            continue
        first[wnid] = text.split(",")[0].strip()
    names = [first.get(w, w) for w in wnids]
    counts = {n: names.count(n) for n in names}
    return [f"{n} ({w})" if counts[n] > 1 else n for n, w in zip(names, wnids)]


def tinyimagenet_split(*, index: FileIndex, split_seed: int, cache_dir: str | Path | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index positions of the 70% train / 30% validation split per class; saved as JSON and reused."""
    _check_int("split_seed", split_seed, minimum=0, hint="a non-negative integer")
    cache_dir = _cache_dir(cache_dir=cache_dir, data_dir=index.root)
    path = cache_dir / f"tinyimagenet-split-seed{split_seed}.json"
    pos_of = {n: i for i, n in enumerate(index.names)}
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            train, val = list(saved["train"]), list(saved["validation"])
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"the saved split {path} cannot be read ({e}); delete it to make a new split.") from e
        listed = set(train) | set(val)
        missing = sorted(listed - pos_of.keys())
        extra = sorted(pos_of.keys() - listed)
        if missing or extra or len(listed) != len(train) + len(val):
            raise DataError(
                f"the saved split {path} does not match the images in {index.root}: {len(missing)} name(s) in the "
                f"split are not in the data (e.g. {_listing(missing[:3])}), {len(extra)} image(s) are not in the "
                f"split (e.g. {_listing(extra[:3])}). Delete {path} to make a new split, or pass another cache_dir.")
        return (np.sort(np.fromiter((pos_of[n] for n in train), np.int64, len(train))),
                np.sort(np.fromiter((pos_of[n] for n in val), np.int64, len(val))))
    rng = np.random.default_rng(split_seed)
    train_pos, val_pos = [], []
    for c in range(len(index.classes)):
        members = np.flatnonzero(index.labels == c)  # already sorted by name within the class
        members = members[rng.permutation(len(members))]
        n_train = int(np.floor(TINYIMAGENET_TRAIN_FRACTION * len(members) + 0.5))
        train_pos.append(members[:n_train])
        val_pos.append(members[n_train:])
    train_pos, val_pos = np.sort(np.concatenate(train_pos)), np.sort(np.concatenate(val_pos))
    doc = {"split_seed": split_seed, "source": str(index.root), "train_fraction": TINYIMAGENET_TRAIN_FRACTION,
           "train": [index.names[i] for i in train_pos], "validation": [index.names[i] for i in val_pos]}
    try:
        write_atomic(path=path, write=lambda f: f.write(json.dumps(doc).encode("utf-8")))
    except OSError as e:
        warnings.warn(f"could not save the split to {path} ({e}); it will be recomputed (identically) next time.",
                      stacklevel=2)
    return train_pos, val_pos


# ----------------------------------------------------------------------------- cache


def _writable(folder: Path) -> bool:
    """True when folder (or its nearest existing parent) may be written; honours read-only mode bits even for root."""
    p = folder
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    try:
        mode = p.stat().st_mode
    except OSError:
        return False
    return p.is_dir() and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(p, os.W_OK)


def _cache_dir(*, cache_dir: str | Path | None, data_dir: Path) -> Path:
    """cache_dir if given; else a dot folder beside the data if writable; else ~/.cache/eva_helpers."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    base = data_dir.parent if data_dir.is_file() else data_dir
    if _writable(base / CACHE_FOLDER):
        return base / CACHE_FOLDER
    return Path.home() / ".cache" / "eva_helpers"


def cache_paths(*, cache_dir: str | Path, dataset: str, key: str) -> dict[str, Path]:
    """The cache files of one source: {"x": .npy, "y": .npy, "meta": .json}."""
    stem = Path(cache_dir) / f"{dataset}-{key[:20]}"
    return {"x": stem.with_name(stem.name + ".x.npy"), "y": stem.with_name(stem.name + ".y.npy"),
            "meta": stem.with_name(stem.name + ".json")}


def _names_hash(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _load_cache(paths: dict[str, Path], index: FileIndex) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(x, y, skipped names) from a complete, consistent cache, else None (with a warning if it is damaged)."""
    if not all(p.is_file() for p in paths.values()):
        return None
    try:
        meta = json.loads(paths["meta"].read_text(encoding="utf-8"))
        x = np.load(paths["x"], mmap_mode="r", allow_pickle=False)
        y = np.load(paths["y"], allow_pickle=False)
        skipped = list(meta["skipped"])
        skipped_set = set(skipped)
        kept = [n for n in index.names if n not in skipped_set]
        ok = (meta["version"] == CACHE_VERSION and meta["names_sha256"] == _names_hash(kept)
              and x.dtype == np.uint8 and x.ndim == 4 and x.shape[-1] == 3 and len(x) == len(y) == len(kept))
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.warn(f"ignoring the unreadable cache {paths['x']} ({e}); decoding again.", stacklevel=3)
        return None
    if not ok:
        warnings.warn(f"ignoring the cache {paths['x']}: it does not match {index.root}; decoding again.",
                      stacklevel=3)
        return None
    return x, y, skipped


def _save_cache(paths: dict[str, Path], x: np.ndarray, y: np.ndarray, kept: list[str], skipped: list[str],
                index: FileIndex) -> None:
    meta = {"version": CACHE_VERSION, "source": str(index.root), "key": index.key, "shape": list(x.shape),
            "classes": index.classes, "names_sha256": _names_hash(kept), "skipped": skipped}
    try:
        write_atomic(path=paths["x"], write=lambda f: np.save(f, x, allow_pickle=False))
        write_atomic(path=paths["y"], write=lambda f: np.save(f, y, allow_pickle=False))
        write_atomic(path=paths["meta"], write=lambda f: f.write(json.dumps(meta).encode("utf-8")))  # last: marks it complete
    except OSError as e:
        warnings.warn(f"could not write the cache in {paths['x'].parent} ({e}); the next run decodes again. "
                      "Pass cache_dir= a writable folder.", stacklevel=3)


# ----------------------------------------------------------------------------- decoding


def _read_indexed(*, index: FileIndex, dataset: str, train_pos: np.ndarray, test_pos: np.ndarray, use_all: bool,
                  cache_dir: Path, skip_bad_images: bool, progress: bool):
    """x/y for the given index positions: from the cache, else by decoding (all, then cache; or just the subset)."""
    paths = cache_paths(cache_dir=cache_dir, dataset=dataset, key=index.key)
    cached = _load_cache(paths, index)
    from_cache = cached is not None
    if cached is None and use_all:
        x, kept, bad = _decode_images(index=index, positions=np.arange(len(index.names)), progress=progress,
                                      skip_bad_images=skip_bad_images)
        kept_names = [index.names[i] for i in np.flatnonzero(kept)]
        y = index.labels[kept]
        _save_cache(paths, x, y, kept_names, bad, index)
        cached = (x, y, bad)
    if cached is not None:
        x_all, y_all, skipped = cached
        if skipped and from_cache:  # a fresh decode has reported them already
            _report_bad([(n, "could not be decoded (remembered from the cache)") for n in skipped],
                        skip_bad_images=skip_bad_images, where=str(index.root))
        row_of = np.full(len(index.names), -1, dtype=np.int64)
        skipped_set = set(skipped)
        keep = np.array([n not in skipped_set for n in index.names], dtype=bool)
        row_of[keep] = np.arange(int(keep.sum()))
        out = []
        for pos in (train_pos, test_pos):
            rows = row_of[pos]
            rows = rows[rows >= 0]
            out += [np.ascontiguousarray(x_all[rows]), np.asarray(y_all[rows], dtype=np.int64)]
        return tuple(out)
    out = []
    for pos in (train_pos, test_pos):
        x, kept, _ = _decode_images(index=index, positions=pos, progress=progress, skip_bad_images=skip_bad_images)
        out += [x, index.labels[pos][kept]]
    return tuple(out)


class _ZipDamaged(Exception):
    pass


def _opener(index: FileIndex):
    """(read: name -> bytes, close) for the index's folder or zip (one shared ZipFile: its reads take a lock)."""
    if index.zip_prefix is None:
        root = index.root

        def read_file(name: str) -> bytes:
            with open(root / name, "rb") as f:
                return f.read()
        return read_file, lambda: None
    try:
        zf = zipfile.ZipFile(index.root)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise _damaged_zip(index.root, e) from e
    prefix = index.zip_prefix
    return (lambda name: zf.read(prefix + name)), zf.close


def _decode_one(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.mode != "RGB":  # grayscale, palette, RGBA, CMYK ... all become RGB
            im = im.convert("RGB")
        return np.frombuffer(im.tobytes(), dtype=np.uint8).reshape(im.height, im.width, 3)  # faster than asarray


def _decode_chunk(read, zipped: bool, names: list[str], start: int, out: np.ndarray | None,
                  sizes: np.ndarray, bad: list) -> None:
    """Decode names into out[start + k] (when the size fits); record every size, collect undecodable files."""
    for k, name in enumerate(names):
        try:
            data = read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as e:
            raise _ZipDamaged(f"{name}: {type(e).__name__}: {e}") from e
        except OSError as e:
            if zipped:
                raise _ZipDamaged(f"{name}: {type(e).__name__}: {e}") from e
            bad.append((start + k, name, f"cannot be read: {e}"))
            continue
        try:
            arr = _decode_one(data)
        except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files
            why = "not a recognised image" if type(e).__name__ == "UnidentifiedImageError" else f"{e}"
            bad.append((start + k, name, why))
            continue
        sizes[start + k] = arr.shape[:2]
        if out is not None and arr.shape[:2] == out.shape[1:3]:
            out[start + k] = arr


def _decode_images(*, index: FileIndex, positions: np.ndarray, progress: bool, skip_bad_images: bool):
    """Decode index.names[positions] in a thread pool: (uint8 (K, H, W, 3), kept mask over positions, bad names)."""
    from tqdm.auto import tqdm

    names = [index.names[i] for i in positions]
    where = str(index.root)
    sizes = np.zeros((len(names), 2), dtype=np.int64)
    bad: list[tuple[int, str, str]] = []  # (position, name, why)
    read, close = _opener(index)
    zipped = index.zip_prefix is not None
    try:
        # The first image that decodes fixes the array's size; every other image must match it.
        h = w = 0
        start = len(names)
        for i in range(len(names)):
            _decode_chunk(read, zipped, names[i:i + 1], i, None, sizes, bad)
            if sizes[i].any():
                (h, w), start = (int(v) for v in sizes[i]), i  # decoded again below, into the array
                break
        out = np.zeros((len(names), h, w, 3), dtype=np.uint8)
        chunk = 256
        # PIL releases the GIL while it decodes, so threads overlap the decoding of one chunk with another. Small
        # images leave much of the time in Python (GIL held): on 2 cores one worker beat two (7.0 s vs 8.1 s for
        # 27,500 Tiny ImageNet images), so leave one core to the interpreter's other thread.
        workers = max(1, min(8, (os.cpu_count() or 1) - 1))
        with ThreadPoolExecutor(max_workers=workers) as pool, \
                tqdm(total=len(names), desc=f"decoding {len(names)} images", disable=not progress, unit="img",
                     initial=start) as bar:
            futures = {pool.submit(_decode_chunk, read, zipped, names[s:s + chunk], s, out, sizes, bad):
                       min(chunk, len(names) - s) for s in range(start, len(names), chunk)}
            for fut in as_completed(futures):
                fut.result()
                bar.update(futures[fut])
    except _ZipDamaged as e:
        raise DataError(f"{index.root} is damaged or truncated ({e}); delete it and download it again.") from e
    finally:
        close()
    bad_names = {n for _, n, _ in bad}
    ok = np.array([n not in bad_names for n in names], dtype=bool)
    if ok.any():
        good_sizes, counts = np.unique(sizes[ok], axis=0, return_counts=True)
        if len(good_sizes) > 1:
            expected = good_sizes[counts.argmax()]
            odd = np.flatnonzero(ok & (sizes != expected).any(axis=1))
            i = odd[0]
            raise DataError(f"images in {where} differ in size: {names[i]} is {sizes[i][1]}x{sizes[i][0]} "
                            f"(width x height) but the others are {expected[1]}x{expected[0]} ({len(odd)} image(s) "
                            "differ). Resize them all to one size, or remove the odd ones.")
    if bad:
        _report_bad([(n, why) for _, n, why in sorted(bad)], skip_bad_images=skip_bad_images, where=where)
    if not ok.all():
        out = np.ascontiguousarray(out[ok])
    return out, ok, [n for _, n, _ in sorted(bad)]


def _report_bad(bad: list[tuple[str, str]], *, skip_bad_images: bool, where: str) -> None:
    listed = _listing([f"{n} ({why})" for n, why in bad])
    if not skip_bad_images:
        raise DataError(f"{len(bad)} image(s) in {where} cannot be decoded: {listed}. Delete them, or pass "
                        "skip_bad_images=True to skip them.")
    warnings.warn(f"skipping {len(bad)} image(s) in {where} that cannot be decoded: {listed}", stacklevel=4)
