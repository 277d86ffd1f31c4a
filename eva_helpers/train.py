"""Notebook 04's recipe as functions and a command: One-Cycle SGD, a checkpoint every epoch, resume, DDP.

    python -m eva_helpers.train --dataset cifar10 --epochs 24 --out_dir outputs
    torchrun --nproc_per_node 2 -m eva_helpers.train --config configs/cifar10_custom_resnet.yaml
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from . import __version__
from .augment import resolve_augment
from .checkpoint import load_torch, rng_state, save_json, save_torch, set_rng_state
from .data import DATA_KEYS, ImageData, load_data_for
from .engine import evaluate, pick_device, pick_precision, precision_name, train_epoch
from .loaders import make_loaders
from .lr_finder import lr_range_test
from .models import build_model
from .params import SPEC, TRAIN_PARAMS, check_params, defaults
from .schedule import one_cycle

# parameters that may change between a run and its resumption without changing what is computed
RESUME_MAY_DIFFER = {"resume", "progress", "num_workers", "device", "compile", "data_dir", "cache_dir", "download"}
CHECKPOINT_FORMAT = 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation draws from these)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    """The versions a result depends on, for metrics.json."""
    import albumentations
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "albumentations": albumentations.__version__, "numpy": np.__version__, "eva_helpers": __version__}


def build_model_for(params: dict[str, Any], *, num_classes: int) -> nn.Module:
    """The parameters' model, initialised from their seed."""
    seed_everything(params["seed"])
    return build_model(name=params["model"], num_classes=num_classes)


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    if _dist()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _check_resumable(saved: dict, params: dict) -> None:
    diff = {k: (saved.get(k), params.get(k)) for k in set(saved) | set(params)
            if k not in RESUME_MAY_DIFFER and saved.get(k) != params.get(k)}
    if diff:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
        raise ValueError(f"resume=True but the checkpoint in out_dir was made with other parameters ({lines}). "
                         f"Pass the same parameters to continue it, or choose a new out_dir.")


def make_sgd(*, model: nn.Module, lr: float, params: dict[str, Any]) -> torch.optim.SGD:
    """The recipe's optimiser: SGD with the parameters' momentum, Nesterov and weight decay."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=params["momentum"],
                           nesterov=params["nesterov"] and params["momentum"] > 0, weight_decay=params["weight_decay"])


def _range_test(*, model, loader, params, device, amp_dtype) -> dict[str, Any]:
    loader.set_epoch(-1)  # its own shuffle, so training epochs draw the same data with or without the test
    return lr_range_test(
        model=model, optimizer=make_sgd(model=model, lr=params["finder_start_lr"], params=params),
        criterion=nn.CrossEntropyLoss(label_smoothing=params["label_smoothing"]), train_loader=loader, device=device,
        start_lr=params["finder_start_lr"], end_lr=params["finder_end_lr"], num_iter=params["finder_iters"],
        amp_dtype=amp_dtype, progress=params["progress"] and _dist()[0] == 0)


def _setup(*, params: dict[str, Any], model: nn.Module, data: ImageData) -> dict[str, Any]:
    """What fit and lr_test_for share: full parameters, device, precision, the model placed, the loaders."""
    p = {**defaults(TRAIN_PARAMS), **params}
    rank, world = _dist()
    device = pick_device(p["device"])
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    augment = resolve_augment(dataset=p["dataset"], pad=p["pad"], flip=p["flip"], cutout=p["cutout"],
                              rotate=p["rotate"], rgb_shift=p["rgb_shift"])
    model = model.to(device=device, memory_format=torch.channels_last if p["channels_last"] else torch.contiguous_format)
    train_loader, test_loader = make_loaders(
        data=data, batch_size=p["batch_size"], device=device, augment=augment, loader=p["loader"], seed=p["seed"],
        num_workers=p["num_workers"], channels_last=p["channels_last"], rank=rank, world_size=world)
    return {"p": p, "rank": rank, "world": world, "device": device, "augment": augment, "model": model,
            "amp_dtype": pick_precision(precision=p["precision"], device=device),
            "train_loader": train_loader, "test_loader": test_loader}


def lr_test_for(*, params: dict[str, Any], model: nn.Module, data: ImageData) -> dict[str, Any]:
    """Notebook 03: the LR range test with the recipe's optimiser, loss, loader and precision; model restored."""
    s = _setup(params=params, model=model, data=data)
    return _range_test(model=s["model"], loader=s["train_loader"], params=s["p"], device=s["device"],
                       amp_dtype=s["amp_dtype"])


def fit(*, model: nn.Module, data: ImageData, params: dict[str, Any]) -> dict[str, Any]:
    """Train `model` on `data` with One-Cycle SGD as `params` say; write checkpoint.pt, metrics.json, model.pt.

    Every epoch ends with an atomic checkpoint in out_dir; resume=True continues from it and ends
    with the same weights and metrics as an uninterrupted run (bitwise on the CPU). With
    max_lr=None the LR range test runs first (lr_finder.json) and its suggestion is the peak.
    Returns the metrics (as in metrics.json) plus "model", "lr_finder" and "paths".
    """
    s = _setup(params=params, model=model, data=data)
    p, rank, world, device, amp_dtype, augment, model = (
        s[k] for k in ("p", "rank", "world", "device", "amp_dtype", "augment", "model"))
    train_loader, test_loader = s["train_loader"], s["test_loader"]
    out_dir = Path(p["out_dir"])
    paths = {k: out_dir / f for k, f in [("checkpoint", "checkpoint.pt"), ("metrics", "metrics.json"),
                                         ("model", "model.pt"), ("lr_finder", "lr_finder.json")]}

    if rank == 0 and out_dir.is_dir():
        for stale in out_dir.glob(".*.tmp"):  # left by a write that a kill interrupted
            stale.unlink(missing_ok=True)
    state = None
    if paths["checkpoint"].exists():
        if p["resume"]:
            state = load_torch(path=paths["checkpoint"], map_location=device)
            _check_resumable(state["params"], p)
        elif rank == 0:
            warnings.warn(f"{paths['checkpoint']} holds an earlier run; it will be replaced. "
                          f"Pass resume=True to continue it instead.", stacklevel=2)
    elif p["resume"] and rank == 0:
        warnings.warn(f"resume=True but {paths['checkpoint']} does not exist; starting from scratch.", stacklevel=2)

    steps = len(train_loader)
    criterion = nn.CrossEntropyLoss(label_smoothing=p["label_smoothing"])

    finder = None
    if state is not None:
        max_lr, finder = state["max_lr"], state.get("lr_finder")
    elif p["max_lr"] is not None:
        max_lr = p["max_lr"]
    else:
        finder = _range_test(model=model, loader=train_loader, params=p, device=device, amp_dtype=amp_dtype)
        max_lr = _all_reduce([finder["suggested_lr"] if rank == 0 else 0.0], device)[0]  # rank 0's suggestion
        if rank == 0:
            save_json(obj=finder, path=paths["lr_finder"])

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if p["compile"]:
        net = torch.compile(net)
    optimizer = make_sgd(model=model, lr=max_lr, params=p)
    scheduler = one_cycle(optimizer=optimizer, max_lr=max_lr, epochs=p["epochs"], peak_epoch=p["peak_epoch"],
                          steps_per_epoch=steps, div_factor=p["div_factor"], final_div_factor=p["final_div_factor"])
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    history, lr_per_step, epoch_seconds, start = [], [], [], 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        history, lr_per_step, epoch_seconds = state["history"], state["lr_per_step"], state["epoch_seconds"]
        start = state["epoch"]

    record = {"params": {**p, "max_lr": max_lr, "augment": augment}, "device": str(device),
              "precision": precision_name(amp_dtype),
              "world_size": world, "seed": p["seed"], "versions": versions(), "test_split": data.test_split,
              "classes": data.classes, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
              "steps_per_epoch": steps, "max_lr_source": "lr range test" if p["max_lr"] is None else "given"}

    def metrics(finished: bool) -> dict[str, Any]:
        accs = [h["test_acc"] for h in history]
        return {**record, "finished": finished, "epochs_done": len(history), "history": history,
                "lr_per_step": lr_per_step, "test_acc": accs[-1] if accs else None,
                "best_test_acc": max(accs) if accs else None, "epoch_seconds": epoch_seconds}

    show = p["progress"] and rank == 0
    for epoch in range(start, p["epochs"]):
        train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        tr = train_epoch(model=net, loader=train_loader, optimizer=optimizer, scheduler=scheduler,
                         criterion=criterion, device=device, amp_dtype=amp_dtype, scaler=scaler, epoch=epoch,
                         channels_last=p["channels_last"], progress=show)
        ev = evaluate(model=net, loader=test_loader, device=device, amp_dtype=amp_dtype,
                      channels_last=p["channels_last"])
        loss, correct, seen, ev_loss, ev_correct, ev_seen = _all_reduce(
            [tr["loss"], tr["correct"], tr["seen"], ev["loss_sum"], ev["correct"], ev["seen"]], device)
        epoch_seconds.append(time.perf_counter() - t0)
        history.append({"epoch": epoch + 1, "train_loss": loss / world, "train_acc": correct / seen,
                        "test_loss": ev_loss / ev_seen, "test_acc": ev_correct / ev_seen, "lr": tr["lrs"][-1]})
        lr_per_step.extend(tr["lrs"])
        if rank == 0:
            save_torch(path=paths["checkpoint"], obj={
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "params": p, "max_lr": max_lr, "lr_finder": finder,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                "history": history, "lr_per_step": lr_per_step, "epoch_seconds": epoch_seconds})
            save_json(obj=metrics(finished=False), path=paths["metrics"])
        if show:
            h = history[-1]
            print(f"epoch {h['epoch']:>3}/{p['epochs']}  train loss {h['train_loss']:.4f} acc {h['train_acc']:.2%}  "
                  f"{data.test_split} loss {h['test_loss']:.4f} acc {h['test_acc']:.2%}  "
                  f"lr {h['lr']:.2e}  {epoch_seconds[-1]:.1f}s", flush=True)

    result = metrics(finished=True)
    if rank == 0:
        save_torch(path=paths["model"], obj={"model": model.state_dict(), "meta": model_meta(params=p, data=data,
                                                                                             result=result)})
        save_json(obj=result, path=paths["metrics"])
    return {**result, "model": model, "lr_finder": finder, "paths": {k: str(v) for k, v in paths.items()}}


def model_meta(*, params: dict, data: ImageData, result: dict) -> dict[str, Any]:
    """Plain metadata stored beside the weights: enough to rebuild the model and its data."""
    return {**{k: params[k] for k in DATA_KEYS}, "model": params["model"], "num_classes": data.num_classes,
            "classes": list(data.classes), "mean": list(data.mean), "std": list(data.std),
            "image_size": data.image_size, "test_split": data.test_split, "channels_last": params["channels_last"],
            "precision": params["precision"], "epochs": params["epochs"], "test_acc": result["test_acc"],
            "max_lr": result["params"]["max_lr"], "eva_helpers": __version__}


def load_trained(*, path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model saved in a model.pt (in eval mode) and its metadata; loads with weights_only=True."""
    saved = load_torch(path=path, map_location="cpu")
    if not isinstance(saved, dict) or "model" not in saved or "meta" not in saved:
        raise ValueError(f"{path} is not a model.pt written by notebook 04 (no 'model' and 'meta' keys).")
    meta = saved["meta"]
    model = build_model(name=meta["model"], num_classes=meta["num_classes"])
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), meta


def _parse_args(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m eva_helpers.train",
        description="Train as notebook 04 does; same parameter names, same out_dir products.")
    parser.add_argument("--config", "-f", action="append", default=[],
                        help="YAML file of parameters (the papermill -f files in configs/); later ones win")
    for name in TRAIN_PARAMS:
        spec = SPEC[name]
        parser.add_argument(f"--{name}", default=argparse.SUPPRESS, metavar=spec.kind.__name__.upper(),
                            help=f"{spec.help} (default: {spec.default!r})")
    args = vars(parser.parse_args(argv))
    values = defaults(TRAIN_PARAMS)
    for config in args.pop("config"):
        values.update(read_config(config))
    values.update(args)
    return check_params(namespace=values, names=TRAIN_PARAMS)


def read_config(path: str | Path) -> dict[str, Any]:
    """A YAML parameters file (as papermill's -f takes), checked for unknown names."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; see configs/ for the shipped recipes.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of parameter names to values.")
    for name in values:
        if name not in SPEC:
            check_params(namespace=values, names=[name])  # raises, naming the nearest known name
    return values


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; under torchrun it trains data-parallel (gloo on CPU, NCCL on CUDA)."""
    params = _parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and params["device"] != "cpu" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    try:
        rank, world = _dist()
        # rank 0 downloads, decodes and caches the data first and the others then read what it wrote: every
        # rank downloading into one folder at once corrupts it. A gloo group with its own timeout, so a long
        # first download does not trip the training backend's (NCCL: 10 minutes).
        gate = dist.new_group(backend="gloo", timeout=timedelta(hours=1)) if world > 1 else None
        if rank > 0:
            dist.barrier(group=gate)
        data = load_data_for({**params, "progress": params["progress"] and rank == 0})
        if rank == 0 and gate is not None:
            dist.barrier(group=gate)
        model = build_model_for(params, num_classes=data.num_classes)
        result = fit(model=model, data=data, params=params)
        if rank == 0:
            from .plots import save_figure
            for name, fig in train_figures(result=result, data=data).items():
                save_figure(fig=fig, path=Path(params["out_dir"]) / f"{name}.png")
            print(f"{data.test_split} accuracy {result['test_acc']:.2%} after {params['epochs']} epochs "
                  f"({sum(result['epoch_seconds']):.1f}s); wrote {result['paths']['metrics']}", flush=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def train_figures(*, result: dict[str, Any], data: ImageData) -> dict[str, Any]:
    """The figures notebook 04 and the command line save: the LR range test (if it ran), the schedule, the curves."""
    from .plots import plot_history, plot_lr_finder, plot_lr_schedule

    figures = {}
    if result.get("lr_finder") is not None:
        f = result["lr_finder"]
        figures["lr_finder"] = plot_lr_finder(lr=f["lr"], loss=f["loss"], suggested_lr=f["suggested_lr"])
    figures["lr_schedule"] = plot_lr_schedule(lrs=result["lr_per_step"], steps_per_epoch=result["steps_per_epoch"],
                                              peak_epoch=result["params"]["peak_epoch"])
    figures["history"] = plot_history(history=result["history"], test_split=data.test_split)
    return figures


if __name__ == "__main__":
    sys.exit(main())
