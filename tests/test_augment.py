"""BatchAugment against albumentations' statistics, plus the albumentations pipelines themselves."""

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch

from eva_helpers import augment as aug
from eva_helpers.recipe import AugmentRecipe

MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10; 0.4822 * 255 = 122.96 rounds to 123 (truncation would give 122)
STD = (0.2470, 0.2435, 0.2616)
OFF = dict(pad=0, flip=False, cutout=0, rotate=0, rgb_shift=0)
N = 2000  # images per statistical comparison


def knobs(**on):
    """All augmentations off except those given."""
    return {**OFF, **on}


def run_batch(images: np.ndarray, *, seed: int = 0, **kw) -> np.ndarray:
    """BatchAugment on HxWx3 uint8 images; returns float32 NHWC."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    out = aug.BatchAugment(mean=MEAN, **knobs(**kw))(x, generator=torch.Generator().manual_seed(seed))
    return out.permute(0, 2, 3, 1).numpy()


def run_albu(images: np.ndarray, *, seed: int = 0, **kw) -> np.ndarray:
    """albumentations steps (no Normalize) applied image by image; returns uint8 NHWC."""
    A = aug._albumentations()
    steps = aug.albumentations_steps(mean=MEAN, image_size=images.shape[1], **knobs(**kw))
    t = A.Compose(list(steps.values()))
    aug.seed_albumentations(transform=t, seed=seed)
    return np.stack([t(image=im)["image"] for im in images])


def position_image(size: int = 32) -> np.ndarray:
    """R = row index, G = column index, B = 255 - column: a pixel says where it came from."""
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.stack([i, j, 255 - j], -1).astype(np.uint8)


def reflect101(q, n):
    q = np.abs(q)
    return np.where(q > n - 1, 2 * (n - 1) - q, q)


def binomial_ok(k: int, n: int, p: float = 0.5, z: float = 4.5) -> bool:
    return abs(k / n - p) <= z * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------ resolve_augment


def resolve(dataset: str, **changes):
    """resolve_augment with the recipe's augmentation defaults, some changed."""
    return aug.resolve_augment(dataset=dataset, **{**dataclasses.asdict(AugmentRecipe()), **changes})


def test_resolve_defaults_per_dataset():
    assert resolve("cifar10") == dict(pad=4, flip=True, cutout=8, rotate=0, rgb_shift=0)
    assert resolve("imagefolder")["cutout"] == 8
    assert resolve("tinyimagenet") == dict(pad=8, flip=True, cutout=0, rotate=15, rgb_shift=20)
    assert resolve("tinyimagenet", cutout=16, flip=False)["cutout"] == 16


@pytest.mark.parametrize(
    "kw, word",
    [
        (dict(dataset="mnist"), "dataset"),
        (dict(dataset="cifar10", pad=-1), "pad"),
        (dict(dataset="cifar10", pad=2.5), "pad"),
        (dict(dataset="cifar10", cutout=True), "cutout"),
        (dict(dataset="cifar10", flip="yes"), "flip"),
        (dict(dataset="cifar10", rotate=200), "rotate"),
        (dict(dataset="cifar10", rgb_shift=-3), "rgb_shift"),
        (dict(dataset="cifar10", rgb_shift="20"), "rgb_shift"),
    ],
)
def test_resolve_rejects_bad_values(kw, word):
    with pytest.raises(ValueError, match=word):
        resolve(**kw)


def test_bad_inputs_raise_valueerror():
    with pytest.raises(ValueError, match="0, 1"):
        aug.BatchAugment(mean=(125, 123, 114), **OFF)  # 0..255 units by mistake
    ba = aug.BatchAugment(mean=MEAN, **knobs(pad=4))
    with pytest.raises(ValueError, match="uint8"):
        ba(torch.zeros(2, 3, 32, 32), generator=torch.Generator())
    with pytest.raises(ValueError, match="pad"):
        aug.BatchAugment(mean=MEAN, **knobs(pad=8))(
            torch.zeros(2, 3, 8, 8, dtype=torch.uint8), generator=torch.Generator()
        )
    with pytest.raises(ValueError, match="pad"):
        aug.albumentations_train(mean=MEAN, std=STD, image_size=8, **knobs(pad=8))


# ------------------------------------------------------------------ BatchAugment basics


def test_batch_dtype_shape_device_and_input_untouched():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    before = x.clone()
    ba = aug.BatchAugment(mean=MEAN, pad=4, flip=True, cutout=8, rotate=15, rgb_shift=20)
    out = ba(x, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == x.shape and out.device == x.device
    assert torch.equal(x, before)
    assert 0 <= out.min() and out.max() <= 255


def test_batch_identity_when_all_off():
    x = torch.randint(0, 256, (8, 3, 24, 32), dtype=torch.uint8)
    out = aug.BatchAugment(mean=MEAN, **OFF)(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x.float())


def test_batch_deterministic_per_generator_state():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    ba = aug.BatchAugment(mean=MEAN, pad=4, flip=True, cutout=8, rotate=15, rgb_shift=20)
    a = ba(x, generator=torch.Generator().manual_seed(7))
    b = ba(x, generator=torch.Generator().manual_seed(7))
    c = ba(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = torch.Generator().manual_seed(7)
    first, second = ba(x, generator=g), ba(x, generator=g)
    assert torch.equal(first, a) and not torch.equal(first, second)  # the generator advances


# ------------------------------------------------------------------ statistics against albumentations


def test_crop_offsets_and_reflect_border_match():
    pad, size = 4, 32
    images = np.repeat(position_image(size)[None], N, 0)
    for out in (run_batch(images, pad=pad), run_albu(images, pad=pad)):
        # output pixel (pad, pad) comes from source (dy, dx): the offsets read back directly
        dy, dx = out[:, pad, pad, 0].astype(int), out[:, pad, pad, 1].astype(int)
        for d in (dy, dx):
            counts = np.bincount(d, minlength=2 * pad + 1)
            assert len(counts) == 2 * pad + 1 and counts.min() > 0.6 * N / (2 * pad + 1)
            assert d.mean() == pytest.approx(pad, abs=0.25)
            assert d.std() == pytest.approx(math.sqrt(((2 * pad + 1) ** 2 - 1) / 12), rel=0.08)
        # every pixel, borders included, is the reflect-101 source pixel for that offset
        i = np.arange(size)
        want_r = reflect101(i[None, :] + dy[:, None] - pad, size)
        want_c = reflect101(i[None, :] + dx[:, None] - pad, size)
        assert np.array_equal(out[:, :, 0, 0], want_r) and np.array_equal(out[:, 0, :, 1], want_c)


def test_flip_rate_matches():
    images = np.repeat(position_image()[None], N, 0)
    rates = []
    for out in (run_batch(images, flip=True), run_albu(images, flip=True)):
        first_col = out[:, 0, 0, 1]
        assert set(np.unique(first_col)) == {0, 31}
        flipped = int((first_col == 31).sum())
        assert binomial_ok(flipped, N)
        rates.append(flipped / N)
    assert abs(rates[0] - rates[1]) < 0.07


def test_cutout_size_position_and_fill_match():
    size, s = 32, 8
    images = np.zeros((N, size, size, 3), np.uint8)  # 0 is never the fill value
    fill = tuple(int(math.floor(m * 255 + 0.5)) for m in MEAN)
    assert fill == (125, 123, 114)
    supports = []
    for out in (run_batch(images, cutout=s), run_albu(images, cutout=s)):
        hole = out[..., 0] != 0
        assert (hole.sum((1, 2)) == s * s).all()  # one full square hole in every image (p=1)
        ys, xs = hole.any(2).argmax(1), hole.any(1).argmax(1)
        for b in range(0, N, 97):
            assert hole[b, ys[b] : ys[b] + s, xs[b] : xs[b] + s].all()
        assert np.array_equal(out[hole], np.broadcast_to(np.array(fill, out.dtype), (hole.sum(), 3)))
        assert ys.max() + s <= size and xs.max() + s <= size  # fully inside
        for p in (ys, xs):
            counts = np.bincount(p, minlength=size - s + 1)
            assert len(counts) == size - s + 1 and counts.min() > 0.5 * N / (size - s + 1)
            assert p.mean() == pytest.approx((size - s) / 2, abs=0.6)
        supports.append((set(ys), set(xs)))
    assert supports[0] == supports[1]


def test_rgb_shift_range_and_rate_match():
    limit = 20
    images = np.full((N, 8, 8, 3), 128, np.uint8)
    stats = []
    for out in (run_batch(images, rgb_shift=limit), run_albu(images, rgb_shift=limit)):
        delta = out[:, 0, 0, :].astype(np.float64) - 128
        assert (out == out[:, :1, :1, :]).all()  # one shift per image and channel
        shifted = np.abs(delta).max(1) > 0
        assert binomial_ok(int(shifted.sum()), N)
        d = delta[shifted]
        assert np.abs(d).max() <= limit + 0.5 and np.abs(d).max() > limit - 1.5
        assert d.std() == pytest.approx(limit / math.sqrt(3), rel=0.08)  # uniform on [-limit, limit]
        assert abs(np.corrcoef(d[:, 0], d[:, 1])[0, 1]) < 0.1  # channels independent
        stats.append(d.std())
    assert stats[0] == pytest.approx(stats[1], rel=0.1)


def test_rgb_shift_clamps_to_pixel_range():
    images = np.full((200, 4, 4, 3), 250, np.uint8)
    out = run_batch(images, rgb_shift=20)
    assert out.max() == 255 and (out[..., 0] > 250).any()


def test_rotate_matches_cv2_for_a_fixed_angle():
    import cv2

    A = aug._albumentations()
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), (7, 7), 2)  # non-square
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    for angle in (12.0, -7.5):
        ref = A.Rotate(limit=(angle, angle), border_mode=aug._border_mode(), p=1.0)(image=img)["image"]
        ours = aug._rotate(x, torch.tensor([angle]))[0].permute(1, 2, 0).numpy()
        assert np.abs(ours - ref).max() <= 1.0  # cv2 rounds to uint8 and uses fixed-point weights
        wrong_way = aug._rotate(x, torch.tensor([-angle]))[0].permute(1, 2, 0).numpy()
        assert np.abs(wrong_way - ref).mean() > 3


def estimate_angles(out: np.ndarray, ramp: float) -> np.ndarray:
    """Angle (degrees) of each rotated ramp image, by least squares on the centre patch."""
    size = out.shape[1]
    c = (size - 1) / 2
    sl = slice(size // 2 - 10, size // 2 + 10)
    yy, xx = np.meshgrid(np.arange(size)[sl] - c, np.arange(size)[sl] - c, indexing="ij")
    design = np.stack([np.ones(yy.size), xx.ravel(), yy.ravel()], 1)
    coef = np.linalg.lstsq(design, out[:, sl, sl, 0].reshape(len(out), -1).T.astype(np.float64), rcond=None)[0]
    # R = ramp * x_src with x_src = cos(t) x - sin(t) y about the centre (albumentations' convention)
    return np.degrees(np.arctan2(-coef[2], coef[1]))


def test_rotate_angle_distribution_and_border_match():
    limit, size, ramp = 15, 64, 2.0
    c = (size - 1) / 2
    xx = np.arange(size) - c
    ramp_img = np.broadcast_to((128 + ramp * xx)[None, :, None], (size, size, 3)).round().astype(np.uint8)
    images = np.repeat(ramp_img[None], 1000, 0)
    spreads = []
    for out in (run_batch(images, rotate=limit), run_albu(images, rotate=limit)):
        angles = estimate_angles(out, ramp)
        rotated = np.abs(angles) > 0.3
        assert binomial_ok(int(rotated.sum()), len(angles))
        a = angles[rotated]
        assert np.abs(a).max() <= limit + 0.5 and np.abs(a).max() > limit - 1.5
        assert (a > 0).mean() == pytest.approx(0.5, abs=0.1)
        assert a.std() == pytest.approx(limit / math.sqrt(3), rel=0.1)
        spreads.append(a.std())
    assert spreads[0] == pytest.approx(spreads[1], rel=0.12)
    # border: reflection, never a constant (black) fill in the corners
    const = np.full((200, 32, 32, 3), 77, np.uint8)
    for out in (run_batch(const, rotate=30), run_albu(const, rotate=30)):
        assert np.abs(out.astype(np.float32) - 77).max() < 1e-3


# ------------------------------------------------------------------ albumentations pipelines


def test_pipelines_emit_no_warnings():
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ds, size in (("cifar10", 32), ("tinyimagenet", 64)):
            k = resolve(ds, cutout=16 if ds == "tinyimagenet" else None)
            tr = aug.albumentations_train(mean=MEAN, std=STD, image_size=size, **k)
            ev = aug.albumentations_eval(mean=MEAN, std=STD)
            steps = aug.albumentations_steps(mean=MEAN, image_size=size, **k)
            for _ in range(20):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                tr(image=img), ev(image=img)
                for step in steps.values():
                    assert step(image=img)["image"].shape == img.shape


def test_steps_are_the_enabled_ones_in_order():
    steps = aug.albumentations_steps(mean=MEAN, image_size=64, **resolve("tinyimagenet"))
    assert list(steps) == ["pad + random crop", "horizontal flip", "rotate ±15°", "RGB shift ±20"]
    assert list(aug.albumentations_steps(mean=MEAN, image_size=32, **OFF)) == []


def test_pipelines_give_normalized_chw_tensors():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    mean = tuple(imgs.mean((0, 1, 2)) / 255)
    std = tuple(imgs.std((0, 1, 2)) / 255)
    ev = aug.albumentations_eval(mean=mean, std=std)
    out = torch.stack([ev(image=im)["image"] for im in imgs])
    assert out.dtype == torch.float32 and out.shape == (64, 3, 32, 32)
    assert out.mean((0, 2, 3)).numpy() == pytest.approx(0, abs=1e-3)
    assert out.std((0, 2, 3)).numpy() == pytest.approx(1, abs=1e-2)
    # channel order kept: a red-only image is positive in channel 0 only
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    r = ev(image=red)["image"].mean((1, 2)).numpy()
    assert r[0] > 0 > r[1] and r[2] < 0
    # train on a constant image at the dataset mean: normalized to ~0 everywhere, hole included
    const = np.broadcast_to(np.array(aug._cutout_fill(MEAN), np.uint8), (32, 32, 3)).copy()
    tr = aug.albumentations_train(mean=MEAN, std=STD, image_size=32, **resolve("cifar10"))
    t = tr(image=const)["image"]
    assert t.shape == (3, 32, 32) and t.abs().max() < 0.5 / 255 / min(STD)


def test_seed_albumentations_is_reproducible_and_uncorrelated():
    A = aug._albumentations()
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4, :4] = 200

    def flips(t, n=400):
        res = []
        for _ in range(n):
            bright = t(image=img)["image"][..., 0] == 200
            res.append((bright[:, 7].any(), bright[7].any()))  # (horizontal, vertical)
        return np.array(res)

    def make():
        return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])

    t1, t2 = make(), make()
    aug.seed_albumentations(transform=t1, seed=3)
    aug.seed_albumentations(transform=t2, seed=3)
    f1, f2 = flips(t1), flips(t2)
    assert np.array_equal(f1, f2)
    assert binomial_ok(int((f1[:, 0] == f1[:, 1]).sum()), len(f1))  # the two steps decide independently
    with pytest.raises(ValueError, match="seed"):
        aug.seed_albumentations(transform=t1, seed=-1)


def test_notebook_02s_preview_is_the_recipes_steps_then_all_of_them_together():
    from eva_helpers.data import synthetic
    from eva_helpers.recipe import load_recipe
    from eva_helpers.run_setup import augmentation_steps

    data = synthetic(n_train=4, name="cifar10")
    steps = augmentation_steps(load_recipe(cutout=0), data)  # pad 4 and flip: cifar10's defaults, no cutout
    assert list(steps) == ["pad + random crop", "horizontal flip", "all together"]
    image = position_image()
    together = steps["all together"]
    aug.seed_albumentations(transform=together, seed=0)
    outs = [together(image=image)["image"] for _ in range(40)]
    # each output is a 32x32 window of the reflect-padded image, mirrored or not: no other change
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="reflect")
    windows = {padded[i : i + 32, j : j + 32].tobytes() for i in range(9) for j in range(9)}
    windows |= {padded[i : i + 32, j : j + 32][:, ::-1].tobytes() for i in range(9) for j in range(9)}
    assert all(o.shape == image.shape and o.tobytes() in windows for o in outs)
    mirrored = [bool(o[0, 0, 2] < o[0, -1, 2]) for o in outs]  # blue falls left to right unless mirrored
    assert any(mirrored) and not all(mirrored)
    assert len({o.tobytes() for o in outs}) > 10  # and the crops move
    assert list(augmentation_steps(load_recipe(pad=0, flip=False, cutout=0), data)) == ["all together"]
