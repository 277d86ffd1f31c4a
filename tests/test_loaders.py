"""The loaders: ranks partition each global batch, both training paths draw the same order, evaluation is plain."""

import numpy as np
import pytest
import torch

from eva_helpers import augment as aug
from eva_helpers.data import synthetic
from eva_helpers.loaders import DeviceLoader, TorchLoader, epoch_seed, make_loaders

OFF = dict(pad=0, flip=False, cutout=0, rotate=0, rgb_shift=0)


@pytest.fixture(scope="module")
def data():
    d = synthetic(n_train=64, n_test=10, image_size=8, seed=0)
    d.y_train[:] = np.arange(64) % 10  # labels are not the order; the images are distinct anyway
    return d


def device_loader(data, **kw):
    return DeviceLoader(
        x=data.x_train,
        y=data.y_train,
        batch_size=16,
        device="cpu",
        mean=data.mean,
        std=data.std,
        shuffle=True,
        drop_last=True,
        seed=3,
        channels_last=False,
        **kw,
    )


def batches(loader, epoch):
    loader.set_epoch(epoch)
    return list(loader)


@pytest.mark.parametrize("world", [2, 4])
def test_the_ranks_slices_partition_each_global_batch(data, world):
    whole = batches(device_loader(data), epoch=1)
    ranks = [batches(device_loader(data, rank=r, world_size=world), epoch=1) for r in range(world)]
    assert all(len(r) == len(whole) == 64 // 16 for r in ranks)
    for step, (x, y) in enumerate(whole):
        torch.testing.assert_close(torch.cat([r[step][0] for r in ranks]), x, rtol=0, atol=0)
        assert torch.equal(torch.cat([r[step][1] for r in ranks]), y)


def test_an_epoch_is_drawn_again_the_same_and_another_epoch_differently(data):
    loader = device_loader(data)
    first, again, other = batches(loader, 0), batches(loader, 0), batches(loader, 1)
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[0], b[0]) for a, b in zip(first, again))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))
    assert epoch_seed(seed=3, epoch=0) != epoch_seed(seed=3, epoch=1) != epoch_seed(seed=3, epoch=1, rank=1)


@pytest.mark.parametrize("world", [1, 2])
def test_both_training_loaders_draw_the_same_images_in_the_same_order(data, world):
    transform = aug.albumentations_train(mean=data.mean, std=data.std, image_size=data.image_size, **OFF)
    for rank in range(world):
        ours = batches(device_loader(data, rank=rank, world_size=world), epoch=2)
        torch_loader = TorchLoader(
            x=data.x_train,
            y=data.y_train,
            batch_size=16,
            transform=transform,
            num_workers=0,
            seed=3,
            rank=rank,
            world_size=world,
        )
        reference = batches(torch_loader, epoch=2)
        assert len(torch_loader) == len(ours) == len(reference)
        for (x, y), (rx, ry) in zip(ours, reference):
            assert torch.equal(y, ry)
            torch.testing.assert_close(x, rx, rtol=0, atol=1e-5)  # the same normalisation, to float rounding


def test_evaluation_batches_are_albumentations_eval_of_every_image_in_order(data):
    train, test = make_loaders(data=data, batch_size=4, device=torch.device("cpu"), augment=OFF, channels_last=False)
    x = torch.cat([b[0] for b in test])
    y = torch.cat([b[1] for b in test])
    ev = aug.albumentations_eval(mean=data.mean, std=data.std)
    expected = torch.stack([ev(image=im)["image"] for im in data.x_test])
    assert torch.equal(y, torch.from_numpy(data.y_test)) and len(test) == 3  # 10 images: 4 + 4 + 2
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)
    assert len(train) == 64 // 4


@pytest.mark.parametrize("world", [1, 2])
def test_evaluation_batches_are_bitwise_what_inference_normalize_and_torchvision_give(data, world):
    """Training's held-out batches, evaluation and the app see the same numbers: one normalisation (inference)."""
    from torchvision.transforms.functional import normalize as tv_normalize

    from eva_helpers.inference import normalize

    for rank in range(world):
        _, test = make_loaders(data=data, batch_size=4, device=torch.device("cpu"), augment=OFF, rank=rank,
                               world_size=world)  # fmt: skip
        got = torch.cat([x for x, _ in test])
        assert got.is_contiguous(memory_format=torch.channels_last) and got.dtype == torch.float32
        mine = data.x_test[rank::world]
        assert torch.equal(got, normalize(images=mine, mean=data.mean, std=data.std))
        pixels = torch.from_numpy(mine).permute(0, 3, 1, 2).float()
        oracle = tv_normalize(pixels, mean=[m * 255 for m in data.mean], std=[s * 255 for s in data.std])
        assert torch.equal(got, oracle)


def test_evaluation_is_split_across_ranks_without_overlap(data):
    parts = [
        DeviceLoader(
            x=data.x_test,
            y=data.y_test,
            batch_size=4,
            device="cpu",
            mean=data.mean,
            std=data.std,
            rank=r,
            world_size=3,
            channels_last=False,
        )
        for r in range(3)
    ]
    seen = sorted(int(v) for p in parts for _, y in p for v in y)
    assert seen == sorted(data.y_test.tolist()) and [len(p) for p in parts] == [1, 1, 1]  # 4, 3 and 3 images
