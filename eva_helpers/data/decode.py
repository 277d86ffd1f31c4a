"""Threaded decoding of a FileIndex's images into uint8 arrays, through the cache, with bad files listed or skipped.

Every file is prepared by images.to_rgb, as prediction prepares it (orientation, transparency on white, bit depth).
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from ..images import ImageError, to_rgb
from ..validate import DataError, listing
from .cache import load_cache, save_cache
from .index import FileIndex


def read_indexed(
    *,
    index: FileIndex,
    dataset: str,
    train_pos: np.ndarray,
    test_pos: np.ndarray,
    use_all: bool,
    cache_dir: Path,
    skip_bad_images: bool,
    progress: bool,
):
    """x/y for the given index positions: from the cache, else by decoding (all, then cache; or just the subset)."""
    cached = load_cache(cache_dir=cache_dir, dataset=dataset, index=index)
    from_cache = cached is not None
    if cached is None and use_all:
        x, kept, bad = decode_images(
            index=index, positions=np.arange(len(index.names)), progress=progress, skip_bad_images=skip_bad_images
        )
        kept_names = [index.names[i] for i in np.flatnonzero(kept)]
        y = index.labels[kept]
        save_cache(cache_dir=cache_dir, dataset=dataset, index=index, x=x, y=y, kept=kept_names, skipped=bad)
        cached = (x, y, bad)
    if cached is not None:
        x_all, y_all, skipped = cached
        if skipped and from_cache:  # a fresh decode has reported them already
            report_bad(
                [(n, "could not be decoded (remembered from the cache)") for n in skipped],
                skip_bad_images=skip_bad_images,
                where=str(index.root),
            )
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
        x, kept, _ = decode_images(index=index, positions=pos, progress=progress, skip_bad_images=skip_bad_images)
        out += [x, index.labels[pos][kept]]
    return tuple(out)


class _ZipDamaged(Exception):
    pass


def damaged_zip(path: Path, err: Exception) -> DataError:
    """The DataError for a zip file that cannot be opened or read: delete it and download it again."""
    return DataError(
        f"{path} is damaged or truncated ({type(err).__name__}: {err}); "
        "delete it and download it again (load_data(..., download=True) fetches it)."
    )


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
        raise damaged_zip(index.root, e) from e
    prefix = index.zip_prefix
    return (lambda name: zf.read(prefix + name)), zf.close


def _decode_chunk(
    read, zipped: bool, names: list[str], start: int, out: np.ndarray | None, sizes: np.ndarray, bad: list
) -> None:
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
            arr = to_rgb(io.BytesIO(data), name=name)  # as prediction prepares the same file: see images.py
        except ImageError as e:
            bad.append((start + k, name, e.reason.rstrip(".")))
            continue
        except Exception as e:  # noqa: BLE001 - anything else Pillow raises for a broken file
            bad.append((start + k, name, f"{type(e).__name__}: {e}"))
            continue
        sizes[start + k] = arr.shape[:2]
        if out is not None and arr.shape[:2] == out.shape[1:3]:
            out[start + k] = arr


def decode_images(*, index: FileIndex, positions: np.ndarray, progress: bool, skip_bad_images: bool):
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
            _decode_chunk(read, zipped, names[i : i + 1], i, None, sizes, bad)
            if sizes[i].any():
                (h, w), start = (int(v) for v in sizes[i]), i  # decoded again below, into the array
                break
        out = np.zeros((len(names), h, w, 3), dtype=np.uint8)
        chunk = 256
        # PIL releases the GIL while it decodes, so threads overlap the decoding of one chunk with another. Small
        # images leave much of the time in Python (GIL held): on 2 cores one worker beat two (7.0 s vs 8.1 s for
        # 27,500 Tiny ImageNet images), so leave one core to the interpreter's other thread.
        workers = max(1, min(8, (os.cpu_count() or 1) - 1))
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            tqdm(
                total=len(names), desc=f"decoding {len(names)} images", disable=not progress, unit="img", initial=start
            ) as bar,
        ):
            futures = {
                pool.submit(_decode_chunk, read, zipped, names[s : s + chunk], s, out, sizes, bad): min(
                    chunk, len(names) - s
                )
                for s in range(start, len(names), chunk)
            }
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
            raise DataError(
                f"images in {where} differ in size: {names[i]} is {sizes[i][1]}x{sizes[i][0]} "
                f"(width x height) but the others are {expected[1]}x{expected[0]} ({len(odd)} image(s) "
                "differ). Resize them all to one size, or remove the odd ones."
            )
    if bad:
        report_bad([(n, why) for _, n, why in sorted(bad)], skip_bad_images=skip_bad_images, where=where)
    if not ok.all():
        out = np.ascontiguousarray(out[ok])
    return out, ok, [n for _, n, _ in sorted(bad)]


def report_bad(bad: list[tuple[str, str]], *, skip_bad_images: bool, where: str) -> None:
    """Raise a DataError listing the undecodable files, or (skip_bad_images=True) warn once and go on without them."""
    listed = listing([f"{n} ({why})" for n, why in bad])
    if not skip_bad_images:
        raise DataError(
            f"{len(bad)} image(s) in {where} cannot be decoded: {listed}. Delete them, or pass "
            "skip_bad_images=True to skip them."
        )
    warnings.warn(f"skipping {len(bad)} image(s) in {where} that cannot be decoded: {listed}", stacklevel=4)
