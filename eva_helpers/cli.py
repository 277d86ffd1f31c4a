"""The command line of notebook 04: `python -m eva_helpers.train`, with the same parameter names, under torchrun too.

python -m eva_helpers.train --dataset cifar10 --epochs 24 --out_dir outputs
torchrun --nproc_per_node 2 -m eva_helpers.train --config configs/cifar10_custom_resnet.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from . import train
from .data import ImageData, load_data
from .device import rank_and_world
from .models import build_model
from .params import SPEC, TRAIN_PARAMS, check_params, defaults, pick, read_config


def recipe_params(*, configs: list[str | Path] = (), **overrides: Any) -> dict[str, Any]:
    """The checked training parameters: the defaults, then each config file in turn, then the overrides."""
    values = defaults(TRAIN_PARAMS)
    for config in configs:
        values.update(read_config(config))
    values.update(overrides)
    return check_params(namespace=values, names=TRAIN_PARAMS)


def parse_args(argv: list[str] | None) -> dict[str, Any]:
    """The checked parameters of a command line: --config files first, then --name value pairs."""
    parser = argparse.ArgumentParser(
        prog="python -m eva_helpers.train",
        description="Train as notebook 04 does; same parameter names, same out_dir products.",
    )
    parser.add_argument(
        "--config",
        "-f",
        action="append",
        default=[],
        help="YAML file of parameters (the papermill -f files in configs/); later ones win",
    )
    for name in TRAIN_PARAMS:
        spec = SPEC[name]
        parser.add_argument(
            f"--{name}",
            default=argparse.SUPPRESS,
            metavar=spec.kind.__name__.upper(),
            help=f"{spec.help} (default: {spec.default!r})",
        )
    args = vars(parser.parse_args(argv))
    return recipe_params(configs=args.pop("config"), **args)


def run(params: dict[str, Any], *, data: ImageData | None = None) -> train.FitResult:
    """Load the data (unless given), build the seeded model, train; rank 0 saves the figures: notebook 04."""
    rank, world = rank_and_world()
    # rank 0 downloads, decodes and caches the data first and the others then read what it wrote: every
    # rank downloading into one folder at once corrupts it. A gloo group with its own timeout, so a long
    # first download does not trip the training backend's (NCCL: 10 minutes).
    if data is None:
        gate = dist.new_group(backend="gloo", timeout=timedelta(hours=1)) if world > 1 else None
        if rank > 0:
            dist.barrier(group=gate)
        data = load_data(**pick(load_data, {**params, "progress": params["progress"] and rank == 0}))
        if rank == 0 and gate is not None:
            dist.barrier(group=gate)
    model = build_model(name=params["model"], num_classes=data.num_classes, **pick(build_model, params))
    result = train.fit(model=model, data=data, **pick(train.fit, params))
    if rank == 0:
        from .plots import save_figure, train_figures

        for name, fig in train_figures(result=result).items():
            save_figure(fig=fig, path=Path(params["out_dir"]) / f"{name}.png")
        print(
            f"{data.test_split} accuracy {result.test_acc:.2%} after {params['epochs']} epochs "
            f"({sum(result.metrics['epoch_seconds']):.1f}s); wrote {result.paths['metrics']}",
            flush=True,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; under torchrun it trains data-parallel (gloo on CPU, NCCL on CUDA)."""
    params = parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and params["device"] != "cpu" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    try:
        run(params)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
