"""Tiny ImageNet (zip or extracted folder): the labelled train + val images, readable class names, a 70/30 split."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..files import write_atomic
from ..validate import DataError, listing, whole
from .cache import cache_dir as choose_cache_dir
from .decode import damaged_zip
from .download import fetch
from .index import FileIndex, Listed, is_image, is_junk, listing_key

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
ZIP = "tiny-imagenet-200.zip"
FOLDER = "tiny-imagenet-200"
TRAIN_FRACTION = 0.7  # of the 550 labelled images per class (500 train + 50 val): 385 / 165

TEST_SPLIT = "validation"
DOWNLOADS = True  # read() fetches the official archive when data_dir lacks it
# cutout is off for Tiny ImageNet (its seed recipe has none); 16 is the 64-px analogue of CIFAR's 8.
AUGMENT = {"pad": 8, "cutout": 0, "rotate": 15, "rgb_shift": 20}


def read(*, data_dir: Path, download: bool, split_seed: int, cache_dir: str | Path | None) -> Listed:
    """The index (fetched first if asked) and the positions of the seeded train / validation split."""
    index = tinyimagenet_index(data_dir=data_dir, download=download)
    train_pos, test_pos = tinyimagenet_split(index=index, split_seed=split_seed, cache_dir=cache_dir)
    return Listed(index=index, train_pos=train_pos, test_pos=test_pos)


def tinyimagenet_index(*, data_dir: str | Path, download: bool = False) -> FileIndex:
    """List Tiny ImageNet's labelled train + val images (zip or folder) with readable class names, without decoding."""
    data_dir = Path(data_dir).expanduser()
    src = _find(data_dir)
    if src is None:
        fetch(
            url=URL,
            md5=MD5,
            data_dir=data_dir,
            filename=ZIP,
            extract=False,
            download=download,
            not_found=(
                f"Tiny ImageNet not found in {data_dir}: expected {ZIP} or the extracted "
                f"{FOLDER}/ folder. Pass download=True to fetch {URL}, or put the zip there."
            ),
        )
        src = data_dir / ZIP
    if src.is_file():
        if src.suffix.lower() != ".zip":
            raise ValueError(
                f"data_dir {src} is a file but not a .zip; pass the folder that holds "
                f"{ZIP} (or {FOLDER}/), or the zip itself."
            )
        return _index_zip(src)
    return _index_folder(src)


def _find(data_dir: Path) -> Path | None:
    """The zip file or the folder holding wnids.txt, or None."""
    if data_dir.is_file():
        return data_dir
    for folder in (data_dir, data_dir / FOLDER):
        if (folder / "wnids.txt").is_file():
            return folder
    if (data_dir / ZIP).is_file():
        return data_dir / ZIP
    return None


def _index_zip(path: Path) -> FileIndex:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i.filename for i in zf.infolist() if not i.is_dir()]
            wnids_member = min(
                (m for m in members if m.rsplit("/", 1)[-1] == "wnids.txt"), key=lambda m: m.count("/"), default=None
            )
            if wnids_member is None:
                raise DataError(
                    f"{path} has no wnids.txt, so it is not the Tiny ImageNet zip; delete it and download {URL} again."
                )
            prefix = wnids_member[: -len("wnids.txt")]
            names = [m[len(prefix) :] for m in members if m.startswith(prefix)]
            present = set(names)

            def read_text(name: str) -> str | None:
                return zf.read(prefix + name).decode("utf-8") if name in present else None

            texts = {n: read_text(n) for n in ("wnids.txt", "words.txt", "val/val_annotations.txt")}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise damaged_zip(path, e) from e
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    return _build_index(
        root=path, zip_prefix=prefix, files=names, texts=texts, where=f"{path} ({prefix or 'top level'})", key=key
    )


def _index_folder(folder: Path) -> FileIndex:
    files = []
    for sub in ("train", "val"):
        for dirpath, dirnames, filenames in os.walk(folder / sub):
            dirnames[:] = [d for d in dirnames if not is_junk(d)]
            rel = Path(dirpath).relative_to(folder).as_posix()
            files += [f"{rel}/{f}" for f in filenames if not is_junk(f)]
    texts = {}
    for name in ("wnids.txt", "words.txt", "val/val_annotations.txt"):
        p = folder / name
        texts[name] = p.read_text(encoding="utf-8") if p.is_file() else None
    index = _build_index(root=folder, zip_prefix=None, files=files, texts=texts, where=str(folder), key="")
    index.key = listing_key(folder, index.names + [n for n in texts if texts[n] is not None])
    return index


def _build_index(
    *, root: Path, zip_prefix: str | None, files: list[str], texts: dict, where: str, key: str
) -> FileIndex:
    """Labels from wnids.txt (train folders) and val/val_annotations.txt; names from words.txt."""
    if texts["val/val_annotations.txt"] is None:
        raise DataError(
            f"{where} has no val/val_annotations.txt, so the validation images cannot be labelled; "
            f"delete it and download the official {ZIP} again."
        )
    wnids = texts["wnids.txt"].split()
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"wnids.txt in {where} is empty or lists a wnid twice; download the official zip again.")
    label_of = {w: i for i, w in enumerate(wnids)}
    by_class: list[list[str]] = [[] for _ in wnids]
    for f in files:
        parts = f.split("/")
        # train/<wnid>/images/<file>; train/<wnid>/<wnid>_boxes.txt is not an image and is ignored.
        if len(parts) == 4 and parts[0] == "train" and parts[2] == "images" and is_image(parts[3]):
            if parts[1] in label_of:
                by_class[label_of[parts[1]]].append(f)
    present = set(files)
    for lineno, line in enumerate(texts["val/val_annotations.txt"].splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or cols[1] not in label_of:
            raise DataError(
                f"val/val_annotations.txt line {lineno} in {where} is not 'file<TAB>wnid<TAB>box' with a "
                f"wnid from wnids.txt: {line!r}; download the official zip again."
            )
        name = f"val/images/{cols[0]}"
        if name not in present:
            raise DataError(
                f"{name} is listed in val/val_annotations.txt but missing from {where}; "
                "download the official zip again."
            )
        by_class[label_of[cols[1]]].append(name)
    empty = [w for w, members in zip(wnids, by_class) if not members]
    if empty:
        raise DataError(
            f"no images for wnid(s) {listing(empty)} listed in wnids.txt of {where} "
            f"(expected train/<wnid>/images/*.JPEG); download the official zip again."
        )
    classes = _class_names(wnids, texts["words.txt"])
    names = [n for members in by_class for n in sorted(members)]
    labels = np.repeat(np.arange(len(wnids), dtype=np.int64), [len(m) for m in by_class])
    return FileIndex(
        root=root, names=names, labels=labels, classes=classes, split=None, zip_prefix=zip_prefix, key=key, wnids=wnids
    )


def _class_names(wnids: list[str], words: str | None) -> list[str]:
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


def tinyimagenet_split(
    *, index: FileIndex, split_seed: int, cache_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted index positions of the 70% train / 30% validation split per class; saved as JSON and reused."""
    split_seed = whole("split_seed", split_seed, low=0, hint="a non-negative integer")
    path = choose_cache_dir(cache_dir=cache_dir, data_dir=index.root) / f"tinyimagenet-split-seed{split_seed}.json"
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
                f"split are not in the data (e.g. {listing(missing[:3])}), {len(extra)} image(s) are not in the "
                f"split (e.g. {listing(extra[:3])}). Delete {path} to make a new split, or pass another cache_dir."
            )
        return (
            np.sort(np.fromiter((pos_of[n] for n in train), np.int64, len(train))),
            np.sort(np.fromiter((pos_of[n] for n in val), np.int64, len(val))),
        )
    rng = np.random.default_rng(split_seed)
    train_pos, val_pos = [], []
    for c in range(len(index.classes)):
        members = np.flatnonzero(index.labels == c)  # already sorted by name within the class
        members = members[rng.permutation(len(members))]
        n_train = int(np.floor(TRAIN_FRACTION * len(members) + 0.5))
        train_pos.append(members[:n_train])
        val_pos.append(members[n_train:])
    train_pos, val_pos = np.sort(np.concatenate(train_pos)), np.sort(np.concatenate(val_pos))
    doc = {
        "split_seed": split_seed,
        "source": str(index.root),
        "train_fraction": TRAIN_FRACTION,
        "train": [index.names[i] for i in train_pos],
        "validation": [index.names[i] for i in val_pos],
    }
    try:
        write_atomic(path=path, write=lambda f: f.write(json.dumps(doc).encode("utf-8")))
    except OSError as e:
        warnings.warn(
            f"could not save the split to {path} ({e}); it will be recomputed (identically) next time.", stacklevel=2
        )
    return train_pos, val_pos
