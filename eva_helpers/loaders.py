"""Batches for training and evaluation.

Two training paths give the same augmentations:
- "device": the whole split lives on the training device as one uint8 tensor; each step gathers a
  batch, augments it in one go (augment.BatchAugment), normalises it and hands it over. No
  DataLoader, no per-image Python: this is what keeps a GPU busy (airbench, Page's ResNet-9).
- "torch": the seed-style reference, a DataLoader running albumentations image by image.

Every epoch's shuffle and augmentation are drawn from generators seeded by (seed, epoch, rank), so
an epoch is the same whether the run was interrupted before it or not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import augment as aug_lib
from .device import auto_workers
from .inference import pixel_stats, standardize
from .validate import DataError, choice

LOADERS = ("auto", "device", "torch")  # "auto" is "device": the fast path wherever it runs


def epoch_seed(*, seed: int, epoch: int, rank: int = 0) -> int:
    """A distinct, reproducible 63-bit seed for each (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch + 1, rank]).generate_state(1, np.uint64)[0]) >> 1


def eval_batch_size(*, n: int, cap: int) -> int:
    """The largest batch size up to cap that divides n images, so no evaluation batch is ragged.

    A compiled model would compile again for a short last batch. Where n has no divisor above cap / 4
    (a prime number of images, say), cap itself: one ragged batch beats thousands of tiny ones.
    """
    best = max((d for d in range(1, min(cap, n) + 1) if n % d == 0), default=1)
    return best if best * 4 > min(cap, n) else min(cap, n)


class _GlobalBatches:
    """What both training loaders share: global batches drawn per epoch, each rank taking its own slice."""

    batch_size: int
    drop_last: bool
    rank: int
    world_size: int
    seed: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation the next iteration draws."""
        self.epoch = epoch

    def _num_images(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        """Steps per epoch: global batches, the same on every rank."""
        n = self._num_images()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def global_order(self) -> torch.Tensor:
        """This epoch's shuffle of all images (the same on every rank)."""
        g = torch.Generator().manual_seed(epoch_seed(seed=self.seed, epoch=self.epoch))
        return torch.randperm(self._num_images(), generator=g)

    def rank_slice(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of one global batch: the ranks' slices partition it."""
        per_rank = len(batch) // self.world_size
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]


class DeviceLoader(_GlobalBatches):
    """Batches from a uint8 (N, H, W, 3) array held on `device`, optionally augmented with BatchAugment.

    Training (shuffle=True) draws global batches and gives each rank its slice; evaluation
    (shuffle=False) gives each rank every world_size-th image, in order.
    """

    def __init__(
        self,
        *,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        device: torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        augment: aug_lib.BatchAugment | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.device = torch.device(device)
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.seed, self.channels_last = augment, seed, channels_last
        self.rank, self.world_size = rank, world_size
        self.stats = pixel_stats(mean=mean, std=std, device=self.device)  # once, not per batch
        self.epoch = 0

    def _num_images(self) -> int:
        n = len(self.y)
        return n if self.shuffle else len(range(self.rank, n, self.world_size))  # evaluation: this rank's share

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = (self.global_order() if self.shuffle else torch.arange(self.rank, n, self.world_size)).to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(
            epoch_seed(seed=self.seed, epoch=self.epoch, rank=self.rank)
        )
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.shuffle:
                idx = self.rank_slice(idx)
            xb = self.x[idx].permute(0, 3, 1, 2)  # NHWC storage seen as NCHW: already channels_last strides
            if self.augment is not None:
                xb = self.augment(xb, generator=gen)  # uint8 in, float out
            xb = standardize(xb, stats=self.stats)  # as inference.normalize: the same inputs at evaluation
            xb = xb.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            yield xb, self.y[idx]


class AlbumentationsDataset(Dataset):
    """Images from a uint8 (N, H, W, 3) array through an albumentations pipeline, one at a time."""

    def __init__(self, *, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x, np.asarray(y, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(image=self.x[i])["image"], int(self.y[i])


def _seed_worker(worker_id: int) -> None:
    """Seed each worker's copy of the pipeline from the loader's per-epoch generator."""
    info = torch.utils.data.get_worker_info()
    aug_lib.seed_albumentations(transform=info.dataset.transform, seed=torch.initial_seed() % 2**32)


class TorchLoader(_GlobalBatches):
    """The seed-style path: DataLoader + per-image albumentations, batches on the CPU until the engine moves them."""

    def __init__(
        self,
        *,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        transform,
        num_workers: int,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
    ):
        self.dataset = AlbumentationsDataset(x=x, y=y, transform=transform)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.drop_last, self.rank, self.world_size, self.pin_memory = drop_last, rank, world_size, pin_memory
        self.epoch = 0

    def _num_images(self) -> int:
        return len(self.dataset)

    def _loader(self) -> DataLoader:
        order = self.global_order()
        per_rank = self.batch_size // self.world_size
        # each rank reads its own slice of every global batch, as DeviceLoader does
        mine = torch.cat(
            [self.rank_slice(order[b * self.batch_size : (b + 1) * self.batch_size]) for b in range(len(self))]
        )
        worker_gen = torch.Generator().manual_seed(epoch_seed(seed=self.seed, epoch=self.epoch, rank=self.rank))
        if self.num_workers == 0:
            aug_lib.seed_albumentations(
                transform=self.dataset.transform, seed=int(torch.randint(2**31, (1,), generator=worker_gen))
            )
        return DataLoader(
            self.dataset,
            batch_size=per_rank,
            sampler=mine.tolist(),
            num_workers=self.num_workers,
            worker_init_fn=_seed_worker if self.num_workers else None,
            generator=worker_gen,
            pin_memory=self.pin_memory,
            drop_last=self.drop_last,
            persistent_workers=False,
        )

    def __iter__(self):
        return iter(self._loader())


def make_loaders(
    *,
    data,
    batch_size: int,
    device: torch.device,
    augment: dict,
    loader: str = "auto",
    seed: int = 0,
    num_workers: int | None = None,
    channels_last: bool = True,
    rank: int = 0,
    world_size: int = 1,
    eval_batch_size: int | None = None,
):
    """The training and held-out loaders for `data` (an ImageData); training drops the last partial batch."""
    choice("loader", loader, LOADERS)
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} must divide evenly across {world_size} processes.")
    if len(data.y_train) < batch_size:
        raise DataError(
            f"the training split has {len(data.y_train)} images, fewer than one batch (batch_size={batch_size}); "
            f"lower batch_size or raise train_limit."
        )
    if len(data.y_test) < world_size:
        raise DataError(
            f"the {data.test_split} split has {len(data.y_test)} images, fewer than the {world_size} processes "
            f"evaluating it; raise test_limit or use fewer processes."
        )
    device = torch.device(device)
    common = dict(mean=data.mean, std=data.std, channels_last=channels_last, rank=rank, world_size=world_size)
    evaluation = DeviceLoader(
        x=data.x_test, y=data.y_test, batch_size=eval_batch_size or batch_size, device=device, **common
    )
    if loader in ("auto", "device"):
        batch_aug = aug_lib.BatchAugment(mean=data.mean, **augment)
        train = DeviceLoader(
            x=data.x_train,
            y=data.y_train,
            batch_size=batch_size,
            device=device,
            augment=batch_aug,
            shuffle=True,
            drop_last=True,
            seed=seed,
            **common,
        )
    else:
        transform = aug_lib.albumentations_train(mean=data.mean, std=data.std, image_size=data.image_size, **augment)
        workers = auto_workers() if num_workers is None else num_workers
        train = TorchLoader(
            x=data.x_train,
            y=data.y_train,
            batch_size=batch_size,
            transform=transform,
            num_workers=workers,
            seed=seed,
            rank=rank,
            world_size=world_size,
            pin_memory=device.type == "cuda",
        )
    return train, evaluation
