"""Image folders (train/<class>/, test/<class>/): FileIndex, Decoded and Listed, junk filters and the folder listing."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..validate import DataError, listing
from .cache import CACHE_VERSION

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Files that operating systems drop into folders; skipped without a word (as are dotfiles and __MACOSX/).
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}

TEST_SPLIT = "test"
DOWNLOADS = False  # your own folders: nothing to fetch
AUGMENT = {"pad": 4, "cutout": 8, "rotate": 0, "rgb_shift": 0}


@dataclass(repr=False)
class FileIndex:
    """The labelled images of a dataset on disk, listed without decoding anything."""

    root: Path  # the folder (or the zip file) the names are relative to
    names: list[str]  # POSIX paths relative to root (inside the zip: after zip_prefix), label order
    labels: np.ndarray  # int64, one per name
    classes: list[str]  # readable class names in label order
    split: np.ndarray | None  # int8 per name, 0 = train and 1 = test, where the folders say so; None for Tiny ImageNet
    zip_prefix: str | None = None  # member-name prefix when root is a zip file; None for a folder
    key: str = ""  # identity of the source (hash of paths, sizes, mtimes): the cache key
    wnids: list[str] = field(default_factory=list)  # Tiny ImageNet only: class ids in label order

    def __repr__(self) -> str:
        kind = "zip" if self.zip_prefix is not None else "folder"
        return f"FileIndex({kind} {str(self.root)!r}, {len(self.names)} images, {len(self.classes)} classes)"


@dataclass
class Decoded:
    """What a dataset's read() returns when its arrays are already in memory (CIFAR-10's pickles)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str


@dataclass
class Listed:
    """What a dataset's read() returns when its files are still to decode: the index and each split's positions."""

    index: FileIndex
    train_pos: np.ndarray
    test_pos: np.ndarray


def read(*, data_dir: Path, download: bool, split_seed: int, cache_dir: str | Path | None) -> Listed:
    """The image folder's index and its train/ and test/ positions (download, split_seed, cache_dir are unused)."""
    index = imagefolder_index(data_dir=data_dir)
    return Listed(index=index, train_pos=np.flatnonzero(index.split == 0), test_pos=np.flatnonzero(index.split == 1))


def is_junk(name: str) -> bool:
    """True for dotfiles, __MACOSX and the files operating systems drop into folders."""
    return name.startswith(".") or name.lower() in JUNK_FILES or name == "__MACOSX"


def is_image(name: str) -> bool:
    """True when the name ends in one of IMAGE_EXTENSIONS (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_junk(p.name))


def check_data_dir(data_dir: Path, what: str) -> None:
    """Raise FileNotFoundError unless data_dir is an existing folder with something in it besides junk."""
    if not data_dir.exists():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist; pass the folder that holds {what}.")
    if not data_dir.is_dir():
        hint = " Unzip it first and pass the folder." if data_dir.suffix.lower() == ".zip" else ""
        raise FileNotFoundError(
            f"data_dir {data_dir} is a file, not a folder; pass the folder that holds {what}.{hint}"
        )
    if not any(not is_junk(p.name) for p in data_dir.iterdir()):
        raise FileNotFoundError(f"data_dir {data_dir} is empty; put {what} there, or pass the folder that holds it.")


def imagefolder_index(*, data_dir: str | Path) -> FileIndex:
    """List data_dir/{train,test}/<class>/<image> (or the same inside data_dir's only subfolder), without decoding."""
    data_dir = Path(data_dir).expanduser()
    expected = "train/<class>/<images> and test/<class>/<images>"
    check_data_dir(data_dir, expected)
    root = data_dir
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        subdirs = _visible_dirs(data_dir)
        if len(subdirs) == 1 and (subdirs[0] / "train").is_dir() and (subdirs[0] / "test").is_dir():
            root = subdirs[0]
        else:
            found = sorted(p.name + ("/" if p.is_dir() else "") for p in data_dir.iterdir() if not is_junk(p.name))
            hint = " Unzip the .zip first." if any(f.lower().endswith(".zip") for f in found) else ""
            raise DataError(
                f"wrong folder layout in {data_dir}: expected {expected} (directly or inside one "
                f"subfolder), found {listing(found)}.{hint}"
            )

    per_split, ignored = {}, []
    for split in ("train", "test"):
        per_split[split] = _list_classes(root, split, ignored)
    if ignored:
        warnings.warn(
            f"skipped {len(ignored)} file(s) that are not images ({', '.join(IMAGE_EXTENSIONS)}) in "
            f"{root}: {listing(ignored)}",
            stacklevel=2,
        )
    train_classes, test_classes = set(per_split["train"]), set(per_split["test"])
    if train_classes != test_classes:
        raise DataError(
            f"train and test classes differ in {root}: missing in test/: "
            f"{sorted(train_classes - test_classes) or 'none'}; missing in train/: "
            f"{sorted(test_classes - train_classes) or 'none'}. Give both the same class folders."
        )
    classes = sorted(train_classes)
    label_of = {c: i for i, c in enumerate(classes)}
    names, labels, split_ids = [], [], []
    for s, split in enumerate(("train", "test")):
        for c in classes:
            files = per_split[split][c]
            names += files
            labels += [label_of[c]] * len(files)
            split_ids += [s] * len(files)
    return FileIndex(
        root=root,
        names=names,
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        split=np.asarray(split_ids, dtype=np.int8),
        key=listing_key(root, names),
    )


def _list_classes(root: Path, split: str, ignored: list[str]) -> dict[str, list[str]]:
    """{class folder: sorted relative image names} of root/split, collecting non-image files in `ignored`."""
    top = root / split
    loose = sorted(p.name for p in top.iterdir() if p.is_file() and is_image(p.name) and not is_junk(p.name))
    if loose:
        raise DataError(
            f"wrong folder layout: images lie directly in {top} (e.g. {loose[0]}); "
            f"expected {top}/<class>/<images>. Move each image into a folder named after its class."
        )
    classes = _visible_dirs(top)
    if not classes:
        raise DataError(f"wrong folder layout: {top} has no class folders; expected {top}/<class>/<images>.")
    out = {}
    for cdir in classes:
        files = []
        for dirpath, dirnames, filenames in os.walk(cdir):
            dirnames[:] = sorted(d for d in dirnames if not is_junk(d))
            for f in filenames:
                rel = Path(dirpath, f).relative_to(root).as_posix()
                if is_junk(f):
                    continue
                (files if is_image(f) else ignored).append(rel)
        if not files:
            raise DataError(
                f"the class folder {cdir} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add images or delete the folder (from train/ and test/)."
            )
        out[cdir.name] = sorted(files)
    return out


def listing_key(root: Path, names: list[str]) -> str:
    """Hash of the sorted (relative path, size, mtime) listing: any change of the files changes the key."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for name in sorted(names):
        st = (root / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
