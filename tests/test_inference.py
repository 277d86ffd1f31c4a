"""Using a trained model: a strict load, any image prepared as training prepares it, the top classes."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from fakes import make_own_images
from PIL import Image

from eva_helpers.data import synthetic
from eva_helpers.files import save_torch
from eva_helpers.inference import (
    image_files,
    load_image,
    normalize,
    predict_images,
    predict_logits,
    top_classes,
)
from eva_helpers.loaders import DeviceLoader
from eva_helpers.model_file import load_trained
from eva_helpers.models import build_model

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def meta(**over):
    return {
        "model": "custom_resnet",
        "num_classes": 10,
        "classes": CLASSES,
        "mean": list(MEAN),
        "std": list(STD),
        "image_size": 32,
        "test_split": "test",
        "data": {"dataset": "cifar10"},
        **over,
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    model = build_model(name="custom_resnet", num_classes=10, seed=0)
    save_torch(obj={"model": model.state_dict(), "meta": meta()}, path=out / "model.pt")
    return out, model


def test_load_trained_gives_the_saved_weights_in_eval_mode(saved):
    out, model = saved
    net, got = load_trained(out_dir=out)
    assert not net.training and got["classes"] == CLASSES
    for k, v in model.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    assert load_trained(checkpoint=out / "model.pt")[1] == got
    save_torch(obj={"model": model.state_dict(), "meta": meta(logit_scale=0.125)}, path=out / "scaled.pt")
    assert load_trained(checkpoint=out / "scaled.pt")[0].logit_scale == 0.125  # the logits it was trained with


def test_load_trained_refuses_other_files_loudly(tmp_path, saved):
    other = build_model(name="resnet18", num_classes=10).state_dict()
    save_torch(obj={"model": other, "meta": meta()}, path=tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not fit a custom_resnet with 10 classes"):
        load_trained(checkpoint=tmp_path / "wrong.pt")
    weights = dict(saved[1].state_dict())
    weights.pop("fc.bias")
    save_torch(obj={"model": weights, "meta": meta()}, path=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="fc.bias"):
        load_trained(checkpoint=tmp_path / "missing.pt")
    save_torch(obj={"model": saved[1].state_dict(), "meta": meta(), "optimizer": {}}, path=tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="not checkpoint.pt"):
        load_trained(checkpoint=tmp_path / "checkpoint.pt")
    bare = meta()
    bare.pop("mean")
    save_torch(obj={"model": saved[1].state_dict(), "meta": bare}, path=tmp_path / "old.pt")
    with pytest.raises(ValueError, match="lacks the metadata \\['mean'\\]"):
        load_trained(checkpoint=tmp_path / "old.pt")


def test_normalize_is_what_the_evaluation_loader_feeds_the_model():
    data = synthetic(n_train=8, n_test=6, seed=1)
    loader = DeviceLoader(
        x=data.x_test, y=data.y_test, batch_size=6, device="cpu", mean=data.mean, std=data.std, channels_last=False
    )
    expected = next(iter(loader))[0]
    torch.testing.assert_close(normalize(images=data.x_test, mean=data.mean, std=data.std), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="uint8"):
        normalize(images=data.x_test.astype(np.float32), mean=MEAN, std=STD)


def test_any_image_becomes_an_rgb_square_of_the_models_size(tmp_path):
    wide = np.zeros((50, 100, 4), dtype=np.uint8)  # transparent everywhere but a red stripe in the middle
    wide[:, 45:55] = (255, 0, 0, 255)
    Image.fromarray(wide, "RGBA").save(tmp_path / "wide.png")
    got = load_image(tmp_path / "wide.png", size=32)
    assert got.shape == (32, 32, 3) and got.dtype == np.uint8
    assert tuple(got[16, 16]) == (255, 0, 0)  # the stripe stays in the centre: cropped, not squashed
    assert tuple(got[16, 2]) == (255, 255, 255)  # transparency is laid on white, not black
    assert 5 <= (got[16, :, 1] < 128).sum() <= 8  # 10 of the crop's 50 px wide: 6-7 px of 32
    grey = Image.fromarray(np.full((40, 40), 77, dtype=np.uint8), "L")
    assert load_image(grey, size=32).shape == (32, 32, 3) and load_image(grey, size=32)[0, 0, 0] == 77
    palette = Image.fromarray(np.full((32, 32, 3), 9, dtype=np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert np.array_equal(load_image(palette, size=32), np.full((32, 32, 3), 9, dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="notes.txt is not a JPEG, PNG, GIF, BMP, WEBP or TIFF image"):
        load_image(tmp_path / "notes.txt", size=32)


def test_load_image_rescales_16_bit_and_float_images_instead_of_clipping_them(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")  # 16-bit grey (mode I;16)
    got = load_image(tmp_path / "ramp16.png", size=64)
    assert np.array_equal(got[:, :, 0], np.round(ramp / 65535 * 255).astype(np.uint8))  # was 255 from ramp[1] on
    assert got.mean() == pytest.approx(127.5, abs=1)  # was 251.0
    x = np.random.default_rng(0).random((32, 32, 3))
    assert np.array_equal(load_image(x, size=32), np.round(x * 255).astype(np.uint8))  # was all 0
    with pytest.raises(ValueError, match=r"float values from 0 to 255; float images must lie in \[0, 1\]"):
        load_image(np.linspace(0, 255, 64).reshape(8, 8), size=8)  # was clipped quietly
    with pytest.raises(ValueError, match=r"dtype int64; pass uint8"):
        load_image(np.zeros((8, 8, 3), dtype=np.int64), size=8)  # was clipped quietly


def test_load_image_turns_an_exif_rotated_photo_upright(tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # wide as stored, a bright corner top left
    stored[:6, :6] = 250
    exif = Image.Exif()
    exif[0x0112] = 8  # EXIF orientation: turn a quarter anticlockwise to show
    Image.fromarray(stored).save(tmp_path / "phone.jpg", quality=95, exif=exif.tobytes())
    with Image.open(tmp_path / "phone.jpg") as im:
        raw = np.asarray(im.convert("RGB"))
    got = load_image(tmp_path / "phone.jpg", size=20)  # upright it is 20 wide, 40 tall: rows 10..30 of it
    assert np.array_equal(got, np.rot90(raw, 1)[10:30])


def test_predictions_are_the_models_own_and_the_top_classes_are_sorted(saved):
    _, model = saved
    model.train()
    images = synthetic(n_train=5, n_test=1, seed=2).x_train
    logits = predict_logits(model=model, images=images, meta=meta(), batch_size=2)
    assert model.training  # put back as found
    with torch.no_grad():
        x = normalize(images=images, mean=MEAN, std=STD)
        expected = model.eval()(x)
        mirrored = (expected + model(x.flip(3))) / 2  # flip TTA: the image and its mirror, logits averaged
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-5)
    with_tta = predict_logits(model=model, images=images, meta={**meta(), "tta": True}, batch_size=2)
    np.testing.assert_allclose(with_tta, mirrored.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(with_tta - logits).max() > 1e-3  # a run trained with tta=True is evaluated with it
    top = top_classes(model=model, images=images, meta=meta(), k=3)
    probs = torch.softmax(expected, 1)
    for row, p in zip(top, probs):
        assert [c for c, _ in row] == [CLASSES[i] for i in p.argsort(descending=True)[:3]]
        assert [v for _, v in row] == pytest.approx(sorted(p.tolist(), reverse=True)[:3], rel=1e-4)
    with pytest.raises(ValueError, match="k=11"):
        top_classes(model=model, images=images, meta=meta(), k=11)


def test_the_inference_module_imports_nothing_from_training():
    code = (
        "import sys, eva_helpers.inference; "
        "bad = [m for m in ('engine', 'train', 'schedule', 'lr_finder', 'loaders', 'augment', 'cli') "
        "if 'eva_helpers.' + m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_your_own_images_of_any_size_and_mode_get_their_top_classes(saved, tmp_path):
    _, model = saved
    folder = make_own_images(tmp_path / "mine")
    files = image_files(folder)
    assert [f.name for f in files] == ["scan.jpg", "sticker.png", "tiny.gif", "wide photo.jpg"]  # notes.txt skipped
    got = predict_images(model=model.eval(), meta=meta(), images=[folder, folder / "scan.jpg"], k=5)
    assert len(got) == 5 and got[-1]["path"].endswith("scan.jpg")
    for p in got:
        probs = [t["prob"] for t in p["top"]]
        assert p["image"].shape == (32, 32, 3) and len(probs) == 5
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert {t["class"] for t in p["top"]} <= set(CLASSES)


def test_what_is_not_an_image_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no image files"):
        image_files(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing.jpg does not exist"):
        image_files(tmp_path / "missing.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not a JPEG, PNG, GIF, BMP, WEBP or TIFF image"):
        predict_images(model=build_model(name="custom_resnet", num_classes=10), meta=meta(),
                       images=tmp_path / "notes.txt")  # fmt: skip
