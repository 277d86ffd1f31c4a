"""benchmarks/lr_sweep.py: the proxies' sweep of One-Cycle peaks and rules, its result file and the README table."""

import json
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from scripts import load_script

from eva_helpers.lr_finder import LR_RULES
from eva_helpers.recipe import SPEC, TRAIN_PARAMS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lr_sweep():
    return load_script(ROOT / "benchmarks" / "lr_sweep.py")


def fake_result(*, rules):
    grid = [{"max_lr": lr, "seed": seed, "score": score}
            for lr, scores in {0.1: (0.70, 0.72), 0.2: (0.80, 0.78), 0.4: (0.75, 0.77)}.items()
            for seed, score in zip((1, 2), scores, strict=True)]  # fmt: skip
    return {"grid": grid, "rules": rules, "full_peak": {"max_lr": 0.4, "why": "Page"}}


def test_the_summary_finds_the_best_peak_on_the_mean_over_seeds_and_how_far_each_rule_is(lr_sweep):
    rules = {"valley": {"max_lr": 0.15, "score": 0.785}, "steep": {"max_lr": 0.01, "score": 0.60},
             "minimum": {"max_lr": 0.5, "score": 0.70}}  # fmt: skip
    s = lr_sweep.summary(fake_result(rules=rules))
    assert [g["max_lr"] for g in s["grid_means"]] == [0.1, 0.2, 0.4]
    assert s["best_fixed"]["max_lr"] == 0.2 and s["best_fixed"]["score"] == pytest.approx(0.79)
    assert s["best_fixed"]["within_x2_of_full_peak"] is True and s["best_fixed"]["times_full_peak"] == 0.5
    assert s["rules"]["valley"]["within_x2_and_1_point"] is True  # x0.75 of the peak, 0.5 point below
    assert s["rules"]["steep"]["within_x2_and_1_point"] is False  # x0.05
    assert s["rules"]["minimum"]["points_below_best"] == pytest.approx(9.0)
    assert s["rules"]["minimum"]["within_x2_and_1_point"] is False  # x2.5 and 9 points


def test_the_table_shows_each_sweep_and_a_dash_for_a_workload_not_swept(lr_sweep, tmp_path):
    rules = {r: {"max_lr": 0.2, "score": 0.79} for r in LR_RULES}
    result = {**fake_result(rules=rules), "proxy": {"model": "custom_resnet", "width": 0.25, "n_train": 10000,
                                                    "epochs": 8}}  # fmt: skip
    result["summary"] = lr_sweep.summary(result)
    (tmp_path / "lr_sweep_cifar10.json").write_text(json.dumps(result))
    lines = lr_sweep.table(tmp_path).splitlines()
    assert lines[2].startswith("| cifar10 | custom_resnet x0.25, 10,000 images, 8 ep | 0.2 | 79.0% | 0.2, 79.0% |")
    assert lines[3].startswith("| tinyimagenet | - |")


def test_the_readme_shows_the_table_of_the_committed_sweeps(lr_sweep):
    assert lr_sweep.table(ROOT / "benchmarks" / "results") in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_quick_writes_a_result_file_that_never_reads_the_test_split(lr_sweep, tmp_path):
    assert lr_sweep.main(["--workload", "cifar10", "--quick", "--seeds", "1", "--results-dir", str(tmp_path)]) == 0
    r_name = "lr_sweep_cifar10_quick.json"
    r = json.loads((tmp_path / r_name).read_text())
    assert [g["max_lr"] for g in r["grid"]] == list(lr_sweep.QUICK["grid"]) and r["quick"] is True
    assert set(r["rules"]) == set(LR_RULES) and all(len(x["runs"]) == 1 for x in r["rules"].values())
    assert "held-out training images" in r["scored_on"] and r["default_rule"] == SPEC["lr_rule"].default
    assert set(r["summary"]) == {"grid_means", "best_fixed", "rules", "variants"}
    best = r["summary"]["best_fixed"]["max_lr"]
    for name, variant in r["variants"].items():  # each variant trained at the best fixed peak, with its change
        assert variant["max_lr"] == best and len(variant["runs"]) == 1
        assert r["summary"]["variants"][name]["points_vs_best_fixed"] == pytest.approx(
            100 * (variant["score"] - r["summary"]["best_fixed"]["score"])
        )
    runs = tmp_path / "runs" / "lr_sweep_cifar10"
    for changes in lr_sweep.VARIANTS.values():  # each variant's run trained with its change
        slug = "-".join(f"{k}{v:g}" for k, v in changes.items())
        params = json.loads((runs / f"{slug}-lr{best:g}-seed1" / "metrics.json").read_text())["params"]
        assert {k: params[k] for k in changes} == changes
    assert all(0 <= g["score"] <= 1 for g in r["grid"])
    # a second run reuses every finished run (a killed sweep continues): same scores, nothing trained again
    first = {(g["max_lr"], g["seed"]): g["score"] for g in r["grid"]}
    assert lr_sweep.main(["--workload", "cifar10", "--quick", "--seeds", "1", "--results-dir", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "lr_sweep_cifar10_quick.json").read_text())
    assert {(g["max_lr"], g["seed"]): g["score"] for g in again["grid"]} == first
    assert again["seconds"] < r["seconds"]
    # --reuse: with no runs on disk, the result file alone answers for every run and range test, each marked so
    never = {"side_effect": AssertionError("trained again")}
    with mock.patch.object(lr_sweep, "train_once", **never), mock.patch.object(lr_sweep, "lr_test", **never):
        argv = ["--workload", "cifar10", "--quick", "--seeds", "1", "--results-dir", str(tmp_path / "again")]
        assert lr_sweep.main([*argv, "--runs-dir", str(tmp_path / "none"), "--reuse", str(tmp_path / r_name)]) == 0
    reused = json.loads((tmp_path / "again" / r_name).read_text())
    assert {k: reused[k] for k in ("summary", "proxy")} == {k: again[k] for k in ("summary", "proxy")}
    every = [
        *reused["grid"],
        *(run for x in [*reused["rules"].values(), *reused["variants"].values()] for run in x["runs"]),
    ]
    assert {run["from"] for run in every} == {again["git_commit"]} == {c["from"] for c in reused["range_tests"]}
    # reused from a file that itself reused: every run and curve still names the commit that trained it
    (tmp_path / "later.json").write_text(json.dumps({**reused, "git_commit": "a later commit"}))
    with mock.patch.object(lr_sweep, "train_once", **never), mock.patch.object(lr_sweep, "lr_test", **never):
        argv = ["--workload", "cifar10", "--quick", "--seeds", "1", "--results-dir", str(tmp_path / "third")]
        assert (
            lr_sweep.main([*argv, "--runs-dir", str(tmp_path / "none"), "--reuse", str(tmp_path / "later.json")]) == 0
        )
    third = json.loads((tmp_path / "third" / r_name).read_text())
    every = [
        *third["grid"],
        *(run for x in [*third["rules"].values(), *third["variants"].values()] for run in x["runs"]),
    ]
    assert {run["from"] for run in every} == {again["git_commit"]} == {c["from"] for c in third["range_tests"]}
    with pytest.raises(SystemExit):  # another proxy's file answers for nothing
        lr_sweep.main(
            ["--workload", "tinyimagenet", "--quick", "--results-dir", str(tmp_path), "--reuse", str(tmp_path / r_name)]
        )


def test_the_default_rule_is_the_one_the_committed_sweeps_choose(lr_sweep):
    rule, points = lr_sweep.chosen_rule(ROOT / "benchmarks" / "results")
    assert SPEC["lr_rule"].default == rule, f"the sweeps choose {rule!r} (points below the best peak: {points})"


def test_the_chosen_rule_passes_on_the_most_workloads_then_loses_the_fewest_points(lr_sweep, tmp_path):
    def sweeps(below):
        for workload, points in below.items():
            rules = {r: {"max_lr": 0.2, "score": 0.79 - p / 100} for r, p in points.items()}  # at the best peak
            result = fake_result(rules=rules)
            (tmp_path / f"lr_sweep_{workload}.json").write_text(json.dumps({"summary": lr_sweep.summary(result)}))
        return lr_sweep.chosen_rule(tmp_path)

    rule, points = sweeps({"cifar10": {"valley": 20, "steep": 2, "minimum": 3},
                           "tinyimagenet": {"valley": 5, "steep": 6, "minimum": 3}})  # fmt: skip
    assert rule == "minimum" and points == pytest.approx({"valley": 12.5, "steep": 4.0, "minimum": 3.0})
    # within 1 point on one workload beats fewer points on average but more than 1 on both
    rule, points = sweeps({"cifar10": {"valley": 0.5, "steep": 1.2}, "tinyimagenet": {"valley": 2.2, "steep": 1.2}})
    assert rule == "valley" and points["steep"] < points["valley"]


def test_a_finished_run_is_reused_only_if_it_trained_as_the_recipe_would(lr_sweep, tmp_path):
    recipe = lr_sweep.proxy_recipe("cifar10", seed=1, max_lr=0.5, out_dir=tmp_path, quick=True)
    params = recipe.to_dict(TRAIN_PARAMS)
    assert lr_sweep.same_training(params, recipe)
    older = {k: v for k, v in params.items() if k != "ema"}  # written before ema existed: it ran without one
    assert lr_sweep.same_training(older, recipe) and not lr_sweep.same_training(older, recipe.replace(ema=0.9))
    assert not lr_sweep.same_training({**params, "weight_decay": 1e-4}, recipe)
    elsewhere = {**params, "out_dir": "/elsewhere", "progress": True, "lr_rule": "valley"}
    assert lr_sweep.same_training(elsewhere, recipe)  # where it ran, and a rule that a given peak never read
    tested = recipe.replace(max_lr=None)  # the range test chose the peak, so its rule counts
    assert lr_sweep.same_training({**params, "max_lr": None}, tested)
    assert not lr_sweep.same_training({**elsewhere, "max_lr": None}, tested)


def test_a_run_in_a_sibling_folder_is_reused_only_when_it_saw_as_many_images(lr_sweep, tmp_path, monkeypatch):
    data = SimpleNamespace(y_train=[0] * 96, y_test=[0] * 32, num_classes=10)
    recipe = lr_sweep.proxy_recipe("cifar10", seed=1, max_lr=0.5, out_dir=tmp_path / "blowup-seed1", quick=True)
    (tmp_path / "lr0.5-seed1").mkdir()  # the grid's run at the same peak and seed
    ran = {"finished": True, "params": recipe.to_dict(TRAIN_PARAMS), "test_acc": 0.61, "wall_seconds": 12.0}
    metrics = tmp_path / "lr0.5-seed1" / "metrics.json"
    metrics.write_text(json.dumps({**ran, "n_train": 96, "n_test": 32}))
    monkeypatch.setattr(lr_sweep, "fit", mock.Mock(side_effect=AssertionError("trained again")))
    assert lr_sweep.train_once("cifar10", data, recipe) == (0.61, 12.0)
    metrics.write_text(json.dumps({**ran, "n_train": 40, "n_test": 32}))  # a smaller proxy's run answers for nothing
    with pytest.raises(AssertionError, match="trained again"):
        lr_sweep.train_once("cifar10", data, recipe)
