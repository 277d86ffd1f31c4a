"""What every benchmark shares: the data it runs on, the machine it ran on, and a clock that waits for the GPU."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import torch

from eva_helpers.data import ImageData, load_data, synthetic
from eva_helpers.device import cpu_has_bf16, provenance, usable_cpus
from eva_helpers.recipe import load_recipe

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _synthetic(*, model: str, n_train: int, seed: int) -> ImageData:
    """Random images of the model's usual dataset shape: CIFAR-10's 32 px for custom_resnet, Tiny ImageNet's 64 px."""
    if model == "custom_resnet":
        return synthetic(n_train=n_train, seed=seed)
    return synthetic(n_train=n_train, image_size=64, num_classes=200, name="tinyimagenet", seed=seed)


def get_data(
    *, data_dir: str | None, dataset: str, model: str, train_limit: int, test_limit: int, seed: int, n_random: int
) -> tuple[ImageData, str]:
    """The real dataset in data_dir (cached decode), or n_random random images; plus a line saying which."""
    if data_dir is None:
        data = _synthetic(model=model, n_train=n_random, seed=seed)
        return data, (
            f"random uint8 images in memory ({len(data.y_train)} train, {data.image_size}x"
            f"{data.image_size}, {data.num_classes} classes)"
        )
    recipe = load_recipe(dataset=dataset, data_dir=data_dir, train_limit=train_limit, test_limit=test_limit,
                         seed=seed, download=False, progress=False)  # fmt: skip
    data = load_data(recipe)
    return data, (
        f"{dataset} {data.source} ({len(data.y_train)} train, {len(data.y_test)} {data.test_split}, "
        f"{data.image_size}x{data.image_size}, {data.num_classes} classes)"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers depend on: device, its name, CPU count, threads, versions, load average."""
    return {
        "device": str(device),
        "device_name": provenance(device)["device_name"],
        "cpu_count": usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_has_bf16": cpu_has_bf16(),
    }
