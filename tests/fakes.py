"""Tiny fake datasets on disk, in the real layouts, for tests (each factory takes well under a second).

Import them in any test as ``from fakes import make_cifar10_batches`` (pytest puts tests/ on sys.path
because tests/ has a conftest.py and no __init__.py). Signatures are stable:

- ``make_cifar10_batches(root, *, n_train_per_class=6, n_test_per_class=2, seed=0) -> Path``
    Writes ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` in the official python-batch
    pickle format (dicts with b"data" (N, 3072) uint8 row-major CHW, b"labels", b"filenames", b"batch_label";
    batches.meta with b"label_names"): 10 classes with CIFAR-10's names, 32x32 images.
    Returns root (pass it as data_dir with dataset="cifar10").
- ``make_imagefolder(root, *, classes=("cat", "dog", "frog"), n_train=8, n_test=4, size=32, seed=0, fmt="png")
  -> Path``
    Writes ``root/train/<class>/<class>_NNN.<fmt>`` (n_train per class) and ``root/test/...`` (n_test per class);
    fmt is "png" (lossless) or "jpg". Returns root (dataset="imagefolder").
- ``make_tinyimagenet(root, *, n_classes=4, n_train_per_class=7, n_val_per_class=3, size=64, seed=0,
  layout="zip", grayscale_every=0) -> Path``
    Writes the official layout ``tiny-imagenet-200/{wnids.txt, words.txt, train/<wnid>/images/<wnid>_N.JPEG,
    train/<wnid>/<wnid>_boxes.txt, val/images/val_N.JPEG, val/val_annotations.txt}`` either as
    ``root/tiny-imagenet-200.zip`` (layout="zip") or as the folder ``root/tiny-imagenet-200/`` (layout="folder").
    words.txt gives several comma-separated names per wnid (first names are unique) plus unrelated wnids, like
    the real one. With grayscale_every=k > 0 every k-th image is saved as a grayscale ("L") JPEG.
    Returns root (dataset="tinyimagenet").

All images are learnable: each class has its own colour and stripe direction, plus noise, so a small model
can tell the classes apart (JPEG keeps colour and stripes). ``class_image(label, rng, size)`` makes one.
``TIN_WNIDS`` and ``TIN_NAMES`` are the wnids and readable first names make_tinyimagenet uses, in label order.
"""

from __future__ import annotations

import colorsys
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_TIN_WORDS = [
    "goldfish, Carassius auratus",
    "European fire salamander, Salamandra salamandra",
    "bullfrog, Rana catesbeiana",
    "tailed frog, bell toad, ribbed toad",
    "American alligator, Alligator mississipiensis",
    "boa constrictor",
    "trilobite",
    "scorpion",
    "black widow, Latrodectus mactans",
    "tarantula",
    "centipede",
    "goose",
]
TIN_WNIDS = tuple(f"n0{1443537 + 1000 * i}" for i in range(len(_TIN_WORDS)))
TIN_NAMES = tuple(w.split(",")[0] for w in _TIN_WORDS)


def class_image(label: int, rng: np.random.Generator, size: int = 32, num_classes: int = 10) -> np.ndarray:
    """One uint8 (size, size, 3) image whose colour and stripe direction depend on the label, plus noise."""
    r, g, b = colorsys.hsv_to_rgb((label % num_classes) / num_classes, 0.8, 0.85)
    base = np.array([r, g, b]) * 255.0
    yy, xx = np.mgrid[0:size, 0:size]
    angle = np.pi * label / max(num_classes, 1)
    stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * (2 * np.pi / 8.0))
    img = base[None, None, :] * (0.75 + 0.25 * stripes[..., None])
    img += rng.normal(0.0, 12.0, size=(size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_cifar10_batches(root: Path, *, n_train_per_class: int = 6, n_test_per_class: int = 2, seed: int = 0) -> Path:
    """Write a tiny fake CIFAR-10 in the official python-batch format under root/cifar-10-batches-py; return root."""
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def make(n_per_class: int) -> tuple[np.ndarray, list[int]]:
        labels = np.repeat(np.arange(10), n_per_class)
        labels = labels[rng.permutation(len(labels))]
        imgs = (
            np.stack([class_image(int(c), rng, 32) for c in labels])
            if len(labels)
            else np.zeros((0, 32, 32, 3), np.uint8)
        )
        return imgs.transpose(0, 3, 1, 2).reshape(len(labels), 3072).copy(), [int(c) for c in labels]

    def dump(name: str, obj: dict) -> None:
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    data, labels = make(n_train_per_class)
    for i, part in enumerate(np.array_split(np.arange(len(labels)), 5), 1):
        dump(
            f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"data": data[part],
                b"labels": [labels[j] for j in part],
                b"filenames": [f"fake_{j}.png".encode() for j in part],
            },
        )
    data, labels = make(n_test_per_class)
    dump(
        "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"data": data,
            b"labels": labels,
            b"filenames": [f"fake_test_{j}.png".encode() for j in range(len(labels))],
        },
    )
    dump(
        "batches.meta",
        {
            b"label_names": [c.encode() for c in CIFAR10_CLASSES],
            b"num_cases_per_batch": max(1, len(labels)),
            b"num_vis": 3072,
        },
    )
    return root


def make_imagefolder(
    root: Path,
    *,
    classes=("cat", "dog", "frog"),
    n_train: int = 8,
    n_test: int = 4,
    size: int = 32,
    seed: int = 0,
    fmt: str = "png",
) -> Path:
    """Write root/train/<class>/*.<fmt> (n_train per class) and root/test/... (n_test per class); return root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    ext = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}[fmt.lower()]
    for split, n in (("train", n_train), ("test", n_test)):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = Image.fromarray(class_image(label, rng, size, num_classes=len(classes)))
                if ext == "jpg":
                    img.save(folder / f"{name}_{i:03d}.jpg", quality=90)
                else:
                    img.save(folder / f"{name}_{i:03d}.png", compress_level=1)
    return root


def make_tinyimagenet(
    root: Path,
    *,
    n_classes: int = 4,
    n_train_per_class: int = 7,
    n_val_per_class: int = 3,
    size: int = 64,
    seed: int = 0,
    layout: str = "zip",
    grayscale_every: int = 0,
) -> Path:
    """Write a tiny Tiny ImageNet in the official layout, as root/tiny-imagenet-200.zip or folder; return root."""
    if layout not in ("zip", "folder"):
        raise ValueError(f"layout={layout!r}; use 'zip' or 'folder'")
    if not 1 <= n_classes <= len(TIN_WNIDS):
        raise ValueError(f"n_classes={n_classes}; use 1..{len(TIN_WNIDS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wnids = TIN_WNIDS[:n_classes]
    files: dict[str, bytes] = {}
    counter = [0]

    def jpeg(label: int) -> bytes:
        img = Image.fromarray(class_image(label, rng, size, num_classes=n_classes))
        counter[0] += 1
        if grayscale_every and counter[0] % grayscale_every == 0:
            img = img.convert("L")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        return buf.getvalue()

    for label, wnid in enumerate(wnids):
        boxes = []
        for i in range(n_train_per_class):
            files[f"train/{wnid}/images/{wnid}_{i}.JPEG"] = jpeg(label)
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t{size - 1}\t{size - 1}")
        files[f"train/{wnid}/{wnid}_boxes.txt"] = ("\n".join(boxes) + "\n").encode()
    val_labels = np.repeat(np.arange(n_classes), n_val_per_class)
    val_labels = val_labels[rng.permutation(len(val_labels))]
    annotations = []
    for k, label in enumerate(val_labels):
        files[f"val/images/val_{k}.JPEG"] = jpeg(int(label))
        annotations.append(f"val_{k}.JPEG\t{wnids[label]}\t1\t2\t{size - 2}\t{size - 3}")
    files["val/val_annotations.txt"] = ("\n".join(annotations) + "\n").encode()
    files["wnids.txt"] = ("\n".join(wnids) + "\n").encode()
    words = ["n00001740\tentity", "n00001930\tphysical entity"]
    words += [f"{w}\t{text}" for w, text in zip(wnids, _TIN_WORDS)]
    words += ["n09999999\tgoldfish, not in this dataset"]  # a name reused outside the dataset must not matter
    files["words.txt"] = ("\n".join(words) + "\n").encode()

    if layout == "zip":
        with zipfile.ZipFile(root / "tiny-imagenet-200.zip", "w", compression=zipfile.ZIP_STORED) as zf:
            for name in sorted(files):
                zf.writestr(f"tiny-imagenet-200/{name}", files[name])
    else:
        for name, data in files.items():
            path = root / "tiny-imagenet-200" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


def make_own_images(folder: Path) -> Path:
    """A folder of pictures as a student has them: a wide photo, a PNG with transparency, a grayscale scan,
    a small palette image, and a text file that is not a picture (skipped when the folder is listed)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (300, 480, 3), dtype=np.uint8)).save(folder / "wide photo.jpg", quality=90)
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[16:48, 16:48] = (200, 30, 30, 255)  # an opaque square on a transparent sheet
    Image.fromarray(rgba, "RGBA").save(folder / "sticker.png")
    Image.fromarray(rng.integers(0, 256, (90, 70), dtype=np.uint8), "L").save(folder / "scan.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).convert("P").save(folder / "tiny.gif")
    (folder / "notes.txt").write_text("not a picture")
    return folder
