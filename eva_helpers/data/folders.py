"""Your own image folders (train/<class>/, test/<class>/) as a dataset: their layout checked and listed."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..validate import DataError, listing
from .index import IMAGE_EXTENSIONS, FileIndex, Listed, is_image, is_junk, listing_key

TEST_SPLIT = "test"
DOWNLOADS = False  # your own folders: nothing to fetch
AUGMENT = {"pad": 4, "cutout": 8, "rotate": 0, "rgb_shift": 0}


def read(*, data_dir: Path, download: bool, split_seed: int, cache_dir: str | Path | None) -> Listed:
    """The image folder's index and its train/ and test/ positions (download, split_seed, cache_dir are unused)."""
    index = imagefolder_index(data_dir=data_dir)
    return Listed(index=index, train_pos=np.flatnonzero(index.split == 0), test_pos=np.flatnonzero(index.split == 1))


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
