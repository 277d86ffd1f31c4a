"""Use a trained model: load model.pt, prepare any image as training did, and name its top classes.

Nothing here imports the training side (engine, train, schedule, optimisers), so a notebook's own-image
prediction and a web app can stand on this module alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.index import IMAGE_EXTENSIONS, is_image, is_junk
from .images import to_rgb
from .validate import unit_triplet, whole


def load_image(image: Any, *, size: int, draft: tuple[int, int] | None = None) -> np.ndarray:
    """Any image (a path, a PIL image or an (H, W[, C]) array; any size or colour mode) as uint8 (size, size, 3).

    images.to_rgb prepares it as training prepares a file (orientation, transparency on white, 16-bit and
    float images rescaled, RGB; ImageError, a ValueError, for what it cannot use); then the largest centred
    square is cut out and resized, so a photo keeps its proportions instead of being squashed. draft: decode a
    large JPEG file at reduced scale first (images.open_image).
    """
    from PIL import Image, ImageOps

    size = whole("size", size, low=1, hint="the model's image_size")
    rgb = to_rgb(image, draft=draft)
    if rgb.shape[:2] == (size, size):
        return rgb  # exactly the pixels training decodes from the same file
    fitted = ImageOps.fit(Image.fromarray(rgb), (size, size), method=Image.Resampling.BICUBIC)
    return np.asarray(fitted, dtype=np.uint8).copy()


def pixel_stats(
    *, mean: Sequence[float], std: Sequence[float], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split's mean and std ([0, 1] units) as float32 (1, 3, 1, 1) tensors of pixel values (0-255)."""
    device = torch.device(device)
    m = torch.tensor([v * 255 for v in unit_triplet("mean", mean)], device=device).view(1, 3, 1, 1)
    s = torch.tensor([v * 255 for v in unit_triplet("std", std, positive=True)], device=device).view(1, 3, 1, 1)
    return m, s


def standardize(x: torch.Tensor, *, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """A batch (N, 3, H, W) of pixel values (uint8 or float), minus the mean, over the std (pixel_stats): float32.

    The one place images are normalised: evaluation and the app (normalize) and training (loaders.DeviceLoader,
    after augmenting) call it, so the model sees bitwise the same inputs wherever an image comes from.
    """
    mean, std = stats
    return (x.float() - mean) / std


def normalize(
    *, images: np.ndarray, mean: Sequence[float], std: Sequence[float], device: str | torch.device = "cpu"
) -> torch.Tensor:
    """uint8 images (N, H, W, 3) as the float (N, 3, H, W) tensor the model takes, with the training split's stats."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3) like ImageData.x_test, got {images.dtype} {images.shape}; "
            "use load_image for files."
        )
    stats = pixel_stats(mean=mean, std=std, device=device)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(stats[0].device).permute(0, 3, 1, 2)
    return standardize(x, stats=stats)


def eval_logits(model: nn.Module, x: torch.Tensor, *, tta: bool) -> torch.Tensor:
    """The float logits every evaluation reports (training's held-out accuracy, notebook 05, the app).

    tta (flip test-time augmentation): the logits of `x` and of its mirror image (left to right), averaged.
    Training flips images at random, so the mirror image is one the model knows.
    """
    return (model(x).float() + model(x.flip(3)).float()) / 2 if tta else model(x).float()


@torch.no_grad()
def predict_logits(
    *, model: nn.Module, images: np.ndarray, meta: dict[str, Any], batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    """Float32 logits (N, classes) of `model` for uint8 images (N, H, W, 3), in fp32, in batches.

    `meta` is model.pt's metadata (load_trained): the training split's mean and std prepare the images, and
    a run trained with tta=True is evaluated with flip TTA, as training measured it, so the accuracy here is
    the one in metrics.json.
    """
    from tqdm.auto import tqdm

    batch_size = whole("batch_size", batch_size, low=1)
    device = next(model.parameters()).device
    tta = bool(meta.get("tta", False))  # model.pt files written before tta was stored were evaluated without it
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in tqdm(range(0, len(images), batch_size), desc="predict", leave=False, disable=not progress):
            x = normalize(images=images[start : start + batch_size], mean=meta["mean"], std=meta["std"], device=device)
            out.append(eval_logits(model, x, tta=tta).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, len(meta.get("classes", ()))), dtype=np.float32)


def top_classes(
    *, model: nn.Module, images: np.ndarray, meta: dict[str, Any], k: int = 5
) -> list[list[tuple[str, float]]]:
    """For each uint8 image (N, H, W, 3): its k most probable classes as (name, probability), most probable first."""
    k = whole("k", k, low=1, high=len(meta["classes"]), hint="a number of classes the model knows")
    return ranked(torch.from_numpy(predict_logits(model=model, images=images, meta=meta)), meta["classes"], k=k)


def ranked(logits: torch.Tensor, classes: Sequence[str], *, k: int) -> list[list[tuple[str, float]]]:
    """For each row of logits (N, classes): its k most probable classes as (name, probability), most probable first."""
    p, idx = logits.float().softmax(1).topk(k, dim=1)
    return [[(classes[int(c)], float(v)) for v, c in zip(row_p, row_i)] for row_p, row_i in zip(p, idx)]


def image_files(images: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files that `images` names: one file, a list of files, or every image file in a folder (sorted)."""
    given = [images] if isinstance(images, (str, Path)) else list(images)
    if not given:
        raise ValueError("images is empty; give an image file, a list of files, or a folder of images.")
    files = []
    for item in map(Path, given):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and not is_junk(p.name) and is_image(p.name))
            if not found:
                raise ValueError(f"the folder {item} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); "
                                 "put your pictures there, or name the files themselves.")  # fmt: skip
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item} does not exist; give an image file, a list of files, or a folder.")
    return files


def predict_images(*, model: nn.Module, meta: dict[str, Any], images, k: int = 5) -> list[dict[str, Any]]:
    """Your own pictures through the model: [{"path", "image" (uint8, the model's size), "top": [{"class", "prob"}]}].

    Every file goes through load_image (orientation, transparency, RGB, centre crop, resize) and the
    training split's statistics stored in model.pt, as evaluation does.
    """
    files = image_files(images)
    pixels = np.stack([load_image(f, size=meta["image_size"]) for f in files])
    tops = top_classes(model=model, images=pixels, meta=meta, k=min(k, len(meta["classes"])))
    return [{"path": str(f), "image": im, "top": [{"class": c, "prob": p} for c, p in top]}
            for f, im, top in zip(files, pixels, tops)]  # fmt: skip
