"""The CIFAR-10 recipe end to end (wall-clock and accuracy), and the same short recipe in fp32 against bf16."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import Log, _load, _quiet, _sync, get_data, machine

from eva_helpers.data import ImageData
from eva_helpers.device import pick_device
from eva_helpers.recipe import Recipe, load_recipe, read_config
from eva_helpers.train import run

RECIPE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cifar10_custom_resnet.yaml"
# The recipe's peak LR when --max_lr is not given. The config's max_lr is null (LR range test first);
# 0.05 sits in the range the seed notebooks' range tests found for this network with SGD at batch 512
# (2.3e-2 .. 5.5e-2, 88.9-89.2% in 24 epochs). --max_lr none runs the range test instead.
RECIPE_MAX_LR = 0.05
# The precision check: a short recipe that a 2-core CPU runs twice in a few minutes.
PRECISION_CHECK = {
    "train_limit": 2000,
    "test_limit": 1000,
    "epochs": 3,
    "peak_epoch": 1,
    "batch_size": 128,
    "max_lr": 0.02,
}


def scale_peak(*, epochs: int, config: dict[str, Any]) -> int:
    """The peak epoch at the config's share of training (5 of 24) for a run of `epochs` epochs (at least 1)."""
    return (
        config["peak_epoch"]
        if epochs == config["epochs"]
        else max(1, round(config["peak_epoch"] * epochs / config["epochs"]))
    )


def _bench_recipe(
    *,
    data: ImageData,
    data_dir: str | None,
    epochs: int | None,
    batch_size: int | None,
    max_lr: float | None,
    device: str,
    precision: str,
    compile_model: bool,
    out_dir: str,
    seed: int,
    progress: bool,
    peak_epoch: int | None = None,
) -> Recipe:
    """The recipe of configs/cifar10_custom_resnet.yaml with this run's overrides."""
    config = read_config(RECIPE_CONFIG)
    epochs = epochs or config["epochs"]
    return load_recipe(
        RECIPE_CONFIG,
        dataset=data.name,
        data_dir=data_dir or "synthetic",
        download=False,
        epochs=epochs,
        peak_epoch=peak_epoch or scale_peak(epochs=epochs, config=config),
        batch_size=batch_size or config["batch_size"],
        max_lr=max_lr,
        device=device,
        precision=precision,
        compile=compile_model,
        loader="device",
        channels_last=True,
        out_dir=out_dir,
        seed=seed,
        progress=progress,
        resume=False,
    )


def _fit(*, data: ImageData, recipe: Recipe) -> tuple[dict[str, Any], float]:
    """The recipe as the train command runs it (train.run) on `data`: its metrics and wall-clock seconds."""
    t0 = time.perf_counter()
    result = run(recipe, data=data)
    _sync(pick_device(recipe.machine.device))
    return result.metrics, time.perf_counter() - t0


def _train_img_s(result: dict[str, Any], batch_size: int) -> float:
    """Training images per second over the epochs, per-epoch evaluation included (fit times whole epochs)."""
    return result["steps_per_epoch"] * batch_size * result["epochs_done"] / sum(result["epoch_seconds"])


def recipe(
    *,
    data_dir: str | None = None,
    dataset: str = "imagefolder",
    epochs: int | None = None,
    train_limit: int = 0,
    test_limit: int = 0,
    batch_size: int | None = None,
    max_lr: float | None = RECIPE_MAX_LR,
    device: str = "auto",
    precision: str = "auto",
    compile_model: bool = False,
    out_dir: str | None = None,
    seed: int = 1,
    progress: bool = False,
    log: Log = _quiet,
) -> dict[str, Any]:
    """The CIFAR-10 recipe end to end (load data, train.fit): wall-clock seconds and final test accuracy."""
    t0 = time.perf_counter()
    data, data_line = get_data(
        data_dir=data_dir,
        dataset=dataset,
        model="custom_resnet",
        train_limit=train_limit,
        test_limit=test_limit,
        seed=seed,
        n_random=max(train_limit, batch_size or 512),
    )
    load_seconds = time.perf_counter() - t0
    log(f"data: {data_line} ({load_seconds:.1f}s)")
    load_start = _load()
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as tmp:
        r = _bench_recipe(
            data=data,
            data_dir=data_dir,
            epochs=epochs,
            batch_size=batch_size,
            max_lr=max_lr,
            device=device,
            precision=precision,
            compile_model=compile_model,
            out_dir=out_dir or tmp,
            seed=seed,
            progress=progress,
        )
        log(
            f"recipe: {r.optim.epochs} epochs, peak {r.optim.peak_epoch}, batch {r.optim.batch_size}, "
            f"max_lr {'LR range test' if max_lr is None else max_lr}"
        )
        result, seconds = _fit(data=data, recipe=r)
    dev = pick_device(device)
    return {
        "mode": "recipe",
        **machine(dev),
        "seconds": round(seconds, 2),
        "test_acc": result["test_acc"],
        "best_test_acc": result["best_test_acc"],
        "epochs": r.optim.epochs,
        "peak_epoch": r.optim.peak_epoch,
        "batch_size": r.optim.batch_size,
        "max_lr": result["max_lr"],
        "max_lr_source": result["max_lr_source"],
        "precision": result["precision"],
        "compile": compile_model,
        "model": r.network.model,
        "data": data_line,
        "n_train": result["n_train"],
        "n_test": result["n_test"],
        "load_seconds": round(load_seconds, 2),
        "epoch_seconds_sum": round(sum(result["epoch_seconds"]), 2),
        "train_img_s": round(_train_img_s(result, r.optim.batch_size), 2),
        "seed": seed,
        "loadavg_start": load_start,
        "loadavg_end": _load(),
    }


def precision_check(
    *,
    data_dir: str | None = None,
    dataset: str = "imagefolder",
    train_limit: int | None = None,
    test_limit: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    max_lr: float | None = None,
    device: str = "auto",
    seed: int = 1,
    log: Log = _quiet,
) -> dict[str, Any]:
    """The same short recipe (same seed, data, device path) in fp32 and in bf16: test accuracy and img/s of each."""
    s = {
        **PRECISION_CHECK,
        **{
            k: v
            for k, v in {
                "train_limit": train_limit,
                "test_limit": test_limit,
                "epochs": epochs,
                "batch_size": batch_size,
                "max_lr": max_lr,
            }.items()
            if v is not None
        },
    }
    peak = scale_peak(epochs=s["epochs"], config=read_config(RECIPE_CONFIG))
    data, data_line = get_data(
        data_dir=data_dir,
        dataset=dataset,
        model="custom_resnet",
        train_limit=s["train_limit"],
        test_limit=s["test_limit"],
        seed=seed,
        n_random=s["train_limit"],
    )
    log(f"data: {data_line}")
    load_start = _load()
    out: dict[str, dict[str, Any]] = {}
    for precision in ("fp32", "bf16"):
        with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
            r = _bench_recipe(
                data=data,
                data_dir=data_dir,
                epochs=s["epochs"],
                batch_size=s["batch_size"],
                max_lr=s["max_lr"],
                device=device,
                precision=precision,
                compile_model=False,
                out_dir=tmp,
                seed=seed,
                progress=False,
                peak_epoch=peak,
            )
            result, seconds = _fit(data=data, recipe=r)
        out[precision] = {
            "test_acc": result["test_acc"],
            "img_s": round(_train_img_s(result, s["batch_size"]), 2),
            "seconds": round(seconds, 2),
            "final_train_loss": result["history"][-1]["train_loss"],
        }
        log(f"{precision}: test acc {result['test_acc']:.4f}, {out[precision]['img_s']:.1f} img/s, {seconds:.1f}s")
    n_test = len(data.y_test)
    p = out["fp32"]["test_acc"]
    return {
        "mode": "precision_check",
        **machine(pick_device(device)),
        "model": "custom_resnet",
        "data": data_line,
        **{k: s[k] for k in ("epochs", "batch_size", "max_lr")},
        "peak_epoch": peak,
        "n_train": len(data.y_train),
        "n_test": n_test,
        "seed": seed,
        "fp32_test_acc": out["fp32"]["test_acc"],
        "bf16_test_acc": out["bf16"]["test_acc"],
        "acc_diff": round(out["bf16"]["test_acc"] - p, 4),
        # one run each: a difference within ~2 standard errors of one accuracy is noise, not a cost
        "acc_stderr": round(float(np.sqrt(max(p * (1 - p), 1e-12) / max(n_test, 1))), 4),
        "fp32_img_s": out["fp32"]["img_s"],
        "bf16_img_s": out["bf16"]["img_s"],
        "bf16_speedup": round(out["bf16"]["img_s"] / out["fp32"]["img_s"], 4),
        "runs": out,
        "loadavg_start": load_start,
        "loadavg_end": _load(),
    }
