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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as `python benchmarks/bench.py` from a checkout, installed or not
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from recipe import PRECISION_CHECK, RECIPE_MAX_LR, _bench_recipe, precision_check, recipe  # noqa: E402
from throughput import SEED_WORKERS_CUDA, throughput  # noqa: E402

from eva_helpers.data import DATASETS, synthetic  # noqa: E402
from eva_helpers.device import PRECISIONS  # noqa: E402
from eva_helpers.models import MODELS  # noqa: E402

__all__ = ["_bench_recipe", "main", "parse_args", "precision_check", "recipe", "synthetic", "throughput"]


_DEFAULT = object()  # --max_lr not given: each mode's own default


def _lr(value: str) -> float | None:
    if value.strip().lower() in ("none", "null", "finder"):
        return None
    try:
        lr = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number; give e.g. 0.05, or 'none' for the LR range test"
        ) from None
    if lr <= 0:
        raise argparse.ArgumentTypeError(f"max_lr {lr} must be > 0")
    return lr


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: the throughput mode by default, --recipe or --precision-check for the other two."""
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--recipe", action="store_true", help="time the CIFAR-10 recipe end to end (train.fit)")
    mode.add_argument(
        "--precision-check",
        "--precision_check",
        dest="precision_check",
        action="store_true",
        help="short recipe in fp32 and bf16: does bf16 cost accuracy?",
    )
    p.add_argument(
        "--model",
        choices=tuple(MODELS),
        default="custom_resnet",
        help="throughput mode's network (the recipe is custom_resnet)",
    )
    p.add_argument("--data_dir", default=None, help="real data (e.g. unzipped CIFAR-10 JPEGs); none: random images")
    p.add_argument(
        "--dataset", choices=DATASETS, default="imagefolder", help="how to read --data_dir (eva_helpers.data.load_data)"
    )
    p.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="throughput: 512 on CUDA, else 128; recipe: the config's 512; precision check: 128",
    )
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    p.add_argument("--quick", action="store_true", help="throughput: few steps and 3 repeats (~1-2 min on a CPU)")
    p.add_argument("--steps", type=int, default=None, help="throughput: timed steps per repeat (default by mode)")
    p.add_argument("--warmup", type=int, default=None, help="throughput: untimed steps before each timing")
    p.add_argument("--repeats", type=int, default=None, help="throughput: interleaved repeats of each pipeline")
    p.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help=f"throughput baseline's DataLoader workers (default: {SEED_WORKERS_CUDA} on CUDA, "
        f"device.auto_workers() elsewhere, 0 on a 2-core CPU)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile our model (throughput and recipe)")
    p.add_argument("--epochs", type=int, default=None, help="recipe/precision check: epochs (recipe default 24)")
    p.add_argument("--train_limit", type=int, default=None, help="training images (0 = all; precision check 2000)")
    p.add_argument("--test_limit", type=int, default=None, help="test images (0 = all; precision check 1000)")
    p.add_argument(
        "--max_lr",
        type=_lr,
        default=_DEFAULT,
        help=f"recipe: peak LR (default {RECIPE_MAX_LR}; 'none' runs the LR range test); "
        f"precision check default {PRECISION_CHECK['max_lr']}",
    )
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="recipe precision")
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
        result = recipe(
            data_dir=a.data_dir,
            dataset=a.dataset,
            epochs=a.epochs,
            train_limit=a.train_limit or 0,
            test_limit=a.test_limit or 0,
            batch_size=a.batch_size,
            max_lr=RECIPE_MAX_LR if a.max_lr is _DEFAULT else a.max_lr,
            device=a.device,
            precision=a.precision,
            compile_model=a.compile,
            out_dir=a.out_dir,
            seed=1 if a.seed is None else a.seed,
            progress=not a.no_progress,
            log=log,
        )
    elif a.precision_check:
        result = precision_check(
            data_dir=a.data_dir,
            dataset=a.dataset,
            train_limit=a.train_limit,
            test_limit=a.test_limit,
            epochs=a.epochs,
            batch_size=a.batch_size,
            max_lr=None if a.max_lr is _DEFAULT else a.max_lr,
            device=a.device,
            seed=1 if a.seed is None else a.seed,
            log=log,
        )
    else:
        result = throughput(
            model=a.model,
            data_dir=a.data_dir,
            dataset=a.dataset,
            batch_size=a.batch_size,
            device=a.device,
            steps=a.steps,
            warmup=a.warmup,
            repeats=a.repeats,
            num_workers=a.num_workers,
            compile_model=a.compile,
            quick=a.quick,
            train_limit=a.train_limit or 0,
            seed=0 if a.seed is None else a.seed,
            log=log,
        )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
