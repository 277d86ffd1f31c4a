"""Which One-Cycle peak trains best, and where each LR range test rule lands: a sweep on small proxies of the recipes.

    python benchmarks/lr_sweep.py --workload cifar10              # grid, rules, variants, 2 seeds (~1.5 h, 2 AMX cores)
    python benchmarks/lr_sweep.py --workload tinyimagenet
    python benchmarks/lr_sweep.py --workload cifar10 --quick      # generated data, a minute: checks the pipeline
    python benchmarks/lr_sweep.py --table                         # the README's table from the result files

A proxy is the recipe in configs/ with the network at a fraction of its width, trained for a few epochs on a
class-balanced part of the training split (all of it for CIFAR-10). Every run, at a fixed peak of the grid or at a
rule's pick, is scored on a class-balanced part of the training split held out from training: the test split is
never read, so nothing here is chosen on the set the README reports. Each run keeps its own out_dir; the sweep
reuses a finished run's metrics.json, so a killed sweep continues where it stopped with the same command. `--reuse FILE`
also counts the runs (and range tests, with the probe's rehearsals) recorded in an earlier result file of the same
proxy as done: each one reused that way is marked with the commit that trained it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as `python benchmarks/lr_sweep.py` from a checkout, installed or not
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from full_runs import RECIPES, cifar10_source, tinyimagenet_source  # noqa: E402

from eva_helpers.data import ImageData, hold_out, load_data, synthetic  # noqa: E402
from eva_helpers.device import pick_device, provenance, versions  # noqa: E402
from eva_helpers.lr_finder import LR_RULES, PROBE  # noqa: E402
from eva_helpers.models import build_model  # noqa: E402
from eva_helpers.peak import lr_test  # noqa: E402
from eva_helpers.probe import probe_peak  # noqa: E402
from eva_helpers.recipe import SPEC, TRAIN_PARAMS, Recipe, load_recipe  # noqa: E402
from eva_helpers.run_setup import prepare  # noqa: E402
from eva_helpers.training import fit  # noqa: E402

# The proxies. CIFAR-10: ResNet-9 at 1/4 width (1/16 of the FLOPs), all 45,000 training images left after the
# held-out 5,000 (a 10,000-image subset preferred peaks x2.5 above Page's 0.4), 8 epochs peaking at epoch 2 (Page's
# 5 of 24), batch 512 as in the recipe. Tiny ImageNet: ResNet18 at 1/8 width (1/64 of the FLOPs,
# ~490 img/s on 2 bf16 cores, so a run takes about as long as CIFAR-10's) on 20 of the 200 classes, 8 epochs
# peaking at epoch 2 (the recipe's 10 of 50 is 1/5), batch 256 as in the recipe.
PROXIES: dict[str, dict[str, Any]] = {
    "cifar10": {"width": 0.25, "classes": 0, "train_images": 0, "held_out": 5_000, "epochs": 8, "peak_epoch": 2},
    "tinyimagenet": {"width": 0.125, "classes": 20, "train_images": 0, "held_out": 2_000, "epochs": 8,
                     "peak_epoch": 2},
}  # fmt: skip
GRID = (0.001, 0.004, 0.016, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)  # fixed peaks: x4 apart low down, x2 from 0.0625
# The full networks' peaks the proxies must agree with (within x2): Page's 0.4 with logits x 0.125 for ResNet-9
# (91.53% at full length, benchmarks/results/cifar10_cpu.json); the seeds' 0.1 for ResNet18 on Tiny ImageNet.
FULL_PEAK = {"cifar10": (0.4, "Page's recipe (configs/cifar10_custom_resnet.yaml): 91.53% at full length"),
             "tinyimagenet": (0.1, "the seeds' peak for ResNet18 on Tiny ImageNet (not measured here)")}  # fmt: skip
# The recipe beyond Page's, each trained at the best fixed peak with the same seeds and scored the same way.
# ema 0.97 averages over ~1/5 of a proxy's ~160 steps, as Page's 0.99 every 5 steps (~0.998) does over his 2,350.
VARIANTS: dict[str, dict[str, Any]] = {"label_smoothing 0.1": {"label_smoothing": 0.1}, "ema 0.9": {"ema": 0.9},
                                       "ema 0.97": {"ema": 0.97}}  # fmt: skip
QUICK = {"n_train": 96, "held_out": 32, "epochs": 2, "peak_epoch": 1, "batch_size": 32, "grid": (0.01, 0.1),
         "finder_iters": 20}  # fmt: skip


def proxy_data(workload: str, *, data_dir: str | None, quick: bool) -> tuple[ImageData, str]:
    """The proxy's images: the training split (or generated data), less a held-out part to score on."""
    p = PROXIES[workload]
    if quick:
        size, classes = (32, 10) if workload == "cifar10" else (64, 200)
        data = synthetic(n_train=QUICK["n_train"] + QUICK["held_out"], n_test=0, image_size=size,
                         num_classes=classes, name=workload, seed=0)  # fmt: skip
        return hold_out(data, n=QUICK["held_out"], seed=0), "synthetic images (random pixels: scores are chance)"
    dataset, source, what = (cifar10_source if workload == "cifar10" else tinyimagenet_source)(data_dir)
    recipe = load_recipe(RECIPES[workload], dataset=dataset, data_dir=source, test_limit=1, progress=True)
    data = load_data(recipe)  # the training split; test_limit=1 decodes a single test image, never used
    data = hold_out(data, n=p["held_out"], seed=0, classes=p["classes"], train_images=p["train_images"])
    return data, what


def proxy_recipe(workload: str, *, seed: int, max_lr: float | None, out_dir: Path, quick: bool, **changes) -> Recipe:
    """The recipe in configs/ at the proxy's length, with this seed and peak (and any changes), writing into out_dir."""
    p = PROXIES[workload]
    shape = {"epochs": p["epochs"], "peak_epoch": p["peak_epoch"]}
    if quick:
        shape = {k: QUICK[k] for k in ("epochs", "peak_epoch", "batch_size", "finder_iters")}
    return load_recipe(RECIPES[workload], **shape, seed=seed, max_lr=max_lr, tta=False, progress=False,
                       out_dir=str(out_dir), resume=(out_dir / "checkpoint.pt").exists(), **changes)  # fmt: skip


def run_once(workload: str, data: ImageData, recipe: Recipe, earlier: dict[str, Any] | None, **changes) -> dict:
    """{score, fit_seconds} of the proxy trained with this recipe (its changes to configs/ given): the run recorded in
    the earlier result file with the same seed, peak and changes, marked with its commit, else train_once's."""
    for run, did in recorded(earlier):
        if (run["seed"], did) == (recipe.machine.seed, changes) and math.isclose(run["max_lr"], recipe.optim.max_lr):
            trained_at = run.get("from", earlier["git_commit"])
            return {"score": run["score"], "fit_seconds": run["fit_seconds"], "from": trained_at}
    score, seconds = train_once(workload, data, recipe)
    return {"score": score, "fit_seconds": round(seconds, 1)}


def recorded(earlier: dict[str, Any] | None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(run, its changes to the recipe) for every run an earlier result file holds."""
    if earlier is None:
        return []
    plain = [*earlier["grid"], *(run for r in earlier["rules"].values() for run in r["runs"])]
    varied = [({**run, "max_lr": v["max_lr"]}, v["changes"]) for v in earlier["variants"].values() for run in v["runs"]]
    return [*((run, {}) for run in plain), *varied]


def train_once(workload: str, data: ImageData, recipe: Recipe) -> tuple[float, float]:
    """(held-out accuracy, seconds of fit) after training the proxy network with this recipe. A finished run that
    trained the same way on as many images, in this out_dir or a sibling (a rule that picks a grid peak), is reused,
    with the seconds it took then."""
    out = Path(recipe.outputs.out_dir)
    for done in [out / "metrics.json", *sorted(out.parent.glob("*/metrics.json"))]:
        m = json.loads(done.read_text()) if done.is_file() else {}
        sized = (m.get("n_train"), m.get("n_test")) == (len(data.y_train), len(data.y_test))
        if m.get("finished") and sized and same_training(m["params"], recipe):
            return float(m["test_acc"]), float(m["wall_seconds"])
    net = build_model(name=recipe.network.model, num_classes=data.num_classes, seed=recipe.machine.seed,
                      logit_scale=recipe.network.logit_scale, width=PROXIES[workload]["width"])  # fmt: skip
    m = fit(net, data, recipe).metrics
    return float(m["test_acc"]), float(m["wall_seconds"])


def same_training(params: dict[str, Any], recipe: Recipe) -> bool:
    """Whether a finished run's parameters (metrics.json's) train as `recipe` does: every parameter but where and how
    fast it ran, and the range test's when the peak is given; one the run predates counts as its default."""
    skip = {n for n, p in SPEC.items() if p.resume_may_differ}
    if recipe.optim.max_lr is not None:
        skip |= {n for n, p in SPEC.items() if p.group == "range_test"}
    want = {n: v for n, v in recipe.to_dict(TRAIN_PARAMS).items() if n not in skip}
    return all(params.get(n, SPEC[n].default) == v for n, v in want.items())


def sweep(workload: str, *, data: ImageData, seeds: int, grid: tuple[float, ...], out_root: Path, quick: bool,
          log, earlier: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Train at every fixed peak and at every rule's pick, for each seed; score each on the held-out images. Runs
    and range tests that `earlier` (a result file of this proxy) records are taken from it."""
    runs = []
    for seed in range(1, seeds + 1):
        for max_lr in grid:
            recipe = proxy_recipe(workload, seed=seed, max_lr=max_lr, out_dir=out_root / f"lr{max_lr:g}-seed{seed}",
                                  quick=quick)  # fmt: skip
            done = run_once(workload, data, recipe, earlier)
            runs.append({"max_lr": max_lr, "seed": seed, **done})
            log(f"{workload} seed {seed} max_lr {max_lr:g}: held-out accuracy {done['score']:.2%}")
    rules: dict[str, dict[str, Any]] = {rule: {"runs": []} for rule in LR_RULES}
    curves = []
    for seed in range(1, seeds + 1):
        recipe = proxy_recipe(workload, seed=seed, max_lr=None, out_dir=out_root / f"range-test-seed{seed}",
                              quick=quick)  # fmt: skip
        net = build_model(name=recipe.network.model, num_classes=data.num_classes, seed=seed,
                          logit_scale=recipe.network.logit_scale, width=PROXIES[workload]["width"])  # fmt: skip
        saved = out_root / f"range-test-seed{seed}.json"
        kept = [c for c in (earlier or {}).get("range_tests", []) if c["seed"] == seed]
        if kept:  # the earlier file's curve, its rules' picks and the probe's rehearsals (its pick read again)
            curve = kept[0]
            found = {**{k: curve[k] for k in ("lr", "loss", "probe")}, "from": curve.get("from", earlier["git_commit"]),
                     "suggestions": {k: v for k, v in curve["suggestions"].items() if k != PROBE}}  # fmt: skip
        else:
            found = lr_test(net, data, recipe, reuse=saved)
            saved.write_text(json.dumps(found))
        # the probe's rehearsals train on the proxy's training images less their own held-out part (saved: reused)
        found = probe_peak(prepare(net, data, recipe, rank=0, world=1), found)
        saved.write_text(json.dumps(found))
        curves.append({"seed": seed, "lr": found["lr"], "loss": found["loss"],
                       "suggestions": {**found["suggestions"], PROBE: found["suggested_lr"]},
                       "probe": found["probe"], **({"from": found["from"]} if "from" in found else {})})  # fmt: skip
        for rule in LR_RULES:
            pick = float(curves[-1]["suggestions"][rule])
            recipe = proxy_recipe(workload, seed=seed, max_lr=pick, out_dir=out_root / f"{rule}-seed{seed}",
                                  quick=quick)  # fmt: skip
            done = run_once(workload, data, recipe, earlier)
            rules[rule]["runs"].append({"seed": seed, "max_lr": pick, **done})
            log(f"{workload} seed {seed} rule {rule}: max_lr {pick:.3g}, held-out accuracy {done['score']:.2%}")
    for r in rules.values():
        r["max_lr"] = math.exp(statistics.mean(math.log(x["max_lr"]) for x in r["runs"]))  # geometric mean
        r["score"] = statistics.mean(x["score"] for x in r["runs"])
    means = grid_means(runs)
    best = max(means, key=means.get)
    variants = {}
    for name, changes in VARIANTS.items():
        variant = {"changes": changes, "max_lr": best, "runs": []}
        for seed in range(1, seeds + 1):
            slug = "-".join(f"{k}{v:g}" for k, v in changes.items())
            recipe = proxy_recipe(workload, seed=seed, max_lr=best, out_dir=out_root / f"{slug}-lr{best:g}-seed{seed}",
                                  quick=quick, **changes)  # fmt: skip
            done = run_once(workload, data, recipe, earlier, **changes)
            variant["runs"].append({"seed": seed, **done})
            log(f"{workload} seed {seed} {name} at max_lr {best:g}: held-out accuracy {done['score']:.2%}")
        variant["score"] = statistics.mean(x["score"] for x in variant["runs"])
        variants[name] = variant
    return {"grid": runs, "rules": rules, "range_tests": curves, "variants": variants}


def grid_means(runs: list[dict[str, Any]]) -> dict[float, float]:
    """{max_lr: score averaged over seeds} of the grid's runs, lowest peak first."""
    by_lr: dict[float, list[float]] = {}
    for run in runs:
        by_lr.setdefault(run["max_lr"], []).append(run["score"])
    return {lr: statistics.mean(s) for lr, s in sorted(by_lr.items())}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The best fixed peak (mean over seeds), each rule's distance from it in LR and in score, and each variant's
    gain over the plain recipe at that peak."""
    means = grid_means(result["grid"])
    best = max(means, key=means.get)
    rules = {
        rule: {"max_lr": r["max_lr"], "score": r["score"], "times_best": r["max_lr"] / best,
               "points_below_best": 100 * (means[best] - r["score"]),
               "within_x2_and_1_point": 0.5 <= r["max_lr"] / best <= 2 and 100 * (means[best] - r["score"]) <= 1}
        for rule, r in result["rules"].items()
    }  # fmt: skip
    full_lr = result["full_peak"]["max_lr"]
    return {"grid_means": [{"max_lr": lr, "score": s} for lr, s in means.items()],
            "best_fixed": {"max_lr": best, "score": means[best], "times_full_peak": best / full_lr,
                           "within_x2_of_full_peak": 0.5 <= best / full_lr <= 2},
            "rules": rules,
            "variants": {name: {"score": v["score"], "points_vs_best_fixed": 100 * (v["score"] - means[v["max_lr"]])}
                         for name, v in result.get("variants", {}).items()}}  # fmt: skip


def chosen_rule(results_dir: Path) -> tuple[str, dict[str, float]]:
    """The default rule the sweeps choose, of the rules measured on every swept workload: the one that lands within x2
    and 1 point of the best fixed peak (the issue's test) on the most workloads, and of those, the one whose pick is
    the fewest held-out points below the best, averaged over the workloads. Also {rule: those mean points}."""
    below: dict[str, list[float]] = {rule: [] for rule in LR_RULES}
    passes = dict.fromkeys(LR_RULES, 0)
    swept = [json.loads(p.read_text()) for p in sorted(results_dir.glob("lr_sweep_*.json")) if "_quick" not in p.name]
    for result in swept:
        for rule in LR_RULES:
            if rule in result["summary"]["rules"]:
                below[rule].append(result["summary"]["rules"][rule]["points_below_best"])
                passes[rule] += bool(result["summary"]["rules"][rule]["within_x2_and_1_point"])
    mean = {rule: statistics.mean(p) for rule, p in below.items() if swept and len(p) == len(swept)}
    if not mean:
        raise ValueError(f"no rule is measured on every sweep in {results_dir}; run benchmarks/lr_sweep.py first.")
    return min(mean, key=lambda rule: (-passes[rule], mean[rule])), mean


def table(results_dir: Path) -> str:
    """The README's table: per workload, the best fixed peak and each rule's pick, with held-out scores."""
    lines = [
        "| workload | proxy | best fixed peak | its score | "
        + " | ".join(f"`{r}`: peak, score" for r in LR_RULES)
        + " |",
        "|---|---|---|---|" + "---|" * len(LR_RULES),
    ]
    lines[0] += "".join(f" {name}, at the best peak |" for name in VARIANTS)
    lines[1] += "---|" * len(VARIANTS)
    for workload in PROXIES:
        path = results_dir / f"lr_sweep_{workload}.json"
        if not path.is_file():
            lines.append(f"| {workload} | - | - | - | " + " | ".join("-" for _ in [*LR_RULES, *VARIANTS]) + " |")
            continue
        r = json.loads(path.read_text())
        s = r["summary"]
        x = r["proxy"]
        proxy = f"{x['model']} x{x['width']:g}, {x['n_train']:,} images, {x['epochs']} ep"
        best = s["best_fixed"]
        cells = [f"{best['max_lr']:g}", f"{100 * best['score']:.1f}%"]
        cells += [
            f"{v['max_lr']:.3g}, {100 * v['score']:.1f}%" if v else "-"
            for v in (s["rules"].get(rule) for rule in LR_RULES)
        ]
        cells += [
            f"{100 * v['score']:.1f}% ({v['points_vs_best_fixed']:+.1f})" if v else "-"
            for v in (s.get("variants", {}).get(name) for name in VARIANTS)
        ]
        lines.append(f"| {workload} | {proxy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Sweep one workload's proxy and write benchmarks/results/lr_sweep_<workload>.json, or print the table."""
    p = argparse.ArgumentParser(prog="python benchmarks/lr_sweep.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=tuple(PROXIES), help="which recipe's proxy to sweep")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--data-dir", dest="data_dir", default=None, help="CIFAR-10 folder, or the folder of the Tiny zip")
    p.add_argument("--results-dir", dest="results_dir", default=None, help="default benchmarks/results/ (--quick: tmp)")
    p.add_argument("--runs-dir", dest="runs_dir", default=None, help="the runs' out_dirs (default: results/runs/)")
    p.add_argument("--quick", action="store_true", help="generated data, tiny settings: checks the pipeline runs")
    p.add_argument("--table", action="store_true", help="print the README's table from the result files and stop")
    p.add_argument("--reuse", default=None, help="an earlier result file of the same proxy: its runs count as done")
    a = p.parse_args(argv)
    if a.table:
        print(table(Path(a.results_dir) if a.results_dir else HERE / "results"))
        return 0
    if a.workload is None:
        p.error("--workload is required (cifar10 or tinyimagenet), unless --table")
    if a.seeds < 1:
        p.error(f"--seeds {a.seeds} must be at least 1")
    tmp = tempfile.TemporaryDirectory(prefix="lr-sweep-") if a.quick and a.results_dir is None else None
    results = Path(tmp.name) if tmp else Path(a.results_dir or HERE / "results")
    out_root = (Path(a.runs_dir) if a.runs_dir else results / "runs") / f"lr_sweep_{a.workload}"
    out_root.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data, what = proxy_data(a.workload, data_dir=a.data_dir, quick=a.quick)
    recipe = proxy_recipe(a.workload, seed=1, max_lr=None, out_dir=out_root, quick=a.quick)
    full_lr, full_why = FULL_PEAK[a.workload]
    dev = pick_device("auto")
    result: dict[str, Any] = {
        "workload": a.workload,
        "proxy": {
            "model": recipe.network.model,
            "width": PROXIES[a.workload]["width"],
            "config": str(RECIPES[a.workload].relative_to(ROOT)),
            "epochs": recipe.optim.epochs,
            "peak_epoch": recipe.optim.peak_epoch,
            "batch_size": recipe.optim.batch_size,
            "n_train": int(len(data.y_train)),
            "classes": data.num_classes,
            "tta": False,
        },
        "data": what,
        "scored_on": f"{len(data.y_test):,} class-balanced {data.test_split} (never trained on; the test split unread)",
        "default_rule": SPEC["lr_rule"].default,
        "full_peak": {"max_lr": full_lr, "why": full_why},
    }
    earlier = json.loads(Path(a.reuse).read_text()) if a.reuse else None
    if earlier and (earlier["proxy"], earlier["scored_on"]) != (result["proxy"], result["scored_on"]):
        p.error(f"--reuse {a.reuse} swept another proxy ({earlier['proxy']}, scored on {earlier['scored_on']}), "
                f"not this one ({result['proxy']}, {result['scored_on']}); run without --reuse.")  # fmt: skip
    grid = QUICK["grid"] if a.quick else GRID
    result.update(sweep(a.workload, data=data, seeds=a.seeds, grid=grid, out_root=out_root, quick=a.quick,
                        log=lambda line: print(line, flush=True), earlier=earlier))  # fmt: skip
    result["summary"] = summary(result)
    every = [
        *result["grid"],
        *(run for r in [*result["rules"].values(), *result["variants"].values()] for run in r["runs"]),
    ]
    result["fit_seconds"] = round(sum(run["fit_seconds"] for run in every), 1)  # the runs' own, reused or not
    command = " ".join(["python benchmarks/lr_sweep.py", *(argv if argv is not None else sys.argv[1:])])
    result.update({"device": str(dev), **provenance(dev), "versions": versions(), "quick": a.quick,
                   "command": command, "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
    path = results / f"lr_sweep_{a.workload}{'_quick' if a.quick else ''}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
