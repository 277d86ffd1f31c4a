"""Training throughput of the seed-style pipeline against this project's device path, and the recipe's wall-clock.

    python benchmarks/bench.py --quick --data_dir /tmp/cifar10-jpeg         # throughput, a minute or two on a CPU
    python benchmarks/bench.py --data_dir data/cifar10-jpeg                 # throughput, full setting
    python benchmarks/bench.py --recipe --data_dir data/cifar10-jpeg        # 24-epoch recipe: seconds + test accuracy
    python benchmarks/bench.py --recipe --epochs 1 --train_limit 1024 --test_limit 500 --data_dir ...   # tiny try
    python benchmarks/bench.py --precision-check --data_dir /tmp/cifar10-jpeg   # fp32 vs bf16 accuracy, short recipe

Human-readable lines go to stdout as it runs; the LAST line of stdout is always one JSON object.
See benchmarks/README.md for what each mode measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench.py` from a checkout without installing
    sys.path.insert(0, str(ROOT))

from eva_helpers import engine
from eva_helpers.augment import resolve_augment
from eva_helpers.data import ImageData, channel_stats, load_data
from eva_helpers.loaders import auto_workers, make_loaders, usable_cpus
from eva_helpers.models import build_model
from eva_helpers.params import TRAIN_PARAMS, check_params, defaults
from eva_helpers.train import make_sgd, read_config

RECIPE_CONFIG = ROOT / "configs" / "cifar10_custom_resnet.yaml"

# Throughput settings: (warmup steps, timed steps, interleaved repeats) per mode and device kind.
# The warmup absorbs one-off costs (cuDNN/oneDNN kernel choice, torch.compile, DataLoader worker start).
THROUGHPUT_STEPS = {
    "quick": {"cuda": (5, 20, 3), "other": (1, 3, 3)},
    "full": {"cuda": (10, 50, 5), "other": (2, 10, 5)},
}
# Seed notebooks ran on Colab (2 vCPUs) with DataLoader workers on the GPU; on a CPU the project's own
# loader="torch" choice (loaders.auto_workers: 0 on <= 2 cores) is the baseline's best showing.
SEED_WORKERS_CUDA = 2
# The recipe's peak LR when --max_lr is not given. The config's max_lr is null (LR range test first);
# 0.05 sits in the range the seed notebooks' range tests found for this network with SGD at batch 512
# (2.3e-2 .. 5.5e-2, 88.9-89.2% in 24 epochs). --max_lr none runs the range test instead.
RECIPE_MAX_LR = 0.05
# The precision check: a short recipe that a 2-core CPU runs twice in a few minutes.
PRECISION_CHECK = {"train_limit": 2000, "test_limit": 1000, "epochs": 3, "peak_epoch": 1, "batch_size": 128,
                   "max_lr": 0.02}

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ----------------------------------------------------------------------------- data


def random_data(*, model: str, n_train: int, n_test: int = 8, seed: int = 0) -> ImageData:
    """Random uint8 images of the model's usual dataset shape (CIFAR-10 32 px / Tiny ImageNet 64 px), in memory."""
    size, classes, name = (32, 10, "cifar10") if model == "custom_resnet" else (64, 200, "tinyimagenet")
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, size=(n_train, size, size, 3), dtype=np.uint8)
    x_te = rng.integers(0, 256, size=(n_test, size, size, 3), dtype=np.uint8)
    stats = channel_stats(x_tr)
    return ImageData(name=name, classes=[f"class_{i}" for i in range(classes)], x_train=x_tr,
                     y_train=rng.integers(0, classes, n_train).astype(np.int64), x_test=x_te,
                     y_test=rng.integers(0, classes, n_test).astype(np.int64), mean=tuple(stats["mean"]),
                     std=tuple(stats["std"]), test_split="test", source="random")


def get_data(*, data_dir: str | None, dataset: str, model: str, train_limit: int, test_limit: int, seed: int,
             n_random: int) -> tuple[ImageData, str]:
    """The real dataset in data_dir (cached decode), or n_random random images; plus a line saying which."""
    if data_dir is None:
        data = random_data(model=model, n_train=n_random, seed=seed)
        return data, (f"random uint8 images in memory ({len(data.y_train)} train, {data.image_size}x"
                      f"{data.image_size}, {data.num_classes} classes)")
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data_dir {path} does not exist; pass the unzipped CIFAR-10 folder "
                                f"(train/ and test/ inside) or leave --data_dir out for random images.")
    data = load_data(dataset=dataset, data_dir=path, train_limit=train_limit, test_limit=test_limit, seed=seed,
                     download=False, progress=False)
    return data, (f"{dataset} {data.source} ({len(data.y_train)} train, {len(data.y_test)} {data.test_split}, "
                  f"{data.image_size}x{data.image_size}, {data.num_classes} classes)")


# ----------------------------------------------------------------------------- machine


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers depend on: device, its name, CPU count, threads, versions, load average."""
    return {"device": str(device), "device_name": _device_name(device), "cpu_count": usable_cpus(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "cpu_has_bf16": engine.cpu_has_bf16()}


# ----------------------------------------------------------------------------- throughput


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


def _pipeline(*, name: str, data: ImageData, model_name: str, batch_size: int, device: torch.device,
              num_workers: int, compile_model: bool, seed: int) -> dict[str, Any]:
    """One side of the comparison: its loader, model, optimiser and precision, ready to step."""
    ours = name == "ours"
    augment = resolve_augment(dataset=data.name)
    loader, _ = make_loaders(data=data, batch_size=batch_size, device=device, augment=augment,
                             loader="device" if ours else "torch", seed=seed, num_workers=num_workers,
                             channels_last=ours, eval_batch_size=batch_size)
    torch.manual_seed(seed)  # both sides start from the same weights
    model = build_model(name=model_name, num_classes=data.num_classes)
    model = model.to(device=device, memory_format=torch.channels_last if ours else torch.contiguous_format)
    optimizer = make_sgd(model=model, lr=0.01, params=defaults(TRAIN_PARAMS))  # the recipe's SGD; LR is moot here
    net = torch.compile(model) if ours and compile_model else model
    return {"name": name, "loader": loader, "model": net, "optimizer": optimizer, "channels_last": ours,
            "amp_dtype": engine.pick_precision(precision="auto", device=device) if ours else None,
            "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)}


def _time_once(*, side: dict[str, Any], repeat: int, warmup: int, steps: int, batch_size: int,
               device: torch.device) -> float:
    """Images per second of `steps` training steps, after `warmup` untimed ones from the same iterator."""
    stream = _Stream(side["loader"], epoch=repeat)
    criterion = nn.CrossEntropyLoss()

    def run(n: int) -> None:
        engine.train_epoch(model=side["model"], loader=stream.take(n), optimizer=side["optimizer"],
                           scheduler=side["scheduler"], criterion=criterion, device=device,
                           amp_dtype=side["amp_dtype"], channels_last=side["channels_last"], progress=False)

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


def throughput(*, model: str = "custom_resnet", data_dir: str | None = None, dataset: str = "imagefolder",
               batch_size: int | None = None, device: str = "auto", steps: int | None = None,
               warmup: int | None = None, repeats: int | None = None, num_workers: int | None = None,
               compile_model: bool = False, quick: bool = False, train_limit: int = 0, seed: int = 0,
               log: Log = _quiet) -> dict[str, Any]:
    """Median training img/s of the seed-style pipeline (a) and the device path (b), timed interleaved a, b, a, b."""
    dev = engine.pick_device(device)
    kind = "cuda" if dev.type == "cuda" else "other"
    d_warmup, d_steps, d_repeats = THROUGHPUT_STEPS["quick" if quick else "full"][kind]
    warmup = d_warmup if warmup is None else warmup
    steps = d_steps if steps is None else steps
    repeats = d_repeats if repeats is None else repeats
    batch_size = batch_size or (512 if dev.type == "cuda" else 128)
    for name, value, low in (("steps", steps, 1), ("repeats", repeats, 1), ("warmup", warmup, 0),
                             ("batch_size", batch_size, 1)):
        if value < low:
            raise ValueError(f"--{name} {value} must be >= {low}.")
    if num_workers is None:
        workers, why = (SEED_WORKERS_CUDA, "seed notebooks' Colab setting") if dev.type == "cuda" \
            else (auto_workers(), "loaders.auto_workers() for this CPU")
    else:
        workers, why = num_workers, "given"

    per_repeat = (warmup + steps) * batch_size
    data, data_line = get_data(data_dir=data_dir, dataset=dataset, model=model, train_limit=train_limit,
                               test_limit=100, seed=seed, n_random=per_repeat)
    if len(data.y_train) < per_repeat:
        log(f"note: {len(data.y_train)} training images < {per_repeat} per repeat; loaders wrap to a new epoch "
            f"inside a timing (a DataLoader then restarts its workers).")
    load_start = _load()
    log(f"data: {data_line}")
    log(f"device {dev}, batch {batch_size}, warmup {warmup} + {steps} timed steps, {repeats} repeats, "
        f"baseline workers {workers} ({why})")

    sides = {name: _pipeline(name=name, data=data, model_name=model, batch_size=batch_size, device=dev,
                             num_workers=workers, compile_model=compile_model, seed=seed)
             for name in ("baseline", "ours")}
    runs: dict[str, list[float]] = {"baseline": [], "ours": []}
    for r in range(repeats):
        for name in ("baseline", "ours"):
            img_s = _time_once(side=sides[name], repeat=r, warmup=warmup, steps=steps, batch_size=batch_size,
                               device=dev)
            runs[name].append(img_s)
            log(f"repeat {r + 1}/{repeats} {name:<8} {img_s:10.1f} img/s")
    base, ours = round(statistics.median(runs["baseline"]), 2), round(statistics.median(runs["ours"]), 2)
    return {
        "mode": "throughput", **machine(dev), "model": model, "batch_size": batch_size,
        "image_size": data.image_size, "num_classes": data.num_classes, "data": data_line,
        "baseline_img_s": base, "ours_img_s": ours, "ratio": round(ours / base, 4),  # the ratio of the printed medians
        "baseline_runs": [round(v, 2) for v in runs["baseline"]], "ours_runs": [round(v, 2) for v in runs["ours"]],
        "baseline": {"loader": "torch DataLoader + albumentations per image", "num_workers": workers,
                     "num_workers_why": why, "precision": "float32", "channels_last": False, "compile": False},
        "ours": {"loader": "device (DeviceLoader + BatchAugment)", "precision": engine.precision_name(sides["ours"]["amp_dtype"]),
                 "channels_last": True, "compile": compile_model},
        "precision": engine.precision_name(sides["ours"]["amp_dtype"]), "channels_last": True,
        "warmup": warmup, "steps": steps, "repeats": repeats, "quick": quick, "seed": seed,
        "loadavg_start": load_start, "loadavg_end": _load(),
    }


# ----------------------------------------------------------------------------- recipe and precision check


def _recipe_params(*, data: ImageData, data_dir: str | None, epochs: int | None, batch_size: int | None,
                   max_lr: float | None, device: str, precision: str, compile_model: bool, out_dir: str,
                   seed: int, progress: bool, peak_epoch: int | None = None) -> dict[str, Any]:
    """The checked parameters of configs/cifar10_custom_resnet.yaml with this run's overrides."""
    config = read_config(RECIPE_CONFIG)
    values = {**defaults(TRAIN_PARAMS), **config}
    epochs = epochs or config["epochs"]
    if peak_epoch is None:  # keep the peak at the config's share of training (5/24) when epochs differ
        peak_epoch = config["peak_epoch"] if epochs == config["epochs"] else \
            max(1, round(config["peak_epoch"] * epochs / config["epochs"]))
    values.update({"dataset": data.name, "data_dir": data_dir or "random", "download": False, "epochs": epochs,
                   "peak_epoch": peak_epoch, "batch_size": batch_size or config["batch_size"], "max_lr": max_lr,
                   "device": device, "precision": precision, "compile": compile_model, "loader": "device",
                   "channels_last": True, "out_dir": out_dir, "seed": seed, "progress": progress, "resume": False})
    return check_params(namespace=values, names=TRAIN_PARAMS)


def _fit(*, data: ImageData, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """train.fit on `data` from a seeded model; its result and wall-clock seconds."""
    from eva_helpers.train import build_model_for, fit

    model = build_model_for(params, num_classes=data.num_classes)
    t0 = time.perf_counter()
    result = fit(model=model, data=data, params=params)
    _sync(engine.pick_device(params["device"]))
    return result, time.perf_counter() - t0


def _train_img_s(result: dict[str, Any], batch_size: int) -> float:
    """Training images per second over the epochs, per-epoch evaluation included (fit times whole epochs)."""
    return result["steps_per_epoch"] * batch_size * result["epochs_done"] / sum(result["epoch_seconds"])


def recipe(*, data_dir: str | None = None, dataset: str = "imagefolder", epochs: int | None = None,
           train_limit: int = 0, test_limit: int = 0, batch_size: int | None = None,
           max_lr: float | None = RECIPE_MAX_LR, device: str = "auto", precision: str = "auto",
           compile_model: bool = False, out_dir: str | None = None, seed: int = 1, progress: bool = False,
           log: Log = _quiet) -> dict[str, Any]:
    """The CIFAR-10 recipe end to end (load data, train.fit): wall-clock seconds and final test accuracy."""
    t0 = time.perf_counter()
    data, data_line = get_data(data_dir=data_dir, dataset=dataset, model="custom_resnet", train_limit=train_limit,
                               test_limit=test_limit, seed=seed, n_random=max(train_limit, batch_size or 512))
    load_seconds = time.perf_counter() - t0
    log(f"data: {data_line} ({load_seconds:.1f}s)")
    load_start = _load()
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as tmp:
        params = _recipe_params(data=data, data_dir=data_dir, epochs=epochs, batch_size=batch_size, max_lr=max_lr,
                                device=device, precision=precision, compile_model=compile_model,
                                out_dir=out_dir or tmp, seed=seed, progress=progress)
        log(f"recipe: {params['epochs']} epochs, peak {params['peak_epoch']}, batch {params['batch_size']}, "
            f"max_lr {'LR range test' if max_lr is None else max_lr}")
        result, seconds = _fit(data=data, params=params)
    dev = engine.pick_device(device)
    return {
        "mode": "recipe", **machine(dev), "seconds": round(seconds, 2), "test_acc": result["test_acc"],
        "best_test_acc": result["best_test_acc"], "epochs": params["epochs"], "peak_epoch": params["peak_epoch"],
        "batch_size": params["batch_size"], "max_lr": result["params"]["max_lr"],
        "max_lr_source": result["max_lr_source"], "precision": result["precision"], "compile": compile_model,
        "model": params["model"], "data": data_line, "n_train": result["n_train"], "n_test": result["n_test"],
        "load_seconds": round(load_seconds, 2), "epoch_seconds_sum": round(sum(result["epoch_seconds"]), 2),
        "train_img_s": round(_train_img_s(result, params["batch_size"]), 2), "seed": seed,
        "loadavg_start": load_start, "loadavg_end": _load(),
    }


def precision_check(*, data_dir: str | None = None, dataset: str = "imagefolder", train_limit: int | None = None,
                    test_limit: int | None = None, epochs: int | None = None, batch_size: int | None = None,
                    max_lr: float | None = None, device: str = "auto", seed: int = 1,
                    log: Log = _quiet) -> dict[str, Any]:
    """The same short recipe (same seed, data, device path) in fp32 and in bf16: test accuracy and img/s of each."""
    s = {**PRECISION_CHECK, **{k: v for k, v in {"train_limit": train_limit, "test_limit": test_limit,
                                                  "epochs": epochs, "batch_size": batch_size,
                                                  "max_lr": max_lr}.items() if v is not None}}
    peak = max(1, round(5 * s["epochs"] / 24))
    data, data_line = get_data(data_dir=data_dir, dataset=dataset, model="custom_resnet",
                               train_limit=s["train_limit"], test_limit=s["test_limit"], seed=seed,
                               n_random=s["train_limit"])
    log(f"data: {data_line}")
    load_start = _load()
    out: dict[str, dict[str, Any]] = {}
    for precision in ("fp32", "bf16"):
        with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
            params = _recipe_params(data=data, data_dir=data_dir, epochs=s["epochs"], batch_size=s["batch_size"],
                                    max_lr=s["max_lr"], device=device, precision=precision, compile_model=False,
                                    out_dir=tmp, seed=seed, progress=False, peak_epoch=peak)
            result, seconds = _fit(data=data, params=params)
        out[precision] = {"test_acc": result["test_acc"], "img_s": round(_train_img_s(result, s["batch_size"]), 2),
                          "seconds": round(seconds, 2), "final_train_loss": result["history"][-1]["train_loss"]}
        log(f"{precision}: test acc {result['test_acc']:.4f}, {out[precision]['img_s']:.1f} img/s, {seconds:.1f}s")
    n_test = len(data.y_test)
    p = out["fp32"]["test_acc"]
    return {
        "mode": "precision_check", **machine(engine.pick_device(device)), "model": "custom_resnet",
        "data": data_line, **{k: s[k] for k in ("epochs", "batch_size", "max_lr")}, "peak_epoch": peak,
        "n_train": len(data.y_train), "n_test": n_test, "seed": seed,
        "fp32_test_acc": out["fp32"]["test_acc"], "bf16_test_acc": out["bf16"]["test_acc"],
        "acc_diff": round(out["bf16"]["test_acc"] - p, 4),
        # one run each: a difference within ~2 standard errors of one accuracy is noise, not a cost
        "acc_stderr": round(float(np.sqrt(max(p * (1 - p), 1e-12) / max(n_test, 1))), 4),
        "fp32_img_s": out["fp32"]["img_s"], "bf16_img_s": out["bf16"]["img_s"],
        "bf16_speedup": round(out["bf16"]["img_s"] / out["fp32"]["img_s"], 4), "runs": out,
        "loadavg_start": load_start, "loadavg_end": _load(),
    }


# ----------------------------------------------------------------------------- command line


_DEFAULT = object()  # --max_lr not given: each mode's own default


def _lr(value: str) -> float | None:
    if value.strip().lower() in ("none", "null", "finder"):
        return None
    try:
        lr = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; give e.g. 0.05, or 'none' for the LR range test")
    if lr <= 0:
        raise argparse.ArgumentTypeError(f"max_lr {lr} must be > 0")
    return lr


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: the throughput mode by default, --recipe or --precision-check for the other two."""
    p = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--recipe", action="store_true", help="time the CIFAR-10 recipe end to end (train.fit)")
    mode.add_argument("--precision-check", "--precision_check", dest="precision_check", action="store_true",
                      help="short recipe in fp32 and bf16: does bf16 cost accuracy?")
    p.add_argument("--model", choices=("custom_resnet", "resnet18"), default="custom_resnet",
                   help="throughput mode's network (the recipe is custom_resnet)")
    p.add_argument("--data_dir", default=None, help="real data (e.g. unzipped CIFAR-10 JPEGs); none: random images")
    p.add_argument("--dataset", choices=("imagefolder", "cifar10", "tinyimagenet"), default="imagefolder",
                   help="how to read --data_dir (eva_helpers.data.load_data)")
    p.add_argument("--batch_size", type=int, default=None,
                   help="throughput: 512 on CUDA, else 128; recipe: the config's 512; precision check: 128")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    p.add_argument("--quick", action="store_true", help="throughput: few steps and 3 repeats (~1-2 min on a CPU)")
    p.add_argument("--steps", type=int, default=None, help="throughput: timed steps per repeat (default by mode)")
    p.add_argument("--warmup", type=int, default=None, help="throughput: untimed steps before each timing")
    p.add_argument("--repeats", type=int, default=None, help="throughput: interleaved repeats of each pipeline")
    p.add_argument("--num_workers", type=int, default=None,
                   help=f"throughput baseline's DataLoader workers (default: {SEED_WORKERS_CUDA} on CUDA, "
                        f"loaders.auto_workers() elsewhere, 0 on a 2-core CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile our model (throughput and recipe)")
    p.add_argument("--epochs", type=int, default=None, help="recipe/precision check: epochs (recipe default 24)")
    p.add_argument("--train_limit", type=int, default=None, help="training images (0 = all; precision check 2000)")
    p.add_argument("--test_limit", type=int, default=None, help="test images (0 = all; precision check 1000)")
    p.add_argument("--max_lr", type=_lr, default=_DEFAULT,
                   help=f"recipe: peak LR (default {RECIPE_MAX_LR}; 'none' runs the LR range test); "
                        f"precision check default {PRECISION_CHECK['max_lr']}")
    p.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto", help="recipe precision")
    p.add_argument("--out_dir", default=None, help="recipe: keep fit's products here (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=None, help="seed (throughput 0, recipe and precision check 1)")
    p.add_argument("--no_progress", action="store_true", help="recipe: no per-epoch lines or progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen mode, print progress lines and, last, one JSON line."""
    a = parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    if a.recipe:
        result = recipe(data_dir=a.data_dir, dataset=a.dataset, epochs=a.epochs, train_limit=a.train_limit or 0,
                        test_limit=a.test_limit or 0, batch_size=a.batch_size,
                        max_lr=RECIPE_MAX_LR if a.max_lr is _DEFAULT else a.max_lr, device=a.device,
                        precision=a.precision, compile_model=a.compile, out_dir=a.out_dir,
                        seed=1 if a.seed is None else a.seed, progress=not a.no_progress, log=log)
    elif a.precision_check:
        result = precision_check(data_dir=a.data_dir, dataset=a.dataset, train_limit=a.train_limit,
                                 test_limit=a.test_limit, epochs=a.epochs, batch_size=a.batch_size,
                                 max_lr=None if a.max_lr is _DEFAULT else a.max_lr, device=a.device,
                                 seed=1 if a.seed is None else a.seed, log=log)
    else:
        result = throughput(model=a.model, data_dir=a.data_dir, dataset=a.dataset, batch_size=a.batch_size,
                            device=a.device, steps=a.steps, warmup=a.warmup, repeats=a.repeats,
                            num_workers=a.num_workers, compile_model=a.compile, quick=a.quick,
                            train_limit=a.train_limit or 0, seed=0 if a.seed is None else a.seed, log=log)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
