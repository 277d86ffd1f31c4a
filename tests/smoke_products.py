"""What the smoke-run notebooks wrote, against the expected values kept in tests/notebook_outputs/products.json.

tests/smoke_notebooks.py copies this file into the build folder as test_products.py, beside the executed
notebooks; pytest runs it after them (files run in name order), so it reads what they wrote to outputs/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
EXPECTED_FILE = HERE / "expected_products.json"
# Files whose values the smoke parameters fix (generated data, seeded): compared value by value.
# The others (timings, losses, probabilities) are compared by shape: the keys, the types and the list lengths.
BY_VALUE = ("stats.json",)
WHERE = ("source",)  # where the data was read from: a folder of this run, compared by type only


# Lists whose length depends on float arithmetic, which differs between CPUs (bf16 or not, oneDNN's kernels):
# the range test stops when the loss blows up, and a model makes as many kinds of mistake as it makes.
ANY_LENGTH = ("lr", "loss", "most_confused")


def skeleton(value, key: str = ""):
    """The shape of a JSON value: dict keys (recursively), list lengths with their first item's shape, scalar types."""
    if isinstance(value, dict):
        return {k: skeleton(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return {"list": "any" if key in ANY_LENGTH else len(value), "item": skeleton(value[0]) if value else None}
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"  # 0 and 0.5 are both numbers: JSON does not tell them apart reliably
    return type(value).__name__


def describe(path: Path):
    """What this file is compared by: its values, or its skeleton."""
    value = json.loads(path.read_text())
    if path.name not in BY_VALUE:
        return skeleton(value)
    return {k: skeleton(v) if k in WHERE else v for k, v in value.items()}


def close(got, want) -> bool:
    """Equal, with numbers compared to a relative 1e-6 (float text round-trips)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(close, got, want))
    if isinstance(want, float) or isinstance(got, float):
        return got == pytest.approx(want, rel=1e-6)
    return got == want


def expected() -> dict:
    return json.loads(EXPECTED_FILE.read_text()) if EXPECTED_FILE.exists() else {}


@pytest.mark.parametrize("name", sorted(expected()))
def test_the_notebooks_wrote_the_expected_product(name):
    path = HERE / "outputs" / name
    assert path.is_file(), f"the smoke-run notebooks did not write outputs/{name}"
    want = expected()[name]
    if name in BY_VALUE:
        assert close(describe(path), want), f"outputs/{name} differs from the expected values"
    else:
        refresh = "python tests/smoke_notebooks.py refresh"
        assert describe(path) == want, f"outputs/{name} changed shape; if that is intended, run {refresh}"


def test_own_image_predictions_are_sorted_probabilities():
    found = json.loads((HERE / "outputs" / "predictions.json").read_text())
    assert found, "notebook 05 predicted no images"
    for item in found:
        probs = [t["prob"] for t in item["top"]]
        assert probs == sorted(probs, reverse=True) and 0 <= sum(probs) <= 1 + 1e-6
        assert len(item["top"]) == 5 and Path(item["path"]).suffix


def product(name: str):
    return json.loads((HERE / "outputs" / name).read_text())


def test_the_range_test_found_a_descent_and_each_rule_read_its_own_point():
    """tests/smoke.yaml's range test must see the loss fall, so that the rules differ and are checked by value."""
    import numpy as np

    from eva_helpers.lr_finder import suggest

    finder = product("lr_finder.json")
    assert finder["warning"] is None, f"the smoke range test found no descent: {finder['warning']}"
    assert len(set(finder["suggestions"].values())) >= 3, finder["suggestions"]  # minimum and blowup may meet
    assert finder["suggestions"] == suggest(lr=finder["lr"], loss=finder["loss"])[0]
    if finder["rule"] == "probe":  # rehearsals from blowup's pick down, the peak read off their held-out scores
        from eva_helpers.probe import read_peak

        runs = finder["probe"]["runs"]
        assert finder["suggestions"]["blowup"] in [run["max_lr"] for run in runs]
        assert finder["suggested_lr"] == read_peak(runs)
    else:
        assert finder["suggested_lr"] == finder["suggestions"][finder["rule"]]
    # torch-lr-finder's exponential steps from finder_start_lr to finder_end_lr (20 in tests/smoke.yaml)
    iters = int(round(np.log(1e6) / np.log(finder["lr"][1] / finder["lr"][0]))) + 1
    steps = [1e-5 * 1e6 ** (i / (iters - 1)) for i in range(len(finder["lr"]))]
    assert iters == 20 and finder["lr"] == pytest.approx(steps, rel=1e-6)


def test_notebook_04_trained_with_the_range_tests_peak_on_the_one_cycle_schedule():
    metrics, finder = product("metrics.json"), product("lr_finder.json")
    max_lr = finder["suggested_lr"]
    assert metrics["max_lr_source"] == "lr range test" and metrics["max_lr"] == max_lr
    assert metrics["finished"] and metrics["epochs_done"] == metrics["params"]["epochs"] == len(metrics["history"])
    steps = metrics["n_train"] // metrics["params"]["batch_size"]
    assert metrics["steps_per_epoch"] == steps and len(metrics["lr_per_step"]) == steps * metrics["epochs_done"]
    assert metrics["lr_per_step"][0] == pytest.approx(max_lr / metrics["params"]["div_factor"])
    assert max(metrics["lr_per_step"]) == pytest.approx(max_lr)
    assert metrics["test_acc"] == metrics["history"][-1]["test_acc"]


def test_notebook_05_reports_the_accuracy_notebook_04_measured():
    """One evaluation, one number: 05 recomputes 04's accuracy from model.pt, on the same split."""
    metrics, report = product("metrics.json"), product("misclassified.json")
    confusion = report["confusion_matrix"]
    assert report["n"] == metrics["n_test"] == sum(map(sum, confusion))
    assert report["accuracy"] == pytest.approx(metrics["test_acc"], abs=1e-12)
    assert report["count"] == report["n"] - sum(confusion[i][i] for i in range(len(confusion)))
    per_class = [sum(row) for row in confusion]
    assert per_class == [report["n"] // len(per_class)] * len(per_class)  # the class-balanced test split
    for i, name in enumerate(metrics["classes"]):
        assert report["per_class_accuracy"][name] == pytest.approx(confusion[i][i] / per_class[i])
