"""Atomic writes keep the last good file; RNG states round-trip through weights_only loading."""

import errno
import os
import random

import numpy as np
import pytest
import torch

from eva_helpers import files as ck


def test_save_and_load_round_trip_with_weights_only(tmp_path):
    obj = {"model": {"w": torch.arange(6.0)}, "epoch": 3, "history": [{"a": 1.5}], "name": "x", "none": None}
    path = ck.save_torch(obj=obj, path=tmp_path / "sub" / "c.pt")
    got = ck.load_torch(path=path)
    assert torch.equal(got["model"]["w"], obj["model"]["w"]) and got["history"] == obj["history"]
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temporary files left


class Thing:
    """Any pickled class: weights_only loading must refuse it."""


def test_pickled_objects_are_refused_on_load(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"thing": Thing()}, path)
    with pytest.raises(ValueError, match="cannot be read as a checkpoint"):
        ck.load_torch(path=path)


def test_missing_and_truncated_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run notebook 04"):
        ck.load_torch(path=tmp_path / "nope.pt")
    good = ck.save_torch(obj={"w": torch.ones(1000)}, path=tmp_path / "m.pt")
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="delete it and train again"):
        ck.load_torch(path=good)


def test_full_disk_keeps_the_old_file_and_says_so(tmp_path, monkeypatch):
    path = ck.save_json(obj={"old": True}, path=tmp_path / "metrics.json")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="no space left on the device while writing .*metrics.json") as e:
        ck.save_json(obj={"old": False}, path=path)
    assert e.value.errno == errno.ENOSPC
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == '{"old":true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_write_into_dev_full_fails_cleanly(tmp_path, monkeypatch):
    # /dev/full is a real device that answers every write with ENOSPC
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: real_fdopen(os.open("/dev/full", os.O_WRONLY), mode))
    with pytest.raises(OSError, match="no space left"):
        ck.write_atomic(path=tmp_path / "x.bin", data=b"x" * 100_000)
    assert not (tmp_path / "x.bin").exists()


def test_rng_state_round_trips_through_a_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ck.save_torch(obj={"rng": ck.rng_state()}, path=tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ck.set_rng_state(ck.load_torch(path=tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
