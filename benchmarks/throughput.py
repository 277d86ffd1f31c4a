"""Training img/s of the seed-style pipeline against this project's device path, timed interleaved, medians."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from machine import Log, _load, _quiet, _sync, get_data, machine
from torch import nn

from eva_helpers import engine
from eva_helpers.data import ImageData
from eva_helpers.device import auto_workers, pick_device, precision_name
from eva_helpers.recipe import load_recipe
from eva_helpers.run_setup import new_model, prepare, recipe_sgd
from eva_helpers.validate import whole

# Throughput settings: (warmup steps, timed steps, interleaved repeats) per mode and device kind.
# The warmup absorbs one-off costs (cuDNN/oneDNN kernel choice, torch.compile, DataLoader worker start).
THROUGHPUT_STEPS = {
    "quick": {"cuda": (5, 20, 3), "other": (1, 3, 3)},
    "full": {"cuda": (10, 50, 5), "other": (2, 10, 5)},
}
# Seed notebooks ran on Colab (2 vCPUs) with DataLoader workers on the GPU; on a CPU the project's own
# loader="torch" choice (device.auto_workers: 0 on <= 2 cores) is the baseline's best showing.
SEED_WORKERS_CUDA = 2


class _Stream:
    """Batches from a training loader without end: the next epoch (a fresh shuffle) starts when one runs out."""

    def __init__(self, loader, *, epoch: int):
        self.loader, self.epoch, self._it = loader, epoch, None

    def _next(self):
        while True:
            if self._it is None:
                self.loader.set_epoch(self.epoch)
                self._it = iter(self.loader)
            try:
                return next(self._it)
            except StopIteration:
                self._it, self.epoch = None, self.epoch + 1

    def take(self, n: int) -> _Take:
        """The next n batches as a sized iterable, which is what engine.train_epoch walks."""
        return _Take(self, n)

    def close(self) -> None:
        """Drop the iterator, which stops a DataLoader's workers so they do not compete with the next timing."""
        self._it = None


class _Take:
    def __init__(self, stream: _Stream, n: int):
        self.stream, self.n = stream, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield self.stream._next()


def _pipeline(
    *,
    name: str,
    data: ImageData,
    model_name: str,
    batch_size: int,
    device: torch.device,
    num_workers: int,
    compile_model: bool,
    seed: int,
) -> dict[str, Any]:
    """One side of the comparison, set up by run_setup.prepare as fit does: loader, model, optimiser, precision."""
    ours = name == "ours"
    recipe = load_recipe(model=model_name, batch_size=batch_size, loader="device" if ours else "torch",
                         device=str(device), precision="auto" if ours else "fp32", channels_last=ours,
                         num_workers=num_workers, seed=seed)  # fmt: skip
    setup = prepare(new_model(recipe, data), data, recipe)
    optimizer = recipe_sgd(setup.model, recipe.optim, lr=0.01)  # the recipe's SGD; the LR is moot here
    return {
        "name": name,
        "loader": setup.train_loader,
        "optimizer": optimizer,
        "channels_last": ours,
        "model": torch.compile(setup.model) if ours and compile_model else setup.model,
        "amp_dtype": setup.amp_dtype,
        "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
    }


def _time_once(
    *, side: dict[str, Any], repeat: int, warmup: int, steps: int, batch_size: int, device: torch.device
) -> float:
    """Images per second of `steps` training steps, after `warmup` untimed ones from the same iterator."""
    stream = _Stream(side["loader"], epoch=repeat)
    criterion = nn.CrossEntropyLoss()

    def run(n: int) -> None:
        engine.train_epoch(
            model=side["model"],
            loader=stream.take(n),
            optimizer=side["optimizer"],
            scheduler=side["scheduler"],
            criterion=criterion,
            device=device,
            amp_dtype=side["amp_dtype"],
            channels_last=side["channels_last"],
            progress=False,
        )

    try:
        if warmup:
            run(warmup)
        _sync(device)
        t0 = time.perf_counter()
        run(steps)
        _sync(device)
        return steps * batch_size / (time.perf_counter() - t0)
    finally:
        stream.close()


def throughput(
    *,
    model: str = "custom_resnet",
    data_dir: str | None = None,
    dataset: str = "imagefolder",
    batch_size: int | None = None,
    device: str = "auto",
    steps: int | None = None,
    warmup: int | None = None,
    repeats: int | None = None,
    num_workers: int | None = None,
    compile_model: bool = False,
    quick: bool = False,
    train_limit: int = 0,
    seed: int = 0,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Median training img/s of the seed-style pipeline (a) and the device path (b), timed interleaved a, b, a, b."""
    dev = pick_device(device)
    kind = "cuda" if dev.type == "cuda" else "other"
    d_warmup, d_steps, d_repeats = THROUGHPUT_STEPS["quick" if quick else "full"][kind]
    warmup = d_warmup if warmup is None else warmup
    steps = d_steps if steps is None else steps
    repeats = d_repeats if repeats is None else repeats
    batch_size = batch_size or (512 if dev.type == "cuda" else 128)
    for name, value, low in (
        ("steps", steps, 1),
        ("repeats", repeats, 1),
        ("warmup", warmup, 0),
        ("batch_size", batch_size, 1),
    ):
        whole(f"--{name}", value, low=low)
    if num_workers is None:
        workers, why = (
            (SEED_WORKERS_CUDA, "seed notebooks' Colab setting")
            if dev.type == "cuda"
            else (auto_workers(), "device.auto_workers() for this CPU")
        )
    else:
        workers, why = num_workers, "given"

    per_repeat = (warmup + steps) * batch_size
    data, data_line = get_data(
        data_dir=data_dir,
        dataset=dataset,
        model=model,
        train_limit=train_limit,
        test_limit=100,
        seed=seed,
        n_random=per_repeat,
    )
    if len(data.y_train) < per_repeat:
        log(
            f"note: {len(data.y_train)} training images < {per_repeat} per repeat; loaders wrap to a new epoch "
            f"inside a timing (a DataLoader then restarts its workers)."
        )
    load_start = _load()
    log(f"data: {data_line}")
    log(
        f"device {dev}, batch {batch_size}, warmup {warmup} + {steps} timed steps, {repeats} repeats, "
        f"baseline workers {workers} ({why})"
    )

    sides = {
        name: _pipeline(
            name=name,
            data=data,
            model_name=model,
            batch_size=batch_size,
            device=dev,
            num_workers=workers,
            compile_model=compile_model,
            seed=seed,
        )
        for name in ("baseline", "ours")
    }
    runs: dict[str, list[float]] = {"baseline": [], "ours": []}
    for r in range(repeats):
        for name in ("baseline", "ours"):
            img_s = _time_once(
                side=sides[name], repeat=r, warmup=warmup, steps=steps, batch_size=batch_size, device=dev
            )
            runs[name].append(img_s)
            log(f"repeat {r + 1}/{repeats} {name:<8} {img_s:10.1f} img/s")
    base, ours = round(statistics.median(runs["baseline"]), 2), round(statistics.median(runs["ours"]), 2)
    return {
        "mode": "throughput",
        **machine(dev),
        "model": model,
        "batch_size": batch_size,
        "image_size": data.image_size,
        "num_classes": data.num_classes,
        "data": data_line,
        "baseline_img_s": base,
        "ours_img_s": ours,
        "ratio": round(ours / base, 4),  # the ratio of the printed medians
        "baseline_runs": [round(v, 2) for v in runs["baseline"]],
        "ours_runs": [round(v, 2) for v in runs["ours"]],
        "baseline": {
            "loader": "torch DataLoader + albumentations per image",
            "num_workers": workers,
            "num_workers_why": why,
            "precision": "float32",
            "channels_last": False,
            "compile": False,
        },
        "ours": {
            "loader": "device (DeviceLoader + BatchAugment)",
            "precision": precision_name(sides["ours"]["amp_dtype"]),
            "channels_last": True,
            "compile": compile_model,
        },
        "precision": precision_name(sides["ours"]["amp_dtype"]),
        "channels_last": True,
        "warmup": warmup,
        "steps": steps,
        "repeats": repeats,
        "quick": quick,
        "seed": seed,
        "loadavg_start": load_start,
        "loadavg_end": _load(),
    }
