"""Files that survive a crash: atomic writes, JSON and torch save and load, and the RNG states a run resumes from."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch


def project_root() -> Path:
    """The checkout this package sits in (the folder holding notebooks/), or the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "notebooks").is_dir() else Path.cwd()


def write_atomic(
    *, path: str | Path, data: bytes | None = None, write: Callable[[BinaryIO], Any] | None = None
) -> Path:
    """Write `data` (or stream it with `write(file)`) to a temp file, fsync, rename: readers see old or new only."""
    if (data is None) == (write is None):
        raise TypeError("write_atomic takes exactly one of data= and write=")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data) if write is None else write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(
                e.errno,
                f"no space left on the device while writing {path}; the previous file there is unchanged. "
                f"Free some space or choose another folder.",
            ) from e
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_torch(*, obj: Any, path: str | Path) -> Path:
    """torch.save `obj` atomically (plain tensors, numbers, strings, lists and dicts only)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_atomic(path=path, data=buf.getvalue())


def load_torch(*, path: str | Path, map_location="cpu") -> Any:
    """Load a file written by save_torch with weights_only=True (no pickled objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; run notebook 04 (or eva_helpers.train) with this out_dir first."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path} cannot be read as a checkpoint ({e}); delete it and train again.") from e


def save_json(*, obj: Any, path: str | Path) -> Path:
    """Write JSON atomically, indented for people."""
    return write_atomic(path=path, data=(json.dumps(obj, indent=2) + "\n").encode())


def rng_state() -> dict[str, Any]:
    """The host RNG states a run depends on, as plain CPU tensors and lists (loads with weights_only=True).

    No CUDA generator state: nothing here draws from it (weights are initialised on the CPU and every
    augmentation draw comes from an explicit per-epoch generator), and one state per visible GPU
    would not restore on a machine with fewer GPUs.
    """
    np_state = np.random.get_state()
    state = {
        "python": _to_plain(random.getstate()),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured, from CPU tensors whatever device they were loaded onto."""
    random.setstate(_from_plain(state["python"]))
    n = state["numpy"]
    key = n["key"].cpu().numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    # a "cuda" entry (checkpoints of earlier versions) is ignored: see rng_state


def _to_plain(x):
    return [_to_plain(v) for v in x] if isinstance(x, tuple) else x


def _from_plain(x):
    return tuple(_from_plain(v) for v in x) if isinstance(x, list) else x
