"""benchmarks/bench.py with tiny settings on random data: the JSON it reports, not how fast anything is."""

import json
from pathlib import Path

import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]

THROUGHPUT_KEYS = {
    "mode",
    "device",
    "baseline_img_s",
    "ours_img_s",
    "ratio",
    "model",
    "batch_size",
    "precision",
    "channels_last",
    "repeats",
    "steps",
    "warmup",
    "torch",
    "cpu_count",
    "data",
    "baseline_runs",
    "ours_runs",
    "baseline",
    "ours",
    "loadavg_start",
    "loadavg_end",
}
TINY = {"batch_size": 8, "steps": 1, "warmup": 0, "device": "cpu", "num_workers": 0}


@pytest.fixture(scope="module")
def bench():
    return load_script(ROOT / "benchmarks" / "bench.py")


def check_throughput(result: dict, repeats: int) -> None:
    assert THROUGHPUT_KEYS <= set(result)
    assert result["mode"] == "throughput" and result["device"] == "cpu" and result["model"] == "custom_resnet"
    assert result["batch_size"] == 8 and result["steps"] == 1 and result["repeats"] == repeats
    assert len(result["baseline_runs"]) == len(result["ours_runs"]) == repeats
    assert result["data"].startswith("random") and result["channels_last"] is True
    assert result["baseline"]["precision"] == "float32" and result["baseline"]["channels_last"] is False


@pytest.mark.slow
def test_command_line_ends_with_one_json_line_of_medians_and_their_ratio(bench, capsys):
    argv = [
        "--batch_size",
        "8",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--repeats",
        "2",
        "--device",
        "cpu",
        "--num_workers",
        "0",
    ]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    check_throughput(result, repeats=2)
    assert any("baseline" in line for line in lines[:-1])  # progress lines come first


@pytest.mark.slow
def test_recipe_runs_fit_and_reports_seconds_and_accuracy(bench, tmp_path):
    result = bench.recipe(
        epochs=1, train_limit=4, batch_size=4, max_lr=0.01, device="cpu", precision="fp32", out_dir=str(tmp_path)
    )
    assert result["mode"] == "recipe" and result["epochs"] == 1 and result["peak_epoch"] == 1
    assert 0 <= result["test_acc"] <= 1 and result["device"] == "cpu"
    assert result["batch_size"] == 4 and result["max_lr"] == 0.01 and result["n_train"] == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["test_acc"] == result["test_acc"]


@pytest.mark.slow
def test_precision_check_trains_fp32_and_bf16(bench):
    result = bench.precision_check(train_limit=4, epochs=1, batch_size=4, device="cpu")
    assert result["mode"] == "precision_check" and result["batch_size"] == 4 and result["max_lr"] == 0.02
    assert set(result["runs"]) == {"fp32", "bf16"}
    for p in ("fp32", "bf16"):
        assert 0 <= result[f"{p}_test_acc"] <= 1 and result[f"{p}_img_s"] > 0
    assert result["runs"]["fp32"]["test_acc"] == result["fp32_test_acc"]


def test_recipe_parameters_follow_the_config(bench):
    data = bench.synthetic(n_train=8)
    full = bench._bench_recipe(
        data=data,
        data_dir=None,
        epochs=None,
        batch_size=None,
        max_lr=0.05,
        device="cpu",
        precision="auto",
        compile_model=False,
        out_dir="out",
        seed=1,
        progress=False,
    )
    assert (full.optim.epochs, full.optim.peak_epoch, full.optim.batch_size, full.augment.cutout) == (24, 5, 512, 8)
    assert full.network.logit_scale == 0.125 and full.optim.max_lr == 0.05
    short = bench._bench_recipe(
        data=data,
        data_dir=None,
        epochs=12,
        batch_size=None,
        max_lr=None,
        device="cpu",
        precision="auto",
        compile_model=False,
        out_dir="out",
        seed=1,
        progress=False,
    )
    assert short.optim.peak_epoch == 2 and short.optim.max_lr is None


def test_bad_input_is_named(bench, tmp_path):
    with pytest.raises(ValueError, match="--steps"):
        bench.throughput(repeats=1, **{**TINY, "steps": 0})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bench.throughput(repeats=1, data_dir=str(tmp_path / "missing"), **TINY)
    with pytest.raises(SystemExit):
        bench.parse_args(["--recipe", "--precision-check"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--max_lr", "fast"])
    assert bench.parse_args(["--max_lr", "none"]).max_lr is None
