"""images.to_rgb, the one preparation of an image: real files of every kind, checked against numpy or Pillow,
and the same pixels whether a file enters through a training folder, load_image or the app's upload."""

import numpy as np
import pytest
from fakes import make_imagefolder
from PIL import Image

from eva_helpers.app.service import InputError, read_upload
from eva_helpers.data import DataError, imagefolder_index, load_data
from eva_helpers.images import ALLOWED_FORMATS, ImageError, open_image, to_rgb
from eva_helpers.inference import load_image
from eva_helpers.recipe import load_recipe

FORMATS = r"JPEG, PNG, GIF, BMP, WEBP or TIFF"  # how every refusal names the allowed formats
ORIENTATION = 0x0112  # the EXIF tag


def rescaled16(v: np.ndarray) -> np.ndarray:
    """The rule for 16-bit values, in float arithmetic: round(v * 255 / 65535)."""
    return np.round(v.astype(np.float64) * 255 / 65535).astype(np.uint8)


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colours over white in float arithmetic (the oracle; Pillow's integer compositing may differ by 1)."""
    a = alpha.astype(np.float64)[..., None] / 255
    return np.round(rgb.astype(np.float64) * a + 255 * (1 - a)).astype(np.uint8)


def grey3(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[:, :, None], 3, axis=2)


def close(got: np.ndarray, want: np.ndarray, tol: int) -> bool:
    return got.shape == want.shape and got.dtype == np.uint8 and int(np.abs(got.astype(int) - want).max()) <= tol


def with_orientation(arr: np.ndarray, path, orientation: int) -> np.ndarray:
    """Save arr as a JPEG with an EXIF orientation; return the pixels as stored (decoded, not turned)."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())
    with Image.open(path) as im:
        assert im.getexif()[ORIENTATION] == orientation
        return np.asarray(im.convert("RGB"))


# ----------------------------------------------------------------------------- bit depth


def write_16bit_grey(path, mode: str, values: np.ndarray) -> None:
    """values (uint16) as a grey file whose Pillow mode is `mode`: I;16 (PNG), I;16B or I (TIFF)."""
    if mode == "I;16":
        Image.fromarray(values).save(path)
    elif mode == "I;16B":
        Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes()).save(path)
    else:
        Image.fromarray(values.astype(np.int32)).save(path)


@pytest.mark.parametrize(("mode", "ext"), [("I;16", "png"), ("I;16B", "tif"), ("I", "tif")])
def test_a_16_bit_grey_ramp_is_rescaled_not_clipped(tmp_path, mode, ext):
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (8, 1))
    path = tmp_path / f"ramp.{ext}"
    write_16bit_grey(path, mode, ramp)
    with Image.open(path) as im:
        assert im.mode == mode  # the file really is what the test says
    got = to_rgb(path)
    assert np.array_equal(got, grey3(rescaled16(ramp)))
    assert got.mean() == pytest.approx(127.5, abs=1)  # Pillow's convert("RGB") gives 254.0: all but 0 clip to 255
    assert np.array_equal(load_image(path, size=8), got[:, 124:132])  # the centred square, not resized


def test_16_bit_colour_arrays_are_rescaled(tmp_path):
    arr = np.random.default_rng(0).integers(0, 65536, (12, 12, 3), dtype=np.uint16)
    arr[0, 0], arr[0, 1], arr[0, 2] = (0, 257, 65535), (128, 129, 385), (32767, 32768, 65534)
    got = to_rgb(arr)
    assert np.array_equal(got, rescaled16(arr))
    assert (
        got[0, 0].tolist() == [0, 1, 255] and got[0, 1].tolist() == [0, 1, 1] and got[0, 2].tolist() == [127, 128, 255]
    )
    assert np.array_equal(load_image(arr, size=12), got)
    assert np.array_equal(to_rgb(arr.astype(">u2")), got)  # big-endian data too


def test_float_images_in_0_1_are_scaled_by_255(tmp_path):
    x = np.random.default_rng(1).random((16, 16, 3))
    x[0, 0] = (0.0, 1.0, 0.5)
    want = np.round(x * 255).astype(np.uint8)
    assert np.array_equal(to_rgb(x), want) and np.array_equal(load_image(x, size=16), want)
    x32 = x.astype(np.float32)
    assert np.array_equal(to_rgb(x32), np.round(x32.astype(np.float64) * 255).astype(np.uint8))
    assert np.array_equal(to_rgb(x[:, :, 0]), grey3(want[:, :, 0]))  # (H, W) grey
    grey = x[:, :, 0].astype(np.float32)
    Image.fromarray(grey, "F").save(tmp_path / "grey.tif")  # a float TIFF (mode F) follows the same rule
    assert np.array_equal(
        to_rgb(tmp_path / "grey.tif"), grey3(np.round(grey.astype(np.float64) * 255).astype(np.uint8))
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.full((4, 4, 3), 1.5), r"float values from 1\.5 to 1\.5; float images must lie in \[0, 1\]"),
        (np.full((4, 4), -0.25), r"from -0\.25 to -0\.25; float images must lie in \[0, 1\]"),
        (np.array([[0.5, np.nan]]), r"NaN or infinite float values; float images must lie in \[0, 1\]"),
        (np.array([[0.5, np.inf]], np.float32), r"NaN or infinite"),
        (np.zeros((4, 4, 3), np.int64), r"dtype int64; pass uint8 \(0-255\), uint16 \(0-65535\) or floats in \[0, 1\]"),
        (np.zeros((4, 4), np.int16), r"dtype int16; pass uint8"),
        (np.zeros((4, 4), bool), r"dtype bool; pass uint8"),
        (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\); an image array must be"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\): no pixels"),
    ],
)
def test_arrays_it_cannot_use_are_refused_saying_what_is_expected(values, message):
    with pytest.raises(ImageError, match=message) as caught:
        to_rgb(values)
    assert str(caught.value).startswith("the image array ")
    with pytest.raises(ValueError, match=message):  # ImageError is a ValueError, as load_image always raised
        load_image(values, size=4)


def test_files_with_values_it_cannot_scale_are_refused_naming_them(tmp_path):
    Image.fromarray(np.full((4, 4), 200.0, np.float32), "F").save(tmp_path / "hdr.tif")
    with pytest.raises(ImageError, match=r"hdr.tif \(mode F\) holds float values from 200 to 200; .*\[0, 1\]"):
        to_rgb(tmp_path / "hdr.tif")
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(ImageError, match=r"wide.tif \(mode I\) holds values from 0 to 70000; only 16-bit"):
        to_rgb(tmp_path / "wide.tif")


def test_uint8_arrays_pass_through_unchanged_and_are_never_the_callers_own():
    arr = np.random.default_rng(2).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    got = to_rgb(arr)
    assert np.array_equal(got, arr) and got.dtype == np.uint8 and not np.shares_memory(got, arr)
    assert np.array_equal(to_rgb(arr[:, :, :1]), grey3(arr[:, :, 0]))  # (H, W, 1)
    assert np.array_equal(to_rgb(arr[:, ::-1]), arr[:, ::-1])  # a strided view
    assert got.flags.writeable and to_rgb(Image.fromarray(arr)).flags.writeable


# ----------------------------------------------------------------------------- transparency


def alpha_sheet(seed: int, size: int = 32):
    """Random colours and an alpha with every kind of pixel: transparent, opaque and half-way."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (size, size), dtype=np.uint8)
    alpha[: size // 4] = 0
    alpha[size // 4 : size // 2] = 255
    return rgb, alpha


def test_rgba_png_is_laid_on_white(tmp_path):
    rgb, alpha = alpha_sheet(3)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    got = to_rgb(tmp_path / "rgba.png")
    assert (got[:8] == 255).all()  # transparent: white, whatever colour the pixel holds
    assert np.array_equal(got[8:16], rgb[8:16])  # opaque: the colour itself
    assert close(got, on_white(rgb, alpha), 1)
    assert np.array_equal(to_rgb(np.dstack([rgb, alpha])), got)  # an RGBA array: exactly as the file


def test_la_png_and_pa_image_are_laid_on_white(tmp_path):
    rgb, alpha = alpha_sheet(4)
    grey = rgb[:, :, 0]
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    got = to_rgb(tmp_path / "la.png")
    assert (got[:8] == 255).all() and close(got, grey3(on_white(grey3(grey), alpha)[:, :, 0]), 1)
    palette = np.random.default_rng(5).integers(0, 256, (256, 3), dtype=np.uint8)
    index = rgb[:, :, 1]
    pa = Image.fromarray(index, "P")
    pa.putpalette(palette.tobytes())
    pa = pa.convert("PA")  # Pillow writes no PA file, so the image itself
    pa.putalpha(Image.fromarray(alpha))
    assert pa.mode == "PA"
    got = to_rgb(pa)
    assert (got[:8] == 255).all() and close(got, on_white(palette[index], alpha), 1)


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_a_palette_with_a_transparent_colour_is_white_there(tmp_path, ext):
    palette = np.random.default_rng(6).integers(0, 256, (16, 3), dtype=np.uint8)
    palette[0] = (10, 200, 30)  # the transparent entry has a colour of its own, which must not show
    index = np.random.default_rng(7).integers(0, 16, (20, 20), dtype=np.uint8)
    index[0] = 0
    im = Image.fromarray(index, "P")
    im.putpalette(palette.tobytes())
    im.save(tmp_path / f"p.{ext}", transparency=0)
    with Image.open(tmp_path / f"p.{ext}") as reread:
        assert reread.mode == "P" and "transparency" in reread.info
    want = palette[index]
    want[index == 0] = 255
    assert np.array_equal(to_rgb(tmp_path / f"p.{ext}"), want)


def test_a_grey_png_with_a_transparent_value_is_white_there(tmp_path):
    grey = np.random.default_rng(8).integers(0, 256, (10, 10), dtype=np.uint8)
    grey[0] = 50
    Image.fromarray(grey).save(tmp_path / "l.png", transparency=50)
    want = np.where(grey == 50, 255, grey).astype(np.uint8)
    assert np.array_equal(to_rgb(tmp_path / "l.png"), grey3(want))
    ramp = (np.arange(100, dtype=np.uint16) * 600).reshape(10, 10)
    Image.fromarray(ramp).save(tmp_path / "i16.png", transparency=600)  # 16-bit grey with a transparent value
    want16 = rescaled16(ramp)
    want16[ramp == 600] = 255
    assert np.array_equal(to_rgb(tmp_path / "i16.png"), grey3(want16))


# ----------------------------------------------------------------------------- colour modes


def test_cmyk_jpeg_becomes_the_rgb_pillow_decodes(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    rgb = np.dstack([xx * 8, yy * 8, np.full_like(xx, 128)]).astype(np.uint8)  # smooth, so JPEG keeps it
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
        want = np.asarray(im.convert("RGB"))
    got = to_rgb(tmp_path / "cmyk.jpg")
    assert np.array_equal(got, want)
    assert np.abs(got.astype(int) - rgb).mean() < 8  # the colours survive: not inverted


def test_grey_one_bit_and_palette_images_become_rgb(tmp_path):
    rng = np.random.default_rng(9)
    grey = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert np.array_equal(to_rgb(tmp_path / "grey.png"), grey3(grey))
    bits = rng.integers(0, 2, (12, 12)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "bw.png")
    with Image.open(tmp_path / "bw.png") as im:
        assert im.mode == "1"
    assert np.array_equal(to_rgb(tmp_path / "bw.png"), grey3(np.where(bits, 255, 0).astype(np.uint8)))
    palette = rng.integers(0, 256, (8, 3), dtype=np.uint8)
    index = rng.integers(0, 8, (12, 12), dtype=np.uint8)
    im = Image.fromarray(index, "P")
    im.putpalette(palette.tobytes())
    im.save(tmp_path / "pal.gif")
    assert np.array_equal(to_rgb(tmp_path / "pal.gif"), palette[index])
    assert np.array_equal(load_image(tmp_path / "pal.gif", size=12), palette[index])


# ----------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, -1), (8, 1)])  # np.rot90's quarter turns, CCW
def test_an_exif_rotated_jpeg_comes_back_upright(tmp_path, orientation, turns):
    arr = np.zeros((24, 40, 3), dtype=np.uint8)  # wide as stored
    arr[:8, :8] = (250, 20, 20)  # a red corner shows which way it turned
    arr[16:, 10:30] = (20, 20, 250)
    stored = with_orientation(arr, tmp_path / "photo.jpg", orientation)
    want = np.rot90(stored, turns)  # numpy's rotation of the stored pixels: the oracle
    got = to_rgb(tmp_path / "photo.jpg")
    assert got.shape == want.shape and np.array_equal(got, want)
    if orientation == 6:  # a quarter turn clockwise: tall, and the red corner top right
        assert got.shape == (40, 24, 3) and got[2, 21, 0] > 200 and got[2, 2, 0] < 50
    (h, w), side = want.shape[:2], 24
    top, left = (h - side) // 2, (w - side) // 2  # load_image cuts out the centred square of the upright image
    assert np.array_equal(load_image(tmp_path / "photo.jpg", size=side), want[top : top + side, left : left + side])
    pil = Image.open(tmp_path / "photo.jpg")  # a PIL image a caller opened is turned too, and left as it was
    assert np.array_equal(to_rgb(pil), want) and pil.size == (40, 24)


# ----------------------------------------------------------------------------- formats


def test_the_allowed_formats_are_all_known_to_pillow():
    from PIL import features

    Image.init()
    assert set(ALLOWED_FORMATS) <= set(Image.OPEN) and features.check("webp")
    assert "EPS" in Image.OPEN and "EPS" not in ALLOWED_FORMATS


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_each_allowed_format_is_read(tmp_path, fmt):
    arr = np.random.default_rng(10).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(arr).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    with Image.open(path) as im:
        want = np.asarray(im.convert("RGB"))
    assert np.array_equal(to_rgb(path), want)
    if fmt in ("PNG", "BMP", "TIFF", "WEBP"):
        assert np.array_equal(want, arr)  # lossless


def test_text_eps_and_other_formats_are_refused_naming_the_file_and_the_allowed_formats(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "drawing.eps")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "disguised.png", format="PPM")  # a real image, but a PPM
    for name, pillow_reads in (("notes.txt", None), ("drawing.eps", "EPS"), ("disguised.png", "PPM")):
        if pillow_reads:
            with Image.open(tmp_path / name) as im:  # Pillow, left to itself, would open these
                assert im.format == pillow_reads
        with pytest.raises(ImageError, match=rf"{name} is not a {FORMATS} image") as caught:
            to_rgb(tmp_path / name)
        assert isinstance(caught.value, ValueError) and caught.value.reason.startswith("is not a JPEG")
        with pytest.raises(ValueError, match=rf"{name} is not a {FORMATS} image"):
            load_image(tmp_path / name, size=8)
        with pytest.raises(InputError, match=rf"{name} is not an image this app can read .*upload a {FORMATS} file"):
            read_upload(tmp_path / name, size=8)


def test_damaged_and_missing_files_say_so(tmp_path):
    arr = np.random.default_rng(11).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:400])
    with pytest.raises(ImageError, match=r"cut.png cannot be decoded: the file is damaged or cut short"):
        to_rgb(tmp_path / "cut.png")
    with pytest.raises(InputError, match=r"^upload.png cannot be decoded: the file is damaged or cut short"):
        read_upload(tmp_path / "cut.png", size=8, name="upload.png")
    with pytest.raises(ImageError, match=r"gone.png cannot be read"):
        to_rgb(tmp_path / "gone.png")
    with pytest.raises(ImageError, match=r"a list cannot be used as an image"):
        to_rgb([[0, 1]])
    with open_image(tmp_path / "whole.png") as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), arr)


# ----------------------------------------------------------------------------- one preparation for every road


def write_every_kind(folder, size: int = 32) -> dict[str, tuple[np.ndarray, int]]:
    """A file of each kind in folder, all size x size: {name: (the pixels by an oracle, tolerance)}."""
    rng = np.random.default_rng(12)
    out = {}
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "rgb.png")
    out["rgb.png"] = (rgb, 0)
    Image.fromarray(rgb).save(folder / "rgb.webp", lossless=True)
    out["rgb.webp"] = (rgb, 0)
    Image.fromarray(rgb).save(folder / "rgb.bmp")
    out["rgb.bmp"] = (rgb, 0)
    ramp = np.linspace(0, 65535, size * size).round().astype(np.uint16).reshape(size, size)
    Image.fromarray(ramp).save(folder / "grey16.png")
    out["grey16.png"] = (grey3(rescaled16(ramp)), 0)
    Image.fromarray(ramp).save(folder / "grey16.tif")
    out["grey16.tif"] = (grey3(rescaled16(ramp)), 0)
    x = rng.random((size, size)).astype(np.float32)
    Image.fromarray(x, "F").save(folder / "float.tif")
    out["float.tif"] = (grey3(np.round(x.astype(np.float64) * 255).astype(np.uint8)), 0)
    colours, alpha = alpha_sheet(13, size)
    Image.fromarray(np.dstack([colours, alpha]), "RGBA").save(folder / "rgba.png")
    out["rgba.png"] = (on_white(colours, alpha), 1)
    Image.fromarray(np.dstack([colours[:, :, 0], alpha]), "LA").save(folder / "la.png")
    out["la.png"] = (grey3(on_white(colours, alpha)[:, :, 0]), 1)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    index = rng.integers(0, 16, (size, size), dtype=np.uint8)
    index[0] = 0
    want = palette[index]
    want[index == 0] = 255
    for ext in ("png", "gif"):
        im = Image.fromarray(index, "P")
        im.putpalette(palette.tobytes())
        im.save(folder / f"palette.{ext}", transparency=0)
        out[f"palette.{ext}"] = (want, 0)
    grey = rng.integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(grey).save(folder / "grey.png")
    out["grey.png"] = (grey3(grey), 0)
    bits = rng.integers(0, 2, (size, size)).astype(bool)
    Image.fromarray(bits).save(folder / "bw.png")
    out["bw.png"] = (grey3(np.where(bits, 255, 0).astype(np.uint8)), 0)
    yy, xx = np.mgrid[0:size, 0:size]
    smooth = np.dstack([xx * 8, yy * 8, np.full_like(xx, 128)]).astype(np.uint8)
    Image.fromarray(smooth).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    with Image.open(folder / "cmyk.jpg") as im:
        out["cmyk.jpg"] = (np.asarray(im.convert("RGB")), 0)
    photo = smooth.copy()
    photo[:8, :8] = (250, 20, 20)
    stored = with_orientation(photo, folder / "turned.jpg", 6)
    out["turned.jpg"] = (np.rot90(stored, -1), 0)
    return out


def test_every_kind_of_file_gives_training_prediction_and_the_app_the_same_pixels(tmp_path):
    root = make_imagefolder(tmp_path / "d", n_train=1, n_test=1)
    kinds = write_every_kind(root / "train" / "cat")
    names = imagefolder_index(data_dir=root).names
    for cached in (False, True):  # decoded, then from the cache
        d = load_data(load_recipe(dataset="imagefolder", data_dir=root, cache_dir=tmp_path / "c", progress=False))
        for fname, (want, tol) in kinds.items():
            path = root / "train" / "cat" / fname
            trained = d.x_train[names.index(f"train/cat/{fname}")]
            assert np.array_equal(trained, load_image(path, size=32)), (fname, cached)
            assert np.array_equal(trained, read_upload(path, size=32)), (fname, cached)
            assert close(trained, want, tol), (fname, cached)  # and what all three give is right


def test_a_training_folder_refuses_other_formats_by_name_or_skips_them(tmp_path):
    root = make_imagefolder(tmp_path / "d", n_train=2, n_test=1)
    Image.new("RGB", (32, 32)).save(root / "train" / "dog" / "drawing.png", format="EPS")
    with pytest.raises(DataError, match=rf"1 image\(s\).*train/dog/drawing.png \(is not a {FORMATS} image"):
        load_data(load_recipe(dataset="imagefolder", data_dir=root, progress=False))
    with pytest.warns(UserWarning, match=rf"skipping 1 image\(s\).*drawing.png \(is not a {FORMATS} image"):
        d = load_data(load_recipe(dataset="imagefolder", data_dir=root, progress=False, skip_bad_images=True))
    assert len(d.x_train) == 6


def test_to_rgb_leaves_a_callers_image_as_it_was():
    rgba = Image.fromarray(np.dstack(alpha_sheet(14, 8)), "RGBA")
    before = np.asarray(rgba).copy()
    to_rgb(rgba)
    assert rgba.mode == "RGBA" and np.array_equal(np.asarray(rgba), before)
