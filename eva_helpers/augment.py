"""Training augmentation: albumentations pipelines (the per-image reference) and BatchAugment (the same, batched)."""

from __future__ import annotations

import math
import os
import random
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .data import augment_defaults
from .validate import flag, real, unit_triplet, whole

if TYPE_CHECKING:  # albumentations is imported lazily: see _albumentations()
    import albumentations as A

# Why reflect padding: David Page's ResNet-9 (and airbench after it) pad CIFAR-10 with
# np.pad(mode="reflect"), which mirrors about the edge pixel without repeating it. That is OpenCV's
# BORDER_REFLECT_101 and torch's F.pad(mode="reflect"); grid_sample(padding_mode="reflection",
# align_corners=True) reflects about the edge pixel centres too. Reflection keeps crops free of
# black bars (a constant border is a shortcut feature the net can learn), and using the same mode
# for rotation keeps the corners of rotated images filled the same way in both implementations.
BORDER_MODE_NAME = "reflect_101"


def _border_mode() -> int:
    """OpenCV's code for the border mode above (cv2 is imported only with albumentations)."""
    import cv2

    return cv2.BORDER_REFLECT_101


def _albumentations():
    """Import albumentations without its update check, which goes to the network on import."""
    # albumentations 2.0 asks PyPI for a newer version at import unless this variable is set;
    # setdefault leaves a user's explicit choice alone.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


# --------------------------------------------------------------------------- validation


def _check_knobs(*, pad, flip, cutout, rotate, rgb_shift) -> dict:
    off = "0 turns it off"
    return {
        "pad": whole("pad", pad, low=0, hint=f"pixels; {off}"),
        "flip": flag("flip", flip),
        "cutout": whole("cutout", cutout, low=0, hint=f"pixels; {off}"),
        "rotate": _number("rotate", rotate, high=180, hint=f"degrees; {off}"),
        "rgb_shift": _number("rgb_shift", rgb_shift, high=255, hint=f"0..255 units; {off}"),
    }


def _number(name: str, value, *, high: float, hint: str) -> float | int:
    """A knob that may be an int or a float; kept as given (an int stays an int in metrics.json)."""
    checked = real(name, value, low=0, high=high, hint=hint)
    return value if isinstance(value, Integral) else checked


def _check_size(*, pad: int, cutout: int, height: int, width: int) -> None:
    side = min(height, width)
    if pad >= side:
        raise ValueError(f"pad={pad} must be smaller than the image side {side} for reflect padding; lower pad.")
    if cutout > side:
        raise ValueError(f"cutout={cutout} is larger than the image side {side}; lower cutout.")


def _cutout_fill(mean) -> tuple[int, int, int]:
    """The dataset mean as whole 0..255 pixel values (rounded half up), used by both implementations."""
    # Rounded here on purpose: albumentations casts a float fill to uint8 by truncation
    # (122.96 -> 122), so it is handed integers and both paths fill with the same values.
    return tuple(int(math.floor(m * 255.0 + 0.5)) for m in mean)  # type: ignore[return-value]


def resolve_augment(*, dataset: str, pad, flip, cutout, rotate, rgb_shift) -> dict:
    """Fill augmentation knobs left as None with the dataset's defaults (its module's AUGMENT) and check them.

    run_setup.augmentation(recipe, data) calls it with a recipe's values.
    """
    defaults = augment_defaults(dataset)
    given = {"pad": pad, "cutout": cutout, "rotate": rotate, "rgb_shift": rgb_shift}
    knobs = {k: defaults[k] if v is None else v for k, v in given.items()}
    return _check_knobs(flip=flip, **knobs)


# --------------------------------------------------------------------------- albumentations (reference)


def _albumentations_step_list(*, mean, pad, flip, cutout, rotate, rgb_shift, image_size) -> list:
    """[(display name, [transforms])] for the enabled train steps, in pipeline order."""
    A = _albumentations()
    knobs = _check_knobs(pad=pad, flip=flip, cutout=cutout, rotate=rotate, rgb_shift=rgb_shift)
    size = whole("image_size", image_size, low=1)
    mean = unit_triplet("mean", mean)
    _check_size(pad=knobs["pad"], cutout=knobs["cutout"], height=size, width=size)
    border = _border_mode()
    steps = []
    if knobs["pad"]:
        p = knobs["pad"]
        steps.append(
            (
                "pad + random crop",
                [
                    A.PadIfNeeded(min_height=size + 2 * p, min_width=size + 2 * p, border_mode=border),
                    A.RandomCrop(height=size, width=size),
                ],
            )
        )
    if knobs["flip"]:
        steps.append(("horizontal flip", [A.HorizontalFlip(p=0.5)]))
    if knobs["rotate"]:
        r = float(knobs["rotate"])
        steps.append((f"rotate ±{knobs['rotate']}°", [A.Rotate(limit=(-r, r), border_mode=border, p=0.5)]))
    if knobs["rgb_shift"]:
        # Given as a fraction of 255: RGBShift reads limits <= 1 as fractions and larger ones as
        # 0..255 units, so rgb_shift=1 passed raw would shift by up to 255, not 1.
        s = float(knobs["rgb_shift"]) / 255.0
        steps.append(
            (
                f"RGB shift ±{knobs['rgb_shift']}",
                [A.RGBShift(r_shift_limit=(-s, s), g_shift_limit=(-s, s), b_shift_limit=(-s, s), p=0.5)],
            )
        )
    if knobs["cutout"]:
        c = knobs["cutout"]
        steps.append(
            (
                f"cutout {c}x{c}",
                [
                    A.CoarseDropout(
                        num_holes_range=(1, 1),
                        hole_height_range=(c, c),
                        hole_width_range=(c, c),
                        fill=_cutout_fill(mean),
                        p=1.0,
                    )
                ],
            )
        )
    return steps


def albumentations_steps(*, mean, pad, flip, cutout, rotate, rgb_shift, image_size) -> dict:
    """Ordered {display name: transform} of the enabled train steps, each usable alone on an HxWx3 uint8 image."""
    A = _albumentations()
    steps = _albumentations_step_list(
        mean=mean, pad=pad, flip=flip, cutout=cutout, rotate=rotate, rgb_shift=rgb_shift, image_size=image_size
    )
    return {name: ts[0] if len(ts) == 1 else A.Compose(ts) for name, ts in steps}


def albumentations_train(
    *, mean, std, pad, flip, cutout, rotate, rgb_shift, image_size, normalize: bool = True
) -> A.Compose:
    """The per-image train pipeline: the enabled steps, then Normalize and ToTensorV2 (uint8 out if not normalize)."""
    A = _albumentations()
    from albumentations.pytorch import ToTensorV2

    steps = _albumentations_step_list(
        mean=mean, pad=pad, flip=flip, cutout=cutout, rotate=rotate, rgb_shift=rgb_shift, image_size=image_size
    )
    flat = [t for _, ts in steps for t in ts]
    if not normalize:
        return A.Compose(flat)
    std = unit_triplet("std", std, positive=True)
    return A.Compose(
        [*flat, A.Normalize(mean=unit_triplet("mean", mean), std=std, max_pixel_value=255.0), ToTensorV2()]
    )


def albumentations_eval(*, mean, std) -> A.Compose:
    """The per-image eval pipeline: Normalize and ToTensorV2."""
    A = _albumentations()
    from albumentations.pytorch import ToTensorV2

    return A.Compose(
        [
            A.Normalize(
                mean=unit_triplet("mean", mean), std=unit_triplet("std", std, positive=True), max_pixel_value=255.0
            ),
            ToTensorV2(),
        ]
    )


def seed_albumentations(*, transform, seed: int) -> None:
    """Give an albumentations pipeline one reproducible random stream shared by all of its steps."""
    # Compose(seed=s) / set_random_seed(s) give every step its OWN generator seeded with the same s,
    # so the steps' draws are correlated (e.g. flip and rotate decide alike on the first image).
    # set_random_state hands one numpy and one Python generator to every step instead.
    whole("seed", seed, low=0, hint="e.g. torch.initial_seed() % 2**32")
    if not hasattr(transform, "set_random_state"):
        raise ValueError(f"transform={transform!r} is not an albumentations transform; pass an A.Compose.")
    transform.set_random_state(np.random.default_rng(int(seed)), random.Random(int(seed)))


# --------------------------------------------------------------------------- batched (device path)


def _uniform_int(u: torch.Tensor, n: int) -> torch.Tensor:
    """Map uniforms in [0, 1) to integers 0..n-1 (the way albumentations maps its crop starts)."""
    # float32 u * n can round up to exactly n for u just below 1, hence the clamp.
    return (u * n).long().clamp_(max=n - 1)


def _reflect(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect indices in [-(n-1), 2n-2] into 0..n-1 about the edge pixels (BORDER_REFLECT_101)."""
    idx = idx.abs()
    return torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)


def _rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate float images (B,C,H,W) about their centre like cv2.warpAffine in albumentations' Rotate."""
    b, _, h, w = x.shape
    rad = torch.deg2rad(degrees.to(torch.float32))
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(cos)
    # albumentations maps source to destination with [[c, s], [-s, c]] about ((W-1)/2, (H-1)/2);
    # grid_sample needs the inverse map in coordinates normalised by the half-sides (align_corners=True).
    sx, sy = max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0
    theta = torch.stack(
        [torch.stack([cos, -sin * (sy / sx), zero], 1), torch.stack([sin * (sx / sy), cos, zero], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


class BatchAugment:
    """The train augmentations of albumentations_train (without Normalize), batched on any device."""

    # Columns of the one uniform draw per call; all are drawn whatever is enabled, so a generator
    # state means the same thing for every configuration.
    _DY, _DX, _FLIP, _ROT_ON, _ROT_ANGLE, _RGB_ON, _RGB_R, _CUT_Y, _CUT_X = 0, 1, 2, 3, 4, 5, 6, 9, 10
    _NUM_UNIFORMS = 11

    def __init__(self, *, mean, pad, flip, cutout, rotate, rgb_shift):
        """Keep the checked knobs and the cutout fill (the dataset mean in 0..255 units)."""
        knobs = _check_knobs(pad=pad, flip=flip, cutout=cutout, rotate=rotate, rgb_shift=rgb_shift)
        self.pad, self.flip, self.cutout = knobs["pad"], knobs["flip"], knobs["cutout"]
        self.rotate, self.rgb_shift = float(knobs["rotate"]), float(knobs["rgb_shift"])
        self.mean = unit_triplet("mean", mean)
        self.fill = _cutout_fill(self.mean)
        self._fill_on: dict[torch.device, torch.Tensor] = {}

    def __repr__(self) -> str:
        return (
            f"BatchAugment(pad={self.pad}, flip={self.flip}, cutout={self.cutout}, rotate={self.rotate:g}, "
            f"rgb_shift={self.rgb_shift:g}, fill={self.fill})"
        )

    def _fill_tensor(self, device: torch.device) -> torch.Tensor:
        if device not in self._fill_on:  # copied to the device once, not on every call
            self._fill_on[device] = torch.tensor(self.fill, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        return self._fill_on[device]

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Augment a uint8 batch (B,3,H,W); returns float32 in 0..255 on x.device, randomness from generator."""
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a uint8 tensor (B, 3, H, W), got {got}; pass the raw uint8 images.")
        if not isinstance(generator, torch.Generator) or generator.device.type != x.device.type:
            raise ValueError(
                f"generator must be a torch.Generator on {x.device} (the images' device); "
                f"make it with torch.Generator(device=x.device).manual_seed(seed)."
            )
        b, c, h, w = x.shape
        _check_size(pad=self.pad, cutout=self.cutout, height=h, width=w)
        dev = x.device
        u = torch.rand((b, self._NUM_UNIFORMS), generator=generator, device=dev)

        # Pad + random crop + flip as one gather: output pixel (i, j) reads source pixel
        # (reflect(i + dy - pad), reflect(j' + dx - pad)) with j' = W-1-j for flipped images.
        if self.pad or self.flip:
            rows = torch.arange(h, device=dev).expand(b, h)
            cols = torch.arange(w, device=dev).expand(b, w)
            if self.pad:
                n = 2 * self.pad + 1
                rows = rows + (_uniform_int(u[:, self._DY], n) - self.pad)[:, None]
                cols = cols + (_uniform_int(u[:, self._DX], n) - self.pad)[:, None]
            if self.flip:
                cols = torch.where((u[:, self._FLIP] < 0.5)[:, None], cols.flip(1), cols)
            index = (_reflect(rows, h)[:, :, None] * w + _reflect(cols, w)[:, None, :]).view(b, 1, h * w)
            out = x.reshape(b, c, h * w).gather(2, index.expand(b, c, h * w)).view(b, c, h, w).float()
        else:
            out = x.float()

        if self.rotate:
            angle = (2.0 * u[:, self._ROT_ANGLE] - 1.0) * self.rotate
            on = (u[:, self._ROT_ON] < 0.5)[:, None, None, None]
            out = torch.where(on, _rotate(out, angle), out)  # untouched images stay bit-exact

        if self.rgb_shift:
            shift = (2.0 * u[:, self._RGB_R : self._RGB_R + 3] - 1.0) * self.rgb_shift
            shift = shift * (u[:, self._RGB_ON] < 0.5)[:, None]
            out = (out + shift[:, :, None, None]).clamp_(0.0, 255.0)

        if self.cutout:
            # One hole per image, fully inside it: top-left uniform on 0..H-cutout (as CoarseDropout).
            s = self.cutout
            y0 = _uniform_int(u[:, self._CUT_Y], h - s + 1)[:, None]
            x0 = _uniform_int(u[:, self._CUT_X], w - s + 1)[:, None]
            r = torch.arange(h, device=dev)[None]
            q = torch.arange(w, device=dev)[None]
            in_rows = (r >= y0) & (r < y0 + s)
            in_cols = (q >= x0) & (q < x0 + s)
            hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]
            out = torch.where(hole, self._fill_tensor(dev), out)
        return out


def batch_preview(*, images: np.ndarray, mean, seed: int = 0, pad, flip, cutout, rotate, rgb_shift) -> np.ndarray:
    """BatchAugment applied once to uint8 (N, H, W, 3) images on the CPU, back as uint8 (N, H, W, 3) for display."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    out = BatchAugment(mean=mean, pad=pad, flip=flip, cutout=cutout, rotate=rotate, rgb_shift=rgb_shift)(
        x, generator=torch.Generator().manual_seed(seed)
    )
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
