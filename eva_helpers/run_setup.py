"""A run's setup from its Recipe: the seeded network, the augmentation, the loaders, the precision, the optimiser.

What training (training.fit) and the LR range test (peak.py) share, so that the range test measures the run
that will follow: `setup = prepare(new_model(recipe, data), data, recipe)`.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .augment import albumentations_steps, albumentations_train, resolve_augment
from .data import ImageData
from .device import pick_device, pick_precision, rank_and_world
from .loaders import eval_batch_size, make_loaders
from .models import build_model
from .recipe import OptimRecipe, Recipe
from .schedule import one_cycle


@dataclass
class Setup:
    """What training and the LR range test share: the model placed on its device, the loaders, the precision."""

    model: nn.Module
    data: ImageData
    recipe: Recipe
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype; None is fp32
    augment: dict  # the resolved augmentation knobs
    train_loader: Any
    test_loader: Any
    rank: int = 0
    world: int = 1


def new_model(recipe: Recipe, data: ImageData) -> nn.Module:
    """The recipe's network for `data`'s classes, freshly initialised from the recipe's seed (the same every time)."""
    return build_model(name=recipe.network.model, num_classes=data.num_classes, seed=recipe.machine.seed,
                       logit_scale=recipe.network.logit_scale)  # fmt: skip


def augmentation(recipe: Recipe, data: ImageData) -> dict[str, Any]:
    """The recipe's augmentation for `data`: what it leaves None is the dataset's default (notebook 02 shows it)."""
    a = recipe.augment
    return resolve_augment(dataset=data.name, pad=a.pad, flip=a.flip, cutout=a.cutout, rotate=a.rotate,
                           rgb_shift=a.rgb_shift)  # fmt: skip


def augmentation_steps(recipe: Recipe, data: ImageData) -> dict[str, Any]:
    """Notebook 02's preview: each albumentations step the recipe enables on `data`, alone, then all together."""
    knobs = augmentation(recipe, data)
    steps = albumentations_steps(mean=data.mean, image_size=data.image_size, **knobs)
    together = albumentations_train(mean=data.mean, std=data.std, image_size=data.image_size, normalize=False, **knobs)
    return {**steps, "all together": together}


def prepare(model: nn.Module, data: ImageData, recipe: Recipe, *, rank: int | None = None,
            world: int | None = None) -> Setup:  # fmt: skip
    """Place the model on the device, build the loaders with the recipe's augmentation, choose the precision.

    rank and world default to this process's under torchrun (0 and 1 otherwise).
    """
    here_rank, here_world = rank_and_world()
    rank, world = here_rank if rank is None else rank, here_world if world is None else world
    machine = recipe.machine
    dev = pick_device(machine.device)
    if dev.type == "cuda" and here_world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", here_rank)))
    tune_backends(dev)
    augment = augmentation(recipe, data)
    layout = torch.channels_last if machine.channels_last else torch.contiguous_format
    model = model.to(device=dev, memory_format=layout)
    share = len(range(rank, len(data.y_test), world))  # this rank's held-out images
    batch_size = recipe.optim.batch_size
    train_loader, test_loader = make_loaders(
        data=data, batch_size=batch_size, device=dev, augment=augment, loader=machine.loader, seed=machine.seed,
        num_workers=machine.num_workers, channels_last=machine.channels_last, rank=rank, world_size=world,
        eval_batch_size=eval_batch_size(n=share, cap=max(batch_size, 1000) if dev.type == "cuda" else batch_size),
    )  # fmt: skip
    return Setup(model=model, data=data, recipe=recipe, device=dev,
                 amp_dtype=pick_precision(precision=machine.precision, device=dev), augment=augment,
                 train_loader=train_loader, test_loader=test_loader, rank=rank, world=world)  # fmt: skip


def tune_backends(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once: training shapes are fixed, the last batch dropped."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def make_sgd(*, model: nn.Module, lr: float, momentum: float, nesterov: bool, weight_decay: float) -> torch.optim.SGD:
    """The recipe's optimiser: SGD with momentum (Nesterov where momentum > 0) and L2 weight decay.

    On CUDA it is torch's fused SGD: fewer kernels, and fp16's inf check stays on the GPU (no host sync).
    """
    params = list(model.parameters())
    fused = "fused" in inspect.signature(torch.optim.SGD).parameters and all(p.is_cuda for p in params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                           weight_decay=weight_decay, **({"fused": True} if fused else {}))  # fmt: skip


def recipe_sgd(model: nn.Module, optim: OptimRecipe, *, lr: float) -> torch.optim.SGD:
    """make_sgd with the recipe's momentum, Nesterov and weight decay: the one optimiser of training and range test."""
    return make_sgd(model=model, lr=lr, momentum=optim.momentum, nesterov=optim.nesterov,
                    weight_decay=optim.weight_decay)  # fmt: skip


@dataclass
class OneCycle:
    """What a training loop steps: the optimiser, its One-Cycle schedule, the fp16 loss scaler, the loss, the EMA."""

    optimizer: torch.optim.SGD
    scheduler: Any
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    ema: AveragedModel | None  # the weights' moving average (BatchNorm's statistics too), when the recipe keeps one


def one_cycle_parts(model: nn.Module, setup: Setup, *, max_lr: float) -> OneCycle:
    """The recipe's One-Cycle SGD at this peak for `model` (training.fit's and the probe's rehearsals')."""
    o = setup.recipe.optim
    optimizer = recipe_sgd(model, o, lr=max_lr)
    scheduler = one_cycle(optimizer=optimizer, max_lr=max_lr, epochs=o.epochs, peak_epoch=o.peak_epoch,
                          steps_per_epoch=len(setup.train_loader), div_factor=o.div_factor,
                          final_div_factor=o.final_div_factor)  # fmt: skip
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(o.ema), use_buffers=True) if o.ema else None
    return OneCycle(optimizer=optimizer, scheduler=scheduler,
                    scaler=torch.amp.GradScaler(setup.device.type, enabled=setup.amp_dtype == torch.float16),
                    criterion=nn.CrossEntropyLoss(label_smoothing=o.label_smoothing), ema=ema)  # fmt: skip
