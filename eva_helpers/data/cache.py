"""The cache of decoded arrays: where it goes (cache_dir), and reading and writing one source's .npy files."""

# Cache: in ``cache_dir`` if given, else in ``.eva_helpers_cache/`` beside the data when that folder may be written
# (read-only mode bits are honoured even for root), else in ``~/.cache/eva_helpers``. Files are named by the
# source's identity (zip path + size + mtime, or a hash of the folder's (path, size, mtime) listing), so a changed
# source is decoded again, and hold the CACHE_VERSION they were written with, so a cache from another version is
# decoded again (and overwritten); they are written atomically. The Tiny ImageNet split is saved there as
# ``tinyimagenet-split-seed{split_seed}.json`` and reused (checked against the files present).

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from ..files import write_atomic
from .index import FileIndex

CACHE_FOLDER = ".eva_helpers_cache"  # beside the data; a dot folder so layout checks ignore it
CACHE_VERSION = 2  # bump when the cached arrays change meaning (2: images.to_rgb: EXIF, alpha on white, 16 bit)


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


def cache_dir(*, cache_dir: str | Path | None, data_dir: Path) -> Path:
    """cache_dir if given; else a dot folder beside the data if writable; else ~/.cache/eva_helpers."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    base = data_dir.parent if data_dir.is_file() else data_dir
    if _writable(base / CACHE_FOLDER):
        return base / CACHE_FOLDER
    return Path.home() / ".cache" / "eva_helpers"


def _cache_paths(*, cache_dir: str | Path, dataset: str, key: str) -> dict[str, Path]:
    """The cache files of one source: {"x": .npy, "y": .npy, "meta": .json}."""
    stem = Path(cache_dir) / f"{dataset}-{key[:20]}"
    return {
        "x": stem.with_name(stem.name + ".x.npy"),
        "y": stem.with_name(stem.name + ".y.npy"),
        "meta": stem.with_name(stem.name + ".json"),
    }


def _names_hash(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def load_cache(*, cache_dir: Path, dataset: str, index: FileIndex) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(x, y, skipped names) from a complete, consistent cache, else None (with a warning if it is damaged)."""
    paths = _cache_paths(cache_dir=cache_dir, dataset=dataset, key=index.key)
    if not all(p.is_file() for p in paths.values()):
        return None
    try:
        meta = json.loads(paths["meta"].read_text(encoding="utf-8"))
        if meta["version"] != CACHE_VERSION:  # written by another eva_helpers: decoded again and overwritten, quietly
            return None
        x = np.load(paths["x"], mmap_mode="r", allow_pickle=False)
        y = np.load(paths["y"], allow_pickle=False)
        skipped = list(meta["skipped"])
        skipped_set = set(skipped)
        kept = [n for n in index.names if n not in skipped_set]
        ok = (
            meta["names_sha256"] == _names_hash(kept)
            and x.dtype == np.uint8
            and x.ndim == 4
            and x.shape[-1] == 3
            and len(x) == len(y) == len(kept)
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.warn(f"ignoring the unreadable cache {paths['x']} ({e}); decoding again.", stacklevel=3)
        return None
    if not ok:
        warnings.warn(f"ignoring the cache {paths['x']}: it does not match {index.root}; decoding again.", stacklevel=3)
        return None
    return x, y, skipped


def save_cache(
    *,
    cache_dir: Path,
    dataset: str,
    index: FileIndex,
    x: np.ndarray,
    y: np.ndarray,
    kept: list[str],
    skipped: list[str],
) -> None:
    """Write x, y and (last, marking them complete) the metadata; warn instead of failing when it cannot."""
    paths = _cache_paths(cache_dir=cache_dir, dataset=dataset, key=index.key)
    meta = {
        "version": CACHE_VERSION,
        "source": str(index.root),
        "key": index.key,
        "shape": list(x.shape),
        "classes": index.classes,
        "names_sha256": _names_hash(kept),
        "skipped": skipped,
    }
    try:
        write_atomic(path=paths["x"], write=lambda f: np.save(f, x, allow_pickle=False))
        write_atomic(path=paths["y"], write=lambda f: np.save(f, y, allow_pickle=False))
        # last: marks it complete
        write_atomic(path=paths["meta"], write=lambda f: f.write(json.dumps(meta).encode("utf-8")))
    except OSError as e:
        warnings.warn(
            f"could not write the cache in {paths['x'].parent} ({e}); the next run decodes again. "
            "Pass cache_dir= a writable folder.",
            stacklevel=3,
        )
