"""benchmarks/full_runs.py: the full-length proof's result files and the README table made from them."""

import json
from pathlib import Path

import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def full_runs():
    return load_script(ROOT / "benchmarks" / "full_runs.py")


@pytest.mark.slow
def test_quick_writes_a_result_file_per_work_of_the_full_shape(full_runs, tmp_path):
    assert full_runs.main(["--quick", "--seeds", "2", "--results-dir", str(tmp_path)]) == 0
    cifar = json.loads((tmp_path / "cifar10_cpu_quick.json").read_text())
    assert cifar["seeds"] == 2 and [r["seed"] for r in cifar["runs"]] == [1, 2] and cifar["quick"] is True
    accs = [r["test_acc"] for r in cifar["runs"]]
    assert cifar["test_acc_mean"] == pytest.approx(sum(accs) / 2)
    for run in cifar["runs"]:
        assert run["wall_seconds"] >= run["seconds_per_epoch"] * cifar["epochs"] and run["img_s"] > 0
    assert cifar["device_kind"] == "cpu" and cifar["data"].startswith("synthetic") and "torch" in cifar["versions"]
    tin = json.loads((tmp_path / "tinyimagenet_cpu_quick.json").read_text())
    assert tin["seeds"] == 1 and tin["test_split"] == "validation" and tin["n_train"] == 100
    bench = json.loads((tmp_path / "bench_cpu_quick.json").read_text())
    assert bench["mode"] == "throughput" and bench["baseline_img_s"] > 0 and bench["ours_img_s"] > 0
    assert "| cifar10 | cpu | - |" in full_runs.table(tmp_path)  # quick runs never fill the README's table


def test_the_table_shows_what_was_measured_and_a_dash_for_the_rest(full_runs, tmp_path):
    run = {"seed": 1, "test_acc": 0.9123, "wall_seconds": 4400.0, "seconds_per_epoch": 180.0, "img_s": 290.0}
    result = {"recipe": "cifar10", "device_kind": "cpu", "device_name": "AMD EPYC", "data": "CIFAR-10 (JPEG copy)",
              "epochs": 24, "seeds": 1, "test_acc_mean": 0.9123, "test_acc_spread": 0.0, "test_split": "test",
              "runs": [run], "quick": False}  # fmt: skip
    (tmp_path / "cifar10_cpu.json").write_text(json.dumps(result))
    lines = full_runs.table(tmp_path).splitlines()
    assert (
        "| cifar10 | AMD EPYC | CIFAR-10 (JPEG copy) | 24 | 1 | 91.23% ± 0.00 (test) | 4400 s | 180.0 | 290 |" in lines
    )
    assert "| cifar10 | cuda | - | - | - | - | - | - | - |" in lines
    assert "| tinyimagenet | cpu | - | - | - | - | - | - | - |" in lines


def test_the_readme_shows_the_table_of_the_committed_result_files(full_runs):
    # A result file committed without its row, or a row edited by hand, would show a reader the wrong number.
    table = full_runs.table(ROOT / "benchmarks" / "results")
    assert table in (ROOT / "README.md").read_text(), "paste `python benchmarks/full_runs.py --table` into the README"
