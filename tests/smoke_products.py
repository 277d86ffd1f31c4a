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


def skeleton(value):
    """The shape of a JSON value: dict keys (recursively), list lengths with their first item's shape, scalar types."""
    if isinstance(value, dict):
        return {k: skeleton(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return {"list": len(value), "item": skeleton(value[0]) if value else None}
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
