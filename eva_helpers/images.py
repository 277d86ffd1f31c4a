"""One way to prepare an image: a file, a PIL image or an array as the uint8 (H, W, 3) RGB pixels a model takes.

Training folders (data/decode.py), own pictures (inference.load_image) and the app's uploads (app/service.py)
all come through to_rgb, so the same file gives the same pixels wherever it enters:

- files are opened only as ALLOWED_FORMATS: Pillow's other readers are never tried (its EPS reader runs
  Ghostscript);
- the EXIF orientation is applied (phone photos are stored sideways with an orientation tag);
- transparency (RGBA, LA, PA, a palette or grey image with a transparent colour) is laid on white;
- 16-bit grey ("I;16", "I;16B", "I") and uint16 arrays are rescaled to 0-255 (round(v * 255 / 65535)), not
  clipped; float images must lie in [0, 1] and are scaled by 255; palette, CMYK, grey and 1-bit become RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")  # Pillow's names; a file of any other format is refused
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")  # the modes that carry an alpha channel
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit and 32-bit grey, read through numpy


class ImageError(ValueError):
    """An image that cannot be prepared: the message names it, `reason` says why without the name."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _fail(name: str, reason: str) -> ImageError:
    return ImageError(f"{name} {reason}", reason)


def formats_text() -> str:
    """'JPEG, PNG, GIF, BMP, WEBP or TIFF', for messages."""
    return f"{', '.join(ALLOWED_FORMATS[:-1])} or {ALLOWED_FORMATS[-1]}"


def open_image(
    file: str | Path | BinaryIO, *, name: str | None = None, draft: tuple[int, int] | None = None
) -> Image.Image:
    """The image in `file` (a path or a binary file object), decoded, if it is one of ALLOWED_FORMATS; else ImageError.

    Use it in a `with` block: GIF and TIFF keep their file open for their other frames (the first one is used).
    `name` is how messages call the file (default: the path). draft=(w, h) decodes a JPEG at the smallest of
    1/2, 1/4 or 1/8 scale that is still at least w x h (Pillow's Image.draft): a 48-megapixel phone photo then
    needs a sixteenth of the memory; other formats ignore it.
    """
    from PIL import Image, UnidentifiedImageError

    name = name or (str(file) if isinstance(file, (str, Path)) else "the image")
    try:
        im = Image.open(file, formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as e:
        raise _fail(name, f"is not a {formats_text()} image; save it in one of these formats.") from e
    except Image.DecompressionBombError as e:
        raise _fail(name, f"has too many pixels to decode safely ({e}); make it smaller first.") from e
    except OSError as e:
        raise _fail(name, f"cannot be read ({e}).") from e
    if draft is not None and im.format == "JPEG":
        im.draft(im.mode, draft)
    try:
        im.load()
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
        im.close()
        raise _fail(name, f"cannot be decoded: the file is damaged or cut short ({type(e).__name__}: {e}).") from e
    return im


def to_rgb(image: Any, *, name: str | None = None, draft: tuple[int, int] | None = None) -> np.ndarray:
    """Any image (a path, a binary file object, a PIL image or an (H, W[, 1|3|4]) array) as uint8 (H, W, 3) RGB.

    Applies the EXIF orientation, lays transparency on white and rescales 16-bit and float images (see the
    module's docstring); raises ImageError, naming the image (`name`, default its path), for what it cannot use.
    draft: see open_image (JPEG files only).
    """
    from PIL import Image

    if isinstance(image, (str, Path)) or hasattr(image, "read"):
        with open_image(image, name=name, draft=draft) as im:
            return _pil_rgb(im, name=name or (str(image) if isinstance(image, (str, Path)) else "the image"))
    if isinstance(image, Image.Image):
        return _pil_rgb(image, name=name or "the image")
    if isinstance(image, np.ndarray):
        return _array_rgb(image, name=name or "the image array")
    raise _fail(
        name or f"a {type(image).__name__}", "cannot be used as an image; pass a file path, a PIL image or an array."
    )


def _upright(im: Image.Image) -> Image.Image:
    """im turned as its EXIF orientation tag says (im itself when there is no tag to follow).

    A TIFF needs nothing here: Pillow turns it while loading and drops the tag.
    """
    from PIL import ImageOps

    try:
        orientation = im.getexif().get(0x0112, 1)  # 0x0112: Orientation; 1 is upright (0 is not a valid value)
    except Exception:  # noqa: BLE001 - damaged EXIF does not damage the pixels; the orientation is unknown
        return im
    if orientation in (0, 1):
        return im  # exif_transpose would copy the image
    return ImageOps.exif_transpose(im)


def _on_white(im: Image.Image) -> Image.Image:
    """An image with alpha (or a transparent colour) composited onto white, as RGB."""
    from PIL import Image

    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _pil_rgb(im: Image.Image, *, name: str) -> np.ndarray:
    im = _upright(im)
    if im.mode in WIDE_MODES:
        raw = np.asarray(im)
        grey = _to_uint8(raw, name=f"{name} (mode {im.mode})", int16=True)
        key = im.info.get("transparency")
        if isinstance(key, int):  # a grey PNG's transparent value
            grey = np.where(raw == key, np.uint8(255), grey)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        im = _on_white(im)
    elif im.mode != "RGB":  # grey, palette, CMYK, 1-bit, YCbCr ...
        try:
            im = im.convert("RGB")
        except ValueError as e:
            raise _fail(name, f"is in mode {im.mode}, which cannot be converted to RGB ({e}).") from e
    return np.array(im, dtype=np.uint8)


def _to_uint8(arr: np.ndarray, *, name: str, int16: bool = False) -> np.ndarray:
    """uint8 as is, uint16 (any integers with int16=True) rescaled, floats in [0, 1] scaled; else ImageError."""
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float64)
        finite = bool(np.isfinite(x).all())
        if not finite or x.min() < 0 or x.max() > 1:
            found = f"float values from {x.min():g} to {x.max():g}" if finite else "NaN or infinite float values"
            raise _fail(name, f"holds {found}; float images must lie in [0, 1] (divide 0-255 values by 255).")
        return np.rint(x * 255).astype(np.uint8)
    if (arr.dtype.kind, arr.dtype.itemsize) == ("u", 2) or (int16 and arr.dtype.kind in "iu"):  # mode I: int32
        wide = arr.astype(np.int64)
        if wide.min() < 0 or wide.max() > 65535:
            raise _fail(
                name,
                f"holds values from {wide.min()} to {wide.max()}; only 16-bit values (0-65535) can be rescaled.",
            )
        return ((wide + 128) // 257).astype(np.uint8)  # round(v * 255 / 65535): v / 257 is never halfway
    raise _fail(
        name,
        f"has dtype {arr.dtype}; pass uint8 (0-255), uint16 (0-65535) or floats in [0, 1] "
        "(arr.astype(np.uint8) when it holds 0-255).",
    )


def _array_rgb(arr: np.ndarray, *, name: str) -> np.ndarray:
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise _fail(name, f"has shape {arr.shape}; an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).")
    if arr.size == 0:
        raise _fail(name, f"has shape {arr.shape}: no pixels.")
    u8 = _to_uint8(arr, name=name)
    if u8.ndim == 2:
        return np.repeat(u8[:, :, None], 3, axis=2)
    if u8.shape[2] == 4:  # RGBA: on white, exactly as an RGBA file
        return np.array(_on_white(Image.fromarray(np.ascontiguousarray(u8), "RGBA")), dtype=np.uint8)
    return np.array(u8, dtype=np.uint8)  # a copy: the caller's array is never returned
