"""The train command (`eva-train`, or `python -m eva_helpers.train`): notebook 04 from a shell, under torchrun too.

eva-train --dataset cifar10 --epochs 24 --out_dir outputs
torchrun --nproc_per_node 2 -m eva_helpers.train --config configs/cifar10_custom_resnet.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from .data import ImageData, load_data
from .device import rank_and_world
from .recipe import SPEC, TRAIN_PARAMS, Recipe, load_recipe
from .run_setup import new_model
from .training import FitResult, fit


def parse_args(argv: list[str] | None) -> Recipe:
    """The recipe of a command line: the defaults, then the --config files in turn, then the --name value pairs."""
    parser = argparse.ArgumentParser(
        prog="eva-train",
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
    return load_recipe(*args.pop("config"), **args)


def run(recipe: Recipe, *, data: ImageData | None = None) -> FitResult:
    """Load the data (unless given), build the seeded model, train; rank 0 saves the figures: notebook 04."""
    rank, world = rank_and_world()
    # rank 0 downloads, decodes and caches the data first and the others then read what it wrote: every
    # rank downloading into one folder at once corrupts it. A gloo group with its own timeout, so a long
    # first download does not trip the training backend's (NCCL: 10 minutes).
    if data is None:
        gate = dist.new_group(backend="gloo", timeout=timedelta(hours=1)) if world > 1 else None
        if rank > 0:
            dist.barrier(group=gate)
        data = load_data(recipe if rank == 0 else recipe.replace(progress=False))
        if rank == 0 and gate is not None:
            dist.barrier(group=gate)
    result = fit(new_model(recipe, data), data, recipe)
    if rank == 0:
        from .plots import save_figures, train_figures

        save_figures(figures=train_figures(result=result), out_dir=recipe.outputs.out_dir)
        print(result.summary(), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; under torchrun it trains data-parallel (gloo on CPU, NCCL on CUDA)."""
    recipe = parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and recipe.machine.device != "cpu" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    try:
        run(recipe)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
