"""What the dataset readers share: FileIndex, what read() returns (Decoded, Listed), which files are images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Files that operating systems drop into folders; skipped without a word (as are dotfiles and __MACOSX/).
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}


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


def is_junk(name: str) -> bool:
    """True for dotfiles, __MACOSX and the files operating systems drop into folders."""
    return name.startswith(".") or name.lower() in JUNK_FILES or name == "__MACOSX"


def is_image(name: str) -> bool:
    """True when the name ends in one of IMAGE_EXTENSIONS (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def listing_key(root: Path, names: list[str]) -> str:
    """Hash of the sorted (relative path, size, mtime) listing: any change of the files changes the key.

    The key names a source, not a cache format: cache.load_cache turns away files of another CACHE_VERSION.
    """
    h = hashlib.sha256()
    for name in sorted(names):
        st = (root / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
