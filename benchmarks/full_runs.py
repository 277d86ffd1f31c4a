"""Both recipes at full length, and the throughput benchmark, on whatever device this machine has; one JSON each.

    python benchmarks/full_runs.py                        # CIFAR-10 x 3 seeds, Tiny ImageNet, throughput
    python benchmarks/full_runs.py --only cifar10 --seeds 1 --results-dir benchmarks/results
    python benchmarks/full_runs.py --quick                # a few minutes on generated data, into a temp folder
    python benchmarks/full_runs.py --table                # the README's results table from the result files

Wall clock is the whole fit call (compile, the range test when it runs, training, evaluation and the
checkpoints); reading and decoding the data is timed apart. Each run resumes from its own out_dir,
so a killed run is started again with the same command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as `python benchmarks/full_runs.py` from a checkout, installed or not
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from throughput import throughput  # noqa: E402

from eva_helpers.data import ImageData, load_data, synthetic  # noqa: E402
from eva_helpers.device import pick_device, provenance, versions  # noqa: E402
from eva_helpers.recipe import load_recipe  # noqa: E402
from eva_helpers.train import run  # noqa: E402

RECIPES = {
    "cifar10": ROOT / "configs" / "cifar10_custom_resnet.yaml",
    "tinyimagenet": ROOT / "configs" / "tinyimagenet_resnet18.yaml",
}
SHARED = ROOT.parent / "shared" / "data"  # the real data beside the project, where there is one
# --quick: the same code on generated data, small enough for a CPU in a few minutes
QUICK = {
    "cifar10": {"n_train": 128, "image_size": 32, "num_classes": 10, "epochs": 2, "peak_epoch": 1, "batch_size": 64},
    "tinyimagenet": {"n_train": 100, "image_size": 64, "num_classes": 200, "epochs": 1, "peak_epoch": 1,
                     "batch_size": 50},
}  # fmt: skip


def cifar10_source(data_dir: str | None) -> tuple[str, str, str]:
    """(dataset, data_dir, what it is): a given folder, the JPEG copy beside the project, or the official download."""
    if data_dir:
        given = Path(data_dir)
        folders = [given, *(p for p in given.iterdir() if p.is_dir())]
        if any((f / "train").is_dir() for f in folders):
            return "imagefolder", str(given), "CIFAR-10 (JPEG copy)"
        return "cifar10", str(given), "CIFAR-10"
    unzipped = ROOT / ".data" / "cifar10-jpeg"
    if not unzipped.is_dir() and (SHARED / "cifar10-jpeg.zip").is_file():
        with zipfile.ZipFile(SHARED / "cifar10-jpeg.zip") as zf:
            zf.extractall(unzipped.parent)
    if unzipped.is_dir():
        return "imagefolder", str(unzipped), "CIFAR-10 (JPEG copy)"
    return "cifar10", str(ROOT / "data"), "CIFAR-10"


def tinyimagenet_source(data_dir: str | None) -> tuple[str, str, str]:
    """(dataset, data_dir, what it is) for Tiny ImageNet: a given folder, the zip beside the project, or data/."""
    if data_dir is None and (SHARED / "tiny-imagenet-200.zip").is_file():
        data_dir = str(SHARED)
    return "tinyimagenet", data_dir or str(ROOT / "data"), "Tiny ImageNet (official train+val, 70/30 split)"


def run_recipe(
    *, name: str, seeds: int, data_dir: str | None, out_root: Path, quick: bool, device: str, compile_model: bool, log
) -> dict[str, Any]:
    """One recipe for each seed: accuracy per seed with its mean and spread, wall clock, seconds per epoch, img/s."""
    runs, data, load_seconds, what = [], None, None, "synthetic images (random pixels: accuracy is chance)"
    dataset, source = name, "synthetic"
    if not quick:
        dataset, source, what = (cifar10_source if name == "cifar10" else tinyimagenet_source)(data_dir)
    for seed in range(1, seeds + 1):
        out_dir = out_root / f"{name}-seed{seed}"  # a killed run continues from its checkpoint here
        shape = ("epochs", "peak_epoch", "batch_size")
        overrides = {**{k: QUICK[name][k] for k in shape}, "max_lr": 0.05} if quick else {}
        recipe = load_recipe(
            RECIPES[name],
            dataset=dataset,
            data_dir=source,
            seed=seed,
            device=device,
            compile=compile_model,
            out_dir=str(out_dir),
            resume=(out_dir / "checkpoint.pt").exists(),
            progress=not quick,
            download=not quick,
            **overrides,
        )
        if data is None:  # the same images for every seed (the recipes use all of them)
            t0 = time.perf_counter()
            data = _quick_data(name) if quick else load_data(recipe)
            load_seconds = round(time.perf_counter() - t0, 2)
        log(f"{name} seed {seed}: {recipe.optim.epochs} epochs on {data!r}")
        m = run(recipe, data=data).metrics
        img_s = m["steps_per_epoch"] * recipe.optim.batch_size * m["epochs_done"] / sum(m["epoch_seconds"])
        runs.append(
            {
                "seed": seed,
                "test_acc": m["test_acc"],
                "best_test_acc": m["best_test_acc"],
                "wall_seconds": round(m["wall_seconds"], 2),
                "seconds_per_epoch": round(statistics.mean(m["epoch_seconds"]), 2),
                "first_epoch_seconds": round(m["epoch_seconds"][0], 2),
                "checkpoint_seconds": round(sum(m["checkpoint_seconds"]), 2),
                "img_s": round(img_s, 1),
                "max_lr": m["max_lr"],
                "precision": m["precision"],
                "out_dir": recipe.outputs.out_dir,
            }
        )
        log(f"{name} seed {seed}: {m['test_split']} accuracy {m['test_acc']:.2%}, {m['wall_seconds']:.0f} s")
    accs = [r["test_acc"] for r in runs]
    return {
        "recipe": name,
        "config": str(RECIPES[name].relative_to(ROOT)),
        "data": what,
        "dataset": dataset,
        "n_train": int(len(data.y_train)),
        "n_test": int(len(data.y_test)),
        "test_split": data.test_split,
        "epochs": recipe.optim.epochs,
        "batch_size": recipe.optim.batch_size,
        "load_seconds": load_seconds,
        "seeds": len(runs),
        "test_acc_mean": statistics.mean(accs),
        "test_acc_spread": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "runs": runs,
    }


def _quick_data(name: str) -> ImageData:
    q = QUICK[name]
    return synthetic(
        n_train=q["n_train"], n_test=100, image_size=q["image_size"], num_classes=q["num_classes"], name=name, seed=0
    )


def run_bench(*, data_dir: str | None, quick: bool, device: str, compile_model: bool, log) -> dict[str, Any]:
    """The throughput benchmark against the seed-style pipeline (throughput.py), on the CIFAR-10 data."""
    source = None if quick else cifar10_source(data_dir)
    kw = {"steps": 1, "warmup": 0, "repeats": 1, "batch_size": 16} if quick else {}
    return {
        "recipe": "bench",
        **throughput(
            data_dir=source[1] if source else None,
            dataset=source[0] if source else "imagefolder",
            device=device,
            compile_model=compile_model,
            log=log,
            **kw,
        ),
    }


def table(results_dir: Path) -> str:
    """The README's results table: one row per recipe and device kind, a dash where nothing was measured."""
    rows = {}
    for path in sorted(results_dir.glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("recipe") in RECIPES and not r.get("quick"):
            rows[(r["recipe"], r["device_kind"])] = r
    lines = [
        "| recipe | device | data | epochs | seeds | accuracy (mean ± sd) | wall clock per run | s/epoch | img/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for recipe in RECIPES:
        for kind in sorted({k for _, k in rows} | {"cpu", "cuda"}):
            r = rows.get((recipe, kind))
            if r is None:
                lines.append(f"| {recipe} | {kind} | - | - | - | - | - | - | - |")
                continue
            runs = r["runs"]
            wall = statistics.mean(x["wall_seconds"] for x in runs)
            lines.append(
                f"| {recipe} | {r['device_name']} | {r['data']} | {r['epochs']} | {r['seeds']} | "
                f"{100 * r['test_acc_mean']:.2f}% ± {100 * r['test_acc_spread']:.2f} ({r['test_split']}) | "
                f"{wall:.0f} s | {statistics.mean(x['seconds_per_epoch'] for x in runs):.1f} | "
                f"{statistics.mean(x['img_s'] for x in runs):.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen work and write one JSON per recipe (and the benchmark) into the results folder."""
    p = argparse.ArgumentParser(prog="python benchmarks/full_runs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=(*RECIPES, "bench"), action="append", help="run only this (may repeat)")
    p.add_argument("--seeds", type=int, default=3, help="CIFAR-10 seeds (Tiny ImageNet runs one)")
    p.add_argument(
        "--results-dir",
        "--results_dir",
        dest="results_dir",
        default=None,
        help="where the JSON files go (default benchmarks/results/; --quick: a temporary folder)",
    )
    p.add_argument("--cifar10-dir", dest="cifar10_dir", default=None, help="CIFAR-10 (image folder or python batches)")
    p.add_argument("--tinyimagenet-dir", dest="tin_dir", default=None, help="the folder holding tiny-imagenet-200.zip")
    p.add_argument("--runs-dir", dest="runs_dir", default=None, help="the runs' out_dirs (default: results/runs/)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--quick", action="store_true", help="generated data, tiny settings: checks the pipeline runs")
    p.add_argument("--table", action="store_true", help="print the results table from the result files and stop")
    a = p.parse_args(argv)
    if a.seeds < 1:
        p.error(f"--seeds {a.seeds} must be at least 1")
    results = Path(a.results_dir) if a.results_dir else None
    if a.table:
        print(table(results or HERE / "results"))
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="full-runs-") if a.quick and results is None else None
    results = Path(tmp.name) if tmp else (results or HERE / "results")
    results.mkdir(parents=True, exist_ok=True)
    out_root = Path(a.runs_dir) if a.runs_dir else results / "runs"
    dev = pick_device(a.device)
    where = {
        "device": str(dev),
        **provenance(dev),
        "versions": versions(),
        "quick": a.quick,
        "device_kind": "cuda" if dev.type == "cuda" else dev.type,
        "command": " ".join(["python benchmarks/full_runs.py", *(argv if argv is not None else sys.argv[1:])]),
    }

    def log(line: str) -> None:
        print(line, flush=True)

    for work in a.only or (*RECIPES, "bench"):
        t0 = time.perf_counter()
        if work == "bench":
            result = run_bench(data_dir=a.cifar10_dir, quick=a.quick, device=a.device, compile_model=a.compile, log=log)
        else:
            seeds = a.seeds if work == "cifar10" else 1
            result = run_recipe(
                name=work,
                seeds=seeds,
                data_dir=a.cifar10_dir if work == "cifar10" else a.tin_dir,
                out_root=out_root,
                quick=a.quick,
                device=a.device,
                compile_model=a.compile,
                log=log,
            )
        result = {**result, **where, "seconds": round(time.perf_counter() - t0, 2)}
        path = results / f"{work}_{where['device_kind']}{'_quick' if a.quick else ''}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {path}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
