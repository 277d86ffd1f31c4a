"""Tests for eva_helpers.data on generated data, plus fast index-level checks on the real data when present."""

import json
import os
import pickle
import shutil
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fakes import TIN_NAMES, TIN_WNIDS, make_cifar10_batches, make_imagefolder, make_tinyimagenet
from PIL import Image

from eva_helpers import data
from eva_helpers.data import (
    DATASETS,
    REGISTRY,
    DataError,
    ImageData,
    augment_defaults,
    balanced_subset,
    channel_stats,
    class_counts,
    decode,
    hold_out,
    imagefolder_index,
    load_data,
    read_data,
    synthetic,
    tinyimagenet_index,
    tinyimagenet_split,
)
from eva_helpers.data.cache import CACHE_FOLDER
from eva_helpers.inference import load_image
from eva_helpers.recipe import check_params, load_recipe


def load(**kw):
    """load_data as a notebook calls it: the parameters checked into a Recipe first."""
    kw.setdefault("progress", False)
    return load_data(load_recipe(**kw))


def no_decode(*args, **kwargs):
    raise AssertionError("decoded although a cache should have been used")


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ----------------------------------------------------------------------------- small helpers


def test_balanced_subset_is_balanced_seeded_and_sorted():
    y = np.repeat(np.arange(4), 25)
    idx = balanced_subset(y=y, n=40, seed=1)
    assert class_counts(y=y[idx], num_classes=4) == [10, 10, 10, 10]
    assert np.all(np.diff(idx) > 0) and idx.dtype == np.int64
    assert np.array_equal(idx, balanced_subset(y=y, n=40, seed=1))
    assert not np.array_equal(idx, balanced_subset(y=y, n=40, seed=2))
    odd = balanced_subset(y=y, n=42, seed=0)
    assert sorted(class_counts(y=y[odd], num_classes=4)) == [10, 10, 11, 11]


def test_balanced_subset_fills_from_larger_classes_when_one_is_small():
    y = np.array([0] * 2 + [1] * 50 + [2] * 50)
    idx = balanced_subset(y=y, n=30, seed=0)
    assert class_counts(y=y[idx], num_classes=3) == [2, 14, 14]
    assert len(balanced_subset(y=y, n=len(y), seed=3)) == len(y)


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_balanced_subset_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n="):
        balanced_subset(y=np.zeros(5, dtype=np.int64), n=n, seed=0)


def test_balanced_subset_n_too_large_names_value_and_size():
    with pytest.raises(ValueError, match=r"n=6 .*5 images"):
        balanced_subset(y=np.zeros(5, dtype=np.int64), n=6, seed=0)


def test_class_counts():
    assert class_counts(y=np.array([0, 2, 2]), num_classes=4) == [1, 0, 2, 0]
    with pytest.raises(ValueError, match="num_classes=2"):
        class_counts(y=np.array([0, 2]), num_classes=2)


def test_channel_stats_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 5, 6, 3), dtype=np.uint8)
    s = channel_stats(x)
    f = x.reshape(-1, 3) / 255.0
    assert s["mean"] == pytest.approx(f.mean(0).tolist(), abs=1e-12)
    assert s["std"] == pytest.approx(f.std(0).tolist(), abs=1e-12)
    assert s["var"] == pytest.approx(f.var(0).tolist(), abs=1e-12)
    assert s["min"] == pytest.approx(f.min(0).tolist()) and s["max"] == pytest.approx(f.max(0).tolist())
    with pytest.raises(ValueError, match="3 channels last"):
        channel_stats(x.transpose(0, 3, 1, 2))


def test_synthetic_is_random_uint8_in_memory_with_train_stats():
    d = synthetic(n_train=12, n_test=5, image_size=16, num_classes=4, name="tinyimagenet", seed=3)
    assert isinstance(d, ImageData) and d.name == "tinyimagenet" and d.source == "synthetic" and d.args == {}
    assert d.test_split == REGISTRY["tinyimagenet"].TEST_SPLIT == "validation"
    assert d.x_train.shape == (12, 16, 16, 3) and d.x_test.shape == (5, 16, 16, 3) and d.image_size == 16
    assert d.x_train.dtype == np.uint8 and d.x_test.dtype == np.uint8
    assert d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64 and d.num_classes == 4
    assert 0 <= d.y_train.min() and d.y_train.max() < 4 and 0 <= d.y_test.min() and d.y_test.max() < 4
    stats = channel_stats(d.x_train)
    assert d.mean == pytest.approx(tuple(stats["mean"]), abs=1e-12)
    assert d.std == pytest.approx(tuple(stats["std"]), abs=1e-12)
    again = synthetic(n_train=12, n_test=5, image_size=16, num_classes=4, name="tinyimagenet", seed=3)
    assert np.array_equal(again.x_train, d.x_train) and np.array_equal(again.y_test, d.y_test)
    assert synthetic(n_train=2).test_split == "test" and synthetic(n_train=2).image_size == 32
    for bad in ({"n_train": 0}, {"image_size": 2.5}, {"num_classes": True}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))}="):
            synthetic(**{"n_train": 2, **bad})
    with pytest.raises(ValueError, match="'mnist'"):
        synthetic(n_train=2, name="mnist")


def test_registry_is_the_single_source_of_datasets():
    assert DATASETS == tuple(REGISTRY) == ("cifar10", "imagefolder", "tinyimagenet")
    for name, module in REGISTRY.items():
        assert isinstance(module.TEST_SPLIT, str) and module.TEST_SPLIT, name
        assert set(module.AUGMENT) == {"pad", "cutout", "rotate", "rgb_shift"}, name
        assert callable(module.read), name
        assert augment_defaults(name) == module.AUGMENT and augment_defaults(name) is not module.AUGMENT
    assert {n: m.TEST_SPLIT for n, m in REGISTRY.items()} == {
        "cifar10": "test",
        "imagefolder": "test",
        "tinyimagenet": "validation",
    }
    assert augment_defaults("tinyimagenet") == {"pad": 8, "cutout": 0, "rotate": 15, "rgb_shift": 20}
    with pytest.raises(ValueError, match=r"'mnist'.*'cifar10', 'imagefolder', 'tinyimagenet'"):
        augment_defaults("mnist")


# ----------------------------------------------------------------------------- argument checks


def test_unknown_dataset_lists_choices(tmp_path):
    with pytest.raises(ValueError, match=r"'mnist'.*'cifar10', 'imagefolder', 'tinyimagenet'"):
        load(dataset="mnist", data_dir=tmp_path)


@pytest.mark.parametrize("kw", [{"train_limit": -1}, {"test_limit": 2.5}, {"seed": -3}, {"split_seed": "one"}])
def test_bad_limits_and_seeds_name_the_value(tmp_path, kw):
    name, value = next(iter(kw.items()))
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        load(dataset="imagefolder", data_dir=tmp_path, **kw)


# ----------------------------------------------------------------------------- cifar10


def test_cifar10_reads_official_batch_format(tmp_path):
    root = make_cifar10_batches(tmp_path, n_train_per_class=3, n_test_per_class=2)
    d = load(dataset="cifar10", data_dir=root, download=False)
    assert isinstance(d, ImageData) and d.name == "cifar10" and d.test_split == "test"
    assert d.classes[0] == "airplane" and d.num_classes == 10 and d.image_size == 32
    assert d.x_train.shape == (30, 32, 32, 3) and d.x_test.shape == (20, 32, 32, 3)
    assert d.x_train.dtype == np.uint8 and d.x_train.flags["C_CONTIGUOUS"] and d.y_train.dtype == np.int64
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    first = raw[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(d.x_train[0], first) and d.y_train[0] == raw[b"labels"][0]
    # data_dir may also be the batches folder itself
    d2 = load(dataset="cifar10", data_dir=root / "cifar-10-batches-py", download=False)
    assert np.array_equal(d2.x_test, d.x_test)


def test_cifar10_missing_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*download=True"):
        load(dataset="cifar10", data_dir=tmp_path / "nothing", download=False)


def test_cifar10_download_uses_official_archive(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kw):
        calls.append((url, md5, filename))
        make_cifar10_batches(Path(download_root), n_train_per_class=1, n_test_per_class=1)

    monkeypatch.setattr(tvu, "download_and_extract_archive", fake_download)
    d = load(dataset="cifar10", data_dir=tmp_path / "new")
    assert calls == [(data.cifar10.URL, "c58f30108f718f92721af3b95e74349a", "cifar-10-python.tar.gz")]
    assert len(d.x_train) == 10


def test_cifar10_incomplete_or_damaged(tmp_path):
    root = make_cifar10_batches(tmp_path)
    folder = root / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load(dataset="cifar10", data_dir=root, download=False)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"data_batch_3.*download=True"):
        load(dataset="cifar10", data_dir=root, download=False)


def test_cifar10_limits_and_train_only_stats(tmp_path):
    root = make_cifar10_batches(tmp_path, n_train_per_class=6)
    d = load(dataset="cifar10", data_dir=root, train_limit=25, test_limit=10, seed=3)
    assert len(d.x_train) == 25 and len(d.x_test) == 10
    assert sorted(class_counts(y=d.y_train, num_classes=10)) == [2] * 5 + [3] * 5
    assert d.mean == pytest.approx(channel_stats(d.x_train)["mean"])
    with pytest.raises(ValueError, match=r"train_limit=61 .*60 images"):
        load(dataset="cifar10", data_dir=root, train_limit=61)


def test_args_rebuild_the_same_data(tmp_path):
    root = make_cifar10_batches(tmp_path / "cifar", n_train_per_class=3, n_test_per_class=2)
    a = load(dataset="cifar10", data_dir=root, train_limit=20, test_limit=10, seed=2, download=False)
    assert a.args == {
        "dataset": "cifar10",
        "data_dir": str(root),
        "train_limit": 20,
        "test_limit": 10,
        "seed": 2,
        "split_seed": 0,
        "download": False,
        "cache_dir": None,
        "skip_bad_images": False,
    }
    folder = make_imagefolder(tmp_path / "folder", n_train=4, n_test=2)
    f = load(dataset="imagefolder", data_dir=folder, cache_dir=tmp_path / "c", train_limit=np.int64(6), seed=1)
    assert f.args["cache_dir"] == str(tmp_path / "c") and type(f.args["train_limit"]) is int
    for d in (a, f):
        args = json.loads(json.dumps(d.args))  # plain JSON values, as a model file stores them
        b = read_data(**args, progress=False)
        assert b.args == d.args and b.classes == d.classes and b.mean == d.mean
        for k in ("x_train", "y_train", "x_test", "y_test"):
            assert np.array_equal(getattr(b, k), getattr(d, k)), k


# ----------------------------------------------------------------------------- imagefolder: reading


def test_imagefolder_reads_pixels_labels_and_sorted_classes(tmp_path):
    root = make_imagefolder(tmp_path / "d", classes=("zebra", "ant", "moth"), n_train=3, n_test=2)
    d = load(dataset="imagefolder", data_dir=root, cache_dir=tmp_path / "c")
    assert d.classes == ["ant", "moth", "zebra"] and d.test_split == "test"
    assert d.x_train.shape == (9, 32, 32, 3) and d.x_test.shape == (6, 32, 32, 3)
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    png = np.asarray(Image.open(root / "train" / "moth" / "moth_001.png"))
    assert np.array_equal(d.x_train[4], png)
    assert d.source == str(root) and "imagefolder" in repr(d)


def test_imagefolder_accepts_one_wrapping_subfolder(tmp_path):
    make_imagefolder(tmp_path / "cifar10-jpeg", n_train=2, n_test=1, fmt="jpg")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    d = load(dataset="imagefolder", data_dir=tmp_path)
    assert len(d.x_train) == 6 and d.source == str(tmp_path / "cifar10-jpeg")


def test_imagefolder_converts_grayscale_palette_and_rgba_to_rgb_as_prediction_does(tmp_path):
    root = make_imagefolder(tmp_path, n_train=2, n_test=1)
    Image.new("L", (32, 32), 77).save(root / "train" / "cat" / "gray.png")
    Image.new("RGBA", (32, 32), (1, 2, 3, 4)).save(root / "train" / "cat" / "rgba.png")
    Image.new("RGB", (32, 32), (9, 8, 7)).convert("P").save(root / "train" / "cat" / "pal.gif")
    turned = np.zeros((32, 32, 3), dtype=np.uint8)
    turned[:8, :8] = 250  # a bright corner, top left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: turn a quarter clockwise to show
    Image.fromarray(turned).save(root / "train" / "cat" / "turned.jpg", quality=95, exif=exif.tobytes())
    d = load(dataset="imagefolder", data_dir=root)
    assert d.x_train.shape == (10, 32, 32, 3)
    names = imagefolder_index(data_dir=root).names
    assert (d.x_train[names.index("train/cat/gray.png")] == 77).all()
    # almost transparent: laid on white (255 - 4/255 of the way to (1, 2, 3)), as load_image does, not (1, 2, 3)
    assert d.x_train[names.index("train/cat/rgba.png")][0, 0].tolist() == [251, 251, 251]
    with Image.open(root / "train" / "cat" / "pal.gif") as gif:  # the colour of the web palette's nearest entry
        assert np.array_equal(d.x_train[names.index("train/cat/pal.gif")], np.asarray(gif.convert("RGB")))
    upright = d.x_train[names.index("train/cat/turned.jpg")]
    assert upright[:8, -8:].min() > 200 and upright[:8, :8].max() < 50  # the corner is now top right
    for name in ("gray.png", "rgba.png", "pal.gif", "turned.jpg"):
        predicted = load_image(root / "train" / "cat" / name, size=32)
        assert np.array_equal(d.x_train[names.index(f"train/cat/{name}")], predicted), name


def test_imagefolder_skips_junk_quietly_and_warns_once_about_other_files(tmp_path, recwarn):
    root = make_imagefolder(tmp_path, n_train=2, n_test=1)
    cat = root / "train" / "cat"
    for junk in (".DS_Store", "Thumbs.db", "desktop.ini", "._cat_000.png"):
        (cat / junk).write_bytes(b"junk")
    (root / "train" / "__MACOSX").mkdir()
    (root / "train" / "__MACOSX" / "x.png").write_bytes(b"junk")
    d = load(dataset="imagefolder", data_dir=root)
    assert len(d.x_train) == 6 and not recwarn.list
    (cat / "notes.txt").write_text("hi")
    (root / "test" / "dog" / "labels.csv").write_text("a,b")
    with pytest.warns(UserWarning, match=r"2 file\(s\).*notes.txt.*labels.csv"):
        d = load(dataset="imagefolder", data_dir=root)
    assert len(d.x_train) == 6


# ----------------------------------------------------------------------------- imagefolder: bad input


def test_missing_and_empty_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope does not exist"):
        load(dataset="imagefolder", data_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty is empty"):
        load(dataset="imagefolder", data_dir=tmp_path / "empty")


def test_wrong_layout_says_expected_and_found(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.zip").write_bytes(b"x")
    with pytest.raises(DataError, match=r"expected train/<class>.*found data.zip, images/, labels/.*Unzip"):
        load(dataset="imagefolder", data_dir=tmp_path)


def test_images_directly_in_train_folder(tmp_path):
    root = make_imagefolder(tmp_path, n_train=1, n_test=1)
    shutil.copy(root / "train" / "cat" / "cat_000.png", root / "train" / "loose.png")
    with pytest.raises(DataError, match=r"loose.png.*<class>"):
        load(dataset="imagefolder", data_dir=root)


def test_empty_class_folder_is_named(tmp_path):
    root = make_imagefolder(tmp_path, n_train=1, n_test=1)
    for f in (root / "test" / "dog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"test/dog has no images"):
        load(dataset="imagefolder", data_dir=root)


def test_train_and_test_classes_differ(tmp_path):
    root = make_imagefolder(tmp_path, n_train=1, n_test=1)
    shutil.rmtree(root / "test" / "frog")
    (root / "test" / "bird").mkdir()
    shutil.copy(root / "test" / "cat" / "cat_000.png", root / "test" / "bird" / "b.png")
    with pytest.raises(DataError, match=r"missing in test/: \['frog'\]; missing in train/: \['bird'\]"):
        load(dataset="imagefolder", data_dir=root)


def test_images_of_different_sizes(tmp_path):
    root = make_imagefolder(tmp_path, n_train=3, n_test=1)
    Image.new("RGB", (40, 30)).save(root / "train" / "dog" / "big.png")
    with pytest.raises(DataError, match=r"train/dog/big.png is 40x30 .*32x32"):
        load(dataset="imagefolder", data_dir=root)


def test_unreadable_images_are_all_listed_or_skipped_with_a_warning(tmp_path):
    root = make_imagefolder(tmp_path, n_train=3, n_test=2)
    (root / "train" / "cat" / "broken.png").write_bytes(b"not an image")
    (root / "test" / "frog" / "cut.png").write_bytes((root / "test" / "frog" / "frog_000.png").read_bytes()[:60])
    with pytest.raises(DataError, match=r"2 image\(s\).*train/cat/broken.png.*test/frog/cut.png.*skip_bad_images=True"):
        load(dataset="imagefolder", data_dir=root)
    assert cache_files(root / CACHE_FOLDER) == []  # nothing cached after a failure
    with pytest.warns(UserWarning, match=r"skipping 2 image\(s\).*broken.png") as record:
        d = load(dataset="imagefolder", data_dir=root, skip_bad_images=True)
    assert len([w for w in record if "broken.png" in str(w.message)]) == 1  # one warning, not one per step
    assert len(d.x_train) == 9 and len(d.x_test) == 6
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # the cache remembers the bad files: the same answer without decoding
    with pytest.raises(DataError, match=r"broken.png.*skip_bad_images=True"):
        load(dataset="imagefolder", data_dir=root)
    with pytest.warns(UserWarning, match="broken.png"):
        d2 = load(dataset="imagefolder", data_dir=root, skip_bad_images=True)
    assert np.array_equal(d2.x_train, d.x_train) and np.array_equal(d2.y_test, d.y_test)


# ----------------------------------------------------------------------------- limits, stats


def test_limits_are_balanced_and_seeded(tmp_path):
    root = make_imagefolder(tmp_path, n_train=8, n_test=4)
    a = load(dataset="imagefolder", data_dir=root, train_limit=9, test_limit=6, seed=1)
    assert class_counts(y=a.y_train, num_classes=3) == [3, 3, 3]
    assert class_counts(y=a.y_test, num_classes=3) == [2, 2, 2]
    b = load(dataset="imagefolder", data_dir=root, train_limit=9, test_limit=6, seed=1)
    c = load(dataset="imagefolder", data_dir=root, train_limit=9, test_limit=6, seed=2)
    assert np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    with pytest.raises(ValueError, match=r"test_limit=13 .*test split \(12 images\)"):
        load(dataset="imagefolder", data_dir=root, test_limit=13)


def test_stats_come_from_the_training_images_used(tmp_path):
    root = make_imagefolder(tmp_path, n_train=4, n_test=2)
    for f in (root / "test").rglob("*.png"):
        Image.new("RGB", (32, 32), (255, 255, 255)).save(f)
    d = load(dataset="imagefolder", data_dir=root)
    train = channel_stats(d.x_train)
    assert d.mean == pytest.approx(tuple(train["mean"])) and d.std == pytest.approx(tuple(train["std"]))
    assert max(d.mean) < 0.9  # the white test images did not leak in
    small = load(dataset="imagefolder", data_dir=root, train_limit=3, seed=5)
    assert small.mean == pytest.approx(tuple(channel_stats(small.x_train)["mean"]))
    assert small.mean != pytest.approx(d.mean)


# ----------------------------------------------------------------------------- cache


def test_imagefolder_cache_is_used_and_invalidated_by_changes(tmp_path, monkeypatch):
    root = make_imagefolder(tmp_path / "d", n_train=4, n_test=2)
    cache = tmp_path / "cache"
    first = load(dataset="imagefolder", data_dir=root, cache_dir=cache)
    files = cache_files(cache)
    assert [f for f in files if f.endswith(".npy")] and not [f for f in files if f.endswith(".tmp")]
    for f in cache.glob("*.npy"):
        np.load(f, allow_pickle=False)  # plain arrays, nothing pickled
    monkeypatch.setattr(decode, "decode_images", no_decode)
    again = load(dataset="imagefolder", data_dir=root, cache_dir=cache)
    assert np.array_equal(again.x_train, first.x_train) and np.array_equal(again.y_test, first.y_test)
    sub = load(dataset="imagefolder", data_dir=root, cache_dir=cache, train_limit=6, seed=4)  # limits from cache
    assert len(sub.x_train) == 6
    # a changed source never uses the stale cache
    img = root / "train" / "cat" / "cat_000.png"
    Image.new("RGB", (32, 32), (0, 0, 0)).save(img)
    os.utime(img, ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded"):
        load(dataset="imagefolder", data_dir=root, cache_dir=cache)


@pytest.mark.parametrize("layout", ["imagefolder", "zip", "folder"])  # folder and zip: Tiny ImageNet
def test_a_cache_of_another_cache_version_is_decoded_again_quietly_and_replaced(tmp_path, monkeypatch, layout):
    from eva_helpers.data import cache as cache_lib

    if layout == "imagefolder":
        index = imagefolder_index(data_dir=make_imagefolder(tmp_path / "d", n_train=2, n_test=1))
    else:
        root = make_tinyimagenet(tmp_path / "t", n_classes=2, n_train_per_class=2, n_val_per_class=1, layout=layout)
        index = tinyimagenet_index(data_dir=root)
    every = np.arange(len(index.names))

    def read():
        return decode.read_indexed(index=index, dataset=layout, train_pos=every, test_pos=every[:1], use_all=True,
                                   cache_dir=tmp_path / "c", skip_bad_images=False, progress=False)  # fmt: skip

    first = read()
    files = cache_files(tmp_path / "c")
    real = decode.decode_images
    monkeypatch.setattr(decode, "decode_images", no_decode)
    assert np.array_equal(read()[0], first[0])  # this version's cache is used
    monkeypatch.setattr(cache_lib, "CACHE_VERSION", cache_lib.CACHE_VERSION + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an upgrade is no damage: no warning
        with pytest.raises(AssertionError, match="decoded"):
            read()
        monkeypatch.setattr(decode, "decode_images", real)
        assert np.array_equal(read()[0], first[0])
    assert cache_files(tmp_path / "c") == files  # replaced in place, not kept beside the new one
    assert json.loads(next((tmp_path / "c").glob("*.json")).read_text())["version"] == cache_lib.CACHE_VERSION
    monkeypatch.setattr(decode, "decode_images", no_decode)
    assert np.array_equal(read()[1], first[1])  # the new version's cache is used in turn


def test_subset_without_cache_decodes_only_the_subset_and_writes_no_cache(tmp_path, monkeypatch):
    root = make_imagefolder(tmp_path / "d", n_train=8, n_test=4)
    cache = tmp_path / "cache"
    decoded = []
    real = decode.decode_images

    def counting(**kw):
        decoded.append(len(kw["positions"]))
        return real(**kw)

    monkeypatch.setattr(decode, "decode_images", counting)
    a = load(dataset="imagefolder", data_dir=root, cache_dir=cache, train_limit=6, test_limit=3, seed=7)
    assert decoded == [6, 3] and cache_files(cache) == []
    full = load(dataset="imagefolder", data_dir=root, cache_dir=cache)
    b = load(dataset="imagefolder", data_dir=root, cache_dir=cache, train_limit=6, test_limit=3, seed=7)
    assert decoded == [6, 3, 36]  # the second subset came from the cache, and equals the decoded one
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert len(full.x_train) == 24


def test_cache_goes_beside_data_or_to_home_when_data_is_read_only(tmp_path, monkeypatch):
    root = make_imagefolder(tmp_path / "d", n_train=2, n_test=1)
    load(dataset="imagefolder", data_dir=root)
    assert any(f.endswith(".x.npy") for f in cache_files(root / CACHE_FOLDER))
    ro = make_imagefolder(tmp_path / "ro", n_train=2, n_test=1)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        load(dataset="imagefolder", data_dir=ro)
    finally:
        ro.chmod(0o755)
    assert not (ro / CACHE_FOLDER).exists()
    assert any(f.endswith(".x.npy") for f in cache_files(tmp_path / "home" / ".cache" / "eva_helpers"))


def test_damaged_cache_is_ignored_with_a_warning(tmp_path):
    root = make_imagefolder(tmp_path / "d", n_train=2, n_test=1)
    cache = tmp_path / "c"
    first = load(dataset="imagefolder", data_dir=root, cache_dir=cache)
    next(cache.glob("*.x.npy")).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="decoding again"):
        again = load(dataset="imagefolder", data_dir=root, cache_dir=cache)
    assert np.array_equal(again.x_train, first.x_train)


# ----------------------------------------------------------------------------- tinyimagenet


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_tinyimagenet_reads_both_layouts(tmp_path, layout):
    root = make_tinyimagenet(
        tmp_path, n_classes=3, n_train_per_class=7, n_val_per_class=3, layout=layout, grayscale_every=4
    )
    d = load(dataset="tinyimagenet", data_dir=root, download=False)
    assert d.classes == list(TIN_NAMES[:3]) and d.test_split == "validation" and d.image_size == 64
    assert class_counts(y=d.y_train, num_classes=3) == [7, 7, 7]
    assert class_counts(y=d.y_test, num_classes=3) == [3, 3, 3]
    assert d.x_train.shape == (21, 64, 64, 3) and d.x_train.flags["C_CONTIGUOUS"]
    # the extracted folder itself, or the zip file itself, work as data_dir too
    inner = root / ("tiny-imagenet-200.zip" if layout == "zip" else "tiny-imagenet-200")
    d2 = load(dataset="tinyimagenet", data_dir=inner, download=False)
    assert np.array_equal(d2.x_test, d.x_test)


def test_tinyimagenet_index_labels_val_from_annotations(tmp_path):
    root = make_tinyimagenet(tmp_path, n_classes=4, n_train_per_class=2, n_val_per_class=2, layout="folder")
    index = tinyimagenet_index(data_dir=root)
    assert index.wnids == list(TIN_WNIDS[:4]) and len(index.names) == 16
    assert not any(n.endswith(".txt") for n in index.names)
    ann = (root / "tiny-imagenet-200" / "val" / "val_annotations.txt").read_text().splitlines()
    for line in ann:
        file, wnid = line.split("\t")[:2]
        assert index.labels[index.names.index(f"val/images/{file}")] == TIN_WNIDS.index(wnid)


def test_tinyimagenet_duplicate_first_names_are_made_unique(tmp_path):
    root = make_tinyimagenet(tmp_path, n_classes=3, n_train_per_class=1, n_val_per_class=1, layout="folder")
    words = root / "tiny-imagenet-200" / "words.txt"
    words.write_text(words.read_text().replace("bullfrog,", "goldfish,"))
    index = tinyimagenet_index(data_dir=root)
    assert index.classes == [f"goldfish ({TIN_WNIDS[0]})", "European fire salamander", f"goldfish ({TIN_WNIDS[2]})"]


def test_tinyimagenet_split_is_per_class_saved_and_reused(tmp_path):
    root = make_tinyimagenet(tmp_path, n_classes=4, n_train_per_class=7, n_val_per_class=3)
    index = tinyimagenet_index(data_dir=root)
    cache = tmp_path / "cache"
    tr, va = tinyimagenet_split(index=index, split_seed=0, cache_dir=cache)
    assert class_counts(y=index.labels[tr], num_classes=4) == [7] * 4 and len(va) == 12
    assert not set(tr) & set(va)
    saved = json.loads((cache / "tinyimagenet-split-seed0.json").read_text())
    assert sorted(saved["train"]) == sorted(index.names[i] for i in tr)
    tr2, _ = tinyimagenet_split(index=index, split_seed=0, cache_dir=cache)
    assert np.array_equal(tr, tr2)
    tr3, _ = tinyimagenet_split(index=index, split_seed=1, cache_dir=cache)
    assert not np.array_equal(tr, tr3)
    # the saved file is what is used: swap one train and one validation member in it
    saved["train"][0], saved["validation"][0] = saved["validation"][0], saved["train"][0]
    (cache / "tinyimagenet-split-seed0.json").write_text(json.dumps(saved))
    tr4, _ = tinyimagenet_split(index=index, split_seed=0, cache_dir=cache)
    assert set(index.names[i] for i in tr4) == set(saved["train"])


def test_tinyimagenet_saved_split_that_does_not_match_the_files(tmp_path):
    root = make_tinyimagenet(tmp_path / "a", n_classes=2, n_train_per_class=3, n_val_per_class=1)
    other = make_tinyimagenet(tmp_path / "b", n_classes=3, n_train_per_class=3, n_val_per_class=1)
    cache = tmp_path / "cache"
    load(dataset="tinyimagenet", data_dir=root, cache_dir=cache)
    with pytest.raises(DataError, match=r"tinyimagenet-split-seed0.json does not match.*Delete"):
        load(dataset="tinyimagenet", data_dir=other, cache_dir=cache)


def test_tinyimagenet_cache_survives_a_new_split_seed(tmp_path, monkeypatch):
    root = make_tinyimagenet(tmp_path, n_classes=2, n_train_per_class=7, n_val_per_class=3)
    a = load(dataset="tinyimagenet", data_dir=root)
    assert any(f.endswith(".x.npy") for f in cache_files(root / CACHE_FOLDER))
    monkeypatch.setattr(decode, "decode_images", no_decode)
    b = load(dataset="tinyimagenet", data_dir=root)
    c = load(dataset="tinyimagenet", data_dir=root, split_seed=5)
    assert np.array_equal(a.x_train, b.x_train) and a.mean == b.mean
    assert len(c.x_train) == len(a.x_train) and not np.array_equal(c.x_train, a.x_train)


def test_tinyimagenet_missing_without_and_with_download(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"tiny-imagenet-200.zip.*download=True"):
        load(dataset="tinyimagenet", data_dir=tmp_path / "none", download=False)
    import torchvision.datasets.utils as tvu

    calls = []

    def fake_download(url, root, filename=None, md5=None, **kw):
        calls.append((url, filename, md5))
        make_tinyimagenet(Path(root), n_classes=2, n_train_per_class=3, n_val_per_class=1)

    monkeypatch.setattr(tvu, "download_url", fake_download)
    d = load(dataset="tinyimagenet", data_dir=tmp_path / "dl")
    assert calls == [(data.tinyimagenet.URL, "tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de")]
    assert d.num_classes == 2


def _rezip(root: Path, drop: str = "", add: dict | None = None) -> Path:
    """Rewrite root/tiny-imagenet-200.zip without member `drop` and with extra members."""
    path = root / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members = {n: b for n, b in members.items() if not n.endswith(drop)} if drop else members
    members.update(add or {})
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return path


def test_tinyimagenet_without_val_annotations(tmp_path):
    root = make_tinyimagenet(tmp_path / "z", n_classes=2, n_train_per_class=2, n_val_per_class=1)
    _rezip(root, drop="val/val_annotations.txt")
    with pytest.raises(DataError, match=r"tiny-imagenet-200.zip.*val_annotations.txt.*download"):
        load(dataset="tinyimagenet", data_dir=root)
    folder = make_tinyimagenet(tmp_path / "f", n_classes=2, n_train_per_class=2, n_val_per_class=1, layout="folder")
    (folder / "tiny-imagenet-200" / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match=r"f/tiny-imagenet-200 has no val/val_annotations.txt"):
        load(dataset="tinyimagenet", data_dir=folder)


def test_tinyimagenet_wnid_without_images(tmp_path):
    root = make_tinyimagenet(tmp_path, n_classes=2, n_train_per_class=2, n_val_per_class=1)
    _rezip(
        root,
        drop="wnids.txt",
        add={"tiny-imagenet-200/wnids.txt": b"\n".join(w.encode() for w in (*TIN_WNIDS[:2], "n99999999"))},
    )
    with pytest.raises(DataError, match=r"n99999999.*wnids.txt"):
        load(dataset="tinyimagenet", data_dir=root)


def test_tinyimagenet_truncated_zip(tmp_path):
    root = make_tinyimagenet(tmp_path, n_classes=2, n_train_per_class=3, n_val_per_class=1)
    path = root / "tiny-imagenet-200.zip"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"tiny-imagenet-200.zip is damaged.*delete it and download it again"):
        load(dataset="tinyimagenet", data_dir=root)


def test_tinyimagenet_corrupt_member_in_zip(tmp_path):
    root = make_tinyimagenet(tmp_path, n_classes=2, n_train_per_class=3, n_val_per_class=1)
    path = root / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(path) as zf:
        jpeg = zf.read(f"tiny-imagenet-200/train/{TIN_WNIDS[1]}/images/{TIN_WNIDS[1]}_2.JPEG")
    raw = bytearray(path.read_bytes())
    chunk = jpeg[-300:-260]  # entropy-coded noise: unique to this member (headers repeat across members)
    assert raw.count(chunk) == 1
    at = raw.find(chunk) + 10
    raw[at : at + 8] = bytes(8 * [0x55])  # still inside the member: the CRC check fails on reading
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"damaged.*{TIN_WNIDS[1]}_2.JPEG.*delete it and download it again"):
        load(dataset="tinyimagenet", data_dir=root)


def test_tinyimagenet_undecodable_image(tmp_path):
    root = make_tinyimagenet(tmp_path, n_classes=2, n_train_per_class=3, n_val_per_class=1)
    name = f"tiny-imagenet-200/train/{TIN_WNIDS[0]}/images/{TIN_WNIDS[0]}_1.JPEG"
    _rezip(root, drop=name, add={name: b"\xff\xd8 not really a jpeg"})
    with pytest.raises(DataError, match=rf"1 image\(s\).*{TIN_WNIDS[0]}_1.JPEG.*skip_bad_images=True"):
        load(dataset="tinyimagenet", data_dir=root)
    with pytest.warns(UserWarning, match="_1.JPEG"):
        d = load(dataset="tinyimagenet", data_dir=root, skip_bad_images=True)
    assert len(d.x_train) + len(d.x_test) == 7


# ----------------------------------------------------------------------------- real data (skips when absent)


@pytest.fixture(scope="module")
def real_tin_index(shared_data):
    path = shared_data / "tiny-imagenet-200.zip"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return tinyimagenet_index(data_dir=shared_data, download=False)


def test_real_tinyimagenet_index(real_tin_index):
    index = real_tin_index
    assert len(index.names) == 110_000 and len(index.classes) == 200
    assert len(set(index.classes)) == 200 and not any(c.startswith("n0") for c in index.classes)
    assert class_counts(y=index.labels, num_classes=200) == [550] * 200
    assert sum(n.startswith("val/images/") for n in index.names) == 10_000


def test_real_tinyimagenet_split(real_tin_index, tmp_path):
    index = real_tin_index
    tr, va = tinyimagenet_split(index=index, split_seed=0, cache_dir=tmp_path)
    assert len(tr) == 77_000 and len(va) == 33_000 and not np.intersect1d(tr, va).size
    assert class_counts(y=index.labels[tr], num_classes=200) == [385] * 200
    assert class_counts(y=index.labels[va], num_classes=200) == [165] * 200
    (tmp_path / "tinyimagenet-split-seed0.json").unlink()  # recomputed from scratch: the same split
    tr_again, _ = tinyimagenet_split(index=index, split_seed=0, cache_dir=tmp_path)
    tr_other, _ = tinyimagenet_split(index=index, split_seed=1, cache_dir=tmp_path)
    assert np.array_equal(tr, tr_again) and not np.array_equal(tr, tr_other)


def test_real_cifar10_jpeg_subset_as_imagefolder(shared_data, tmp_path):
    with zipfile.ZipFile(shared_data / "cifar10-jpeg.zip") as zf:
        names = [
            n
            for n in zf.namelist()
            if n.endswith(".jpg") and int(n.rsplit("/", 1)[1][:4]) < (20 if "/train/" in n else 10)
        ]
        zf.extractall(tmp_path / "data", members=names)
    assert len(names) == 300
    d = load(dataset="imagefolder", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert d.classes[0] == "airplane" and d.classes[-1] == "truck" and d.num_classes == 10
    assert d.x_train.shape == (200, 32, 32, 3) and d.x_test.shape == (100, 32, 32, 3)
    assert class_counts(y=d.y_train, num_classes=10) == [20] * 10
    assert 0.3 < d.mean[0] < 0.7 and 0.1 < d.std[0] < 0.4


def test_a_failed_download_names_the_url_and_where_to_put_the_file_and_leaves_nothing_half_written(
    tmp_path, monkeypatch
):
    import urllib.error

    import torchvision.datasets.utils as tvu

    def offline(url, download_root, filename, md5):
        (Path(download_root) / filename).write_bytes(b"half an archive")
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    with pytest.raises(ConnectionError, match=r"cifar-10-python.tar.gz.*Name or service not known.*put it at .*md5"):
        load(dataset="cifar10", data_dir=tmp_path / "data", download=True)
    assert not (tmp_path / "data" / "cifar-10-python.tar.gz").exists()


def test_a_models_data_is_rebuilt_from_its_meta_or_from_another_copy(tmp_path):
    from eva_helpers.data import load_model_data

    root = make_imagefolder(tmp_path / "here", n_train=3, n_test=2)
    trained = load(dataset="imagefolder", data_dir=root, cache_dir=tmp_path / "c")
    meta = {"data": trained.args, "classes": trained.classes}
    again = load_model_data(meta=meta, progress=False)
    assert np.array_equal(again.x_test, trained.x_test) and again.source == str(root)
    moved = tmp_path / "moved"
    shutil.move(str(root), moved)
    with pytest.raises(FileNotFoundError, match="not on this machine.*data_dir"):
        load_model_data(meta=meta, progress=False)
    there = load_model_data(meta=meta, data_dir=moved, test_limit=3, progress=False)
    assert there.source == str(moved) and len(there.y_test) == 3
    other = make_imagefolder(tmp_path / "other", classes=("x", "y"), n_train=2, n_test=1)
    with pytest.raises(DataError, match="not the model's"):
        load_model_data(meta=meta, data_dir=other, progress=False)


def test_no_data_dir_means_the_projects_data_folder(tmp_path, monkeypatch):
    assert check_params({"data_dir": None}).data.data_dir is None  # resolved by read_data, not by the recipe
    root = make_imagefolder(tmp_path / "data", n_train=2, n_test=1)
    monkeypatch.setattr(data, "project_root", lambda: tmp_path)
    got = load(dataset="imagefolder", data_dir=None, cache_dir=tmp_path / "c")
    assert got.source == str(root) and got.args["data_dir"] == str(root)
    with pytest.raises(ValueError, match="empty"):
        load(dataset="imagefolder", data_dir="")
    with pytest.raises(ValueError, match="empty"):
        read_data(**{**got.args, "data_dir": ""}, progress=False)


def test_hold_out_scores_on_training_images_never_trained_on_and_recomputes_the_stats():
    data = synthetic(n_train=300, n_test=50, num_classes=10, seed=0)
    data.x_train[:, 0, 0, 0] = np.arange(300) % 256  # a fingerprint per image, to follow each one
    data.x_train[:, 0, 0, 1] = np.arange(300) // 256
    held = hold_out(data, n=100, seed=3)
    ids = lambda x: set((x[:, 0, 0, 0].astype(int) + 256 * x[:, 0, 0, 1].astype(int)).tolist())  # noqa: E731
    assert ids(held.x_train).isdisjoint(ids(held.x_test))  # never trained on what it is scored on
    assert ids(held.x_train) | ids(held.x_test) == set(range(300))  # from the training split only
    assert len(held.y_test) == 100 and held.test_split == "held-out training images"
    counts = np.bincount(held.y_test, minlength=10)
    assert counts.max() - counts.min() <= 1 or counts.min() == np.bincount(data.y_train, minlength=10).min()
    assert held.mean == pytest.approx(tuple(held.x_train.reshape(-1, 3).mean(0) / 255), abs=1e-9)
    assert held.mean != data.mean  # the stats of the images left for training, not of all of them
    again = hold_out(data, n=100, seed=3)
    assert np.array_equal(again.x_test, held.x_test)  # seeded


def test_hold_out_keeps_a_seeded_choice_of_classes_relabelled_and_limits_the_training_images():
    data = synthetic(n_train=2000, n_test=10, num_classes=50, seed=1)
    data.y_train[:] = np.arange(2000) % 50  # 40 of each class
    small = hold_out(data, n=40, seed=0, classes=5, train_images=100)
    assert small.num_classes == 5 and set(small.y_train) == set(small.y_test) == set(range(5))
    assert len(small.y_train) == 100 and np.bincount(small.y_train).tolist() == [20] * 5
    kept = [data.classes.index(c) for c in small.classes]
    for x, y in zip(small.x_test, small.y_test, strict=True):  # each image keeps its class, under the new label
        assert any(np.array_equal(x, o) for o in data.x_train[data.y_train == kept[y]])
    with pytest.raises(ValueError, match="leaves none to train on"):
        hold_out(data, n=2000, seed=0)
    with pytest.raises(ValueError, match="classes=60"):
        hold_out(data, n=10, seed=0, classes=60)
