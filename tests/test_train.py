"""The training recipe end to end on generated data: products, resume, divergence, the command line."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakes import make_cifar10_batches

from eva_helpers import engine
from eva_helpers.files import load_torch
from eva_helpers.lr_finder import RULES
from eva_helpers.model_file import load_trained
from eva_helpers.recipe import SPEC, check_params, load_recipe, read_config
from eva_helpers.train import main, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar10_batches(tmp_path_factory.mktemp("cifar"), n_train_per_class=5, n_test_per_class=2, seed=0)


def recipe(data_dir, out_dir, **over):
    return load_recipe(
        **{
            "data_dir": str(data_dir),
            "out_dir": str(out_dir),
            "download": False,
            "epochs": 3,
            "peak_epoch": 1,
            "batch_size": 10,
            "max_lr": 0.02,
            "progress": False,
            "precision": "fp32",
            "channels_last": False,
            **over,
        }
    )


def train(params):
    """Notebook 04 (through the command line's run): the trained weights and fit's result."""
    result = run(params)
    return torch.load(result.paths["model"], weights_only=True)["model"], result


def test_fit_writes_every_product(cifar, tmp_path):
    params = recipe(cifar, tmp_path, max_lr=None, finder_iters=6)
    weights, result = train(params)
    out = Path(params.outputs.out_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    steps = 50 // 10
    assert metrics["finished"] and metrics["steps_per_epoch"] == steps
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert set(metrics["history"][0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"}
    assert len(metrics["lr_per_step"]) == 3 * steps and len(metrics["epoch_seconds"]) == 3
    assert metrics["test_acc"] == metrics["history"][-1]["test_acc"] and 0 <= metrics["test_acc"] <= 1
    assert metrics["best_test_acc"] == max(h["test_acc"] for h in metrics["history"])
    assert metrics["max_lr_source"] == "lr range test" and metrics["max_lr"] > 0
    max_lr = metrics["max_lr"]
    assert metrics["history"][0]["lr"] == pytest.approx(max_lr)  # the peak is the last step of peak_epoch
    assert metrics["lr_per_step"][0] == pytest.approx(max_lr / 100)
    assert metrics["lr_per_step"][-1] == pytest.approx(max_lr / 1e4)
    assert metrics["params"]["seed"] == 1 and metrics["device"] == "cpu" and "torch" in metrics["versions"]
    assert metrics["test_split"] == "test" and metrics["augment"]["cutout"] == 8
    assert metrics["data"]["dataset"] == "cifar10" and metrics["params"]["model"] == "custom_resnet"
    assert result.metrics == metrics and result.history == metrics["history"]
    finder = json.loads((out / "lr_finder.json").read_text())
    assert finder["suggested_lr"] == max_lr and len(finder["lr"]) == len(finder["loss"]) > 0
    picked = finder["probe"]["max_lr"] if finder["rule"] == "probe" else finder["suggestions"][finder["rule"]]
    assert finder["rule"] == SPEC["lr_rule"].default and picked == max_lr
    assert set(finder["suggestions"]) == set(RULES)
    saved = torch.load(out / "model.pt", weights_only=True)
    assert set(saved) == {"model", "meta"} and saved["meta"]["num_classes"] == 10
    model, meta = load_trained(out_dir=out)
    assert meta["classes"][0] == "airplane" and meta["test_acc"] == metrics["test_acc"]
    assert meta["data"] == metrics["data"] and meta["precision"] == "float32"
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v)


@pytest.mark.slow  # three trainings
@pytest.mark.parametrize("ema", [0.0, 0.9])  # with ema, the weights' moving average must come back too
def test_resume_after_an_interruption_matches_an_uninterrupted_run(cifar, tmp_path, monkeypatch, ema):
    full_weights, full = train(recipe(cifar, tmp_path / "full", ema=ema))

    real = engine.train_epoch

    def interrupted(**kw):
        if kw["epoch"] == 2:
            raise KeyboardInterrupt
        return real(**kw)

    monkeypatch.setattr("eva_helpers.training.train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(recipe(cifar, tmp_path / "cut", ema=ema))
    assert load_torch(path=tmp_path / "cut" / "checkpoint.pt")["epoch"] == 2
    monkeypatch.setattr("eva_helpers.training.train_epoch", real)
    resumed_weights, resumed = train(recipe(cifar, tmp_path / "cut", ema=ema, resume=True))
    assert resumed.history == full.history and resumed.metrics["lr_per_step"] == full.metrics["lr_per_step"]
    for k, v in full_weights.items():
        assert torch.equal(resumed_weights[k], v), k


def test_resume_refuses_other_parameters(cifar, tmp_path):
    train(recipe(cifar, tmp_path, epochs=1))
    with pytest.raises(ValueError, match="max_lr: checkpoint 0.02 vs now 0.05"):
        train(recipe(cifar, tmp_path, epochs=1, max_lr=0.05, resume=True))


def test_nan_loss_stops_with_epoch_step_and_lr_and_keeps_the_last_checkpoint(cifar, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = torch.nn.CrossEntropyLoss.forward

    def poisoned(self, out, y):
        calls["n"] += 1
        loss = real(self, out, y)
        return loss * float("nan") if calls["n"] == 8 else loss  # step 3 of epoch 2

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    with pytest.raises(engine.TrainingDiverged, match=r"epoch 2, step 3 of 5 \(LR [0-9.e-]+\)"):
        train(recipe(cifar, tmp_path))
    assert load_torch(path=tmp_path / "checkpoint.pt")["epoch"] == 1


def test_a_dataset_smaller_than_one_batch_is_refused(cifar, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch .batch_size=64.; lower batch_size"):
        train(recipe(cifar, tmp_path, batch_size=64))


@pytest.mark.slow  # the command line end to end, range test and figures included
def test_command_line_uses_the_same_names_and_products(cifar, tmp_path, capsys):
    assert (
        main(
            [
                "--data_dir",
                str(cifar),
                "--out_dir",
                str(tmp_path),
                "--download",
                "false",
                "--epochs",
                "1",
                "--peak_epoch",
                "1",
                "--batch_size",
                "10",
                "--max_lr",
                "None",
                "--finder_iters",
                "5",
                "--progress",
                "false",
            ]
        )
        == 0
    )
    assert {
        "metrics.json",
        "model.pt",
        "checkpoint.pt",
        "lr_finder.json",
        "lr_finder.png",
        "history.png",
        "lr_schedule.png",
    } <= {p.name for p in tmp_path.iterdir()}
    assert "test accuracy" in capsys.readouterr().out


def test_command_line_config_files_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nmax_lrr: 0.1\n")
    with pytest.raises(ValueError, match="Did you mean 'max_lr'"):
        main(["--config", str(bad)])
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        check_params(read_config(config), strict=True)


# --- a real process, killed with SIGKILL at several moments, then resumed -------------------------

KILLER = r"""
import os, signal, sys
mode, n = sys.argv[1], int(sys.argv[2])
count = {"n": 0}
def tick():
    count["n"] += 1
    if count["n"] == n:
        os.kill(os.getpid(), signal.SIGKILL)
if mode == "step":            # in the middle of an epoch
    import torch
    real_step = torch.optim.SGD.step
    def step(self, *a, **k):
        tick()
        return real_step(self, *a, **k)
    torch.optim.SGD.step = step
elif mode == "rename":        # temp file written and synced, not yet renamed over the checkpoint
    real_replace = os.replace
    def replace(a, b):
        if str(b).endswith("checkpoint.pt"):
            tick()
        return real_replace(a, b)
    os.replace = replace
elif mode == "write":         # half-way through writing the checkpoint's temp file
    import eva_helpers.files as ck
    real_fdopen = os.fdopen
    class Half:
        def __init__(self, f): self.f = f
        def __enter__(self): return self
        def __exit__(self, *a): return self.f.__exit__(*a)
        def write(self, data):
            if len(data) < 1_000_000:  # metrics.json and friends; the checkpoint is megabytes
                return self.f.write(data)
            self.f.write(data[: len(data) // 2]); self.f.flush(); tick(); return self.f.write(data[len(data) // 2:])
        def __getattr__(self, name): return getattr(self.f, name)
    ck.os.fdopen = lambda fd, mode: Half(real_fdopen(fd, mode))
from eva_helpers.train import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_gives_the_same_weights(cifar, tmp_path):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [
        "--data_dir",
        str(cifar),
        "--download",
        "false",
        "--epochs",
        "3",
        "--peak_epoch",
        "1",
        "--batch_size",
        "10",
        "--max_lr",
        "0.02",
        "--progress",
        "false",
        "--precision",
        "fp32",
        "--channels_last",
        "false",
    ]

    def run(mode, n, out, *extra):
        return subprocess.run(
            [sys.executable, str(script), mode, str(n), "--out_dir", str(out), *args, *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    reference = tmp_path / "reference"
    assert run("none", 0, reference).returncode == 0
    expected = torch.load(reference / "model.pt", weights_only=True)["model"]
    expected_history = json.loads((reference / "metrics.json").read_text())["history"]

    # (mode, n, epochs done in the checkpoint that survives the kill)
    for mode, n, survivor in [("step", 8, 1), ("rename", 2, 1), ("write", 2, 1), ("write", 1, None)]:
        out = tmp_path / f"{mode}{n}"
        killed = run(mode, n, out)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        ckpt = out / "checkpoint.pt"
        assert (load_torch(path=ckpt)["epoch"] if ckpt.exists() else None) == survivor
        resumed = run("none", 0, out, "--resume", "true")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        got = torch.load(out / "model.pt", weights_only=True)["model"]
        for k, v in expected.items():
            assert torch.equal(got[k], v), f"{mode}{n}: {k} differs"
        assert json.loads((out / "metrics.json").read_text())["history"] == expected_history
        assert not [
            p.name for p in out.iterdir() if p.name.endswith(".tmp")
        ]  # a killed write's temp file is cleaned up


@pytest.mark.slow  # three trainings
def test_the_same_seed_gives_the_same_metrics_and_another_seed_does_not(cifar, tmp_path):
    a = train(recipe(cifar, tmp_path / "a", epochs=1))[1]
    b = train(recipe(cifar, tmp_path / "b", epochs=1))[1]
    c = train(recipe(cifar, tmp_path / "c", epochs=1, seed=2))[1]
    assert a.history == b.history
    assert a.history != c.history


def test_a_tta_run_reports_one_accuracy_in_metrics_notebook_05_and_the_app(cifar, tmp_path):
    """metrics.json, notebook 05's evaluation and the app's report agree, flip TTA included, to the loss."""
    from eva_helpers.analysis import error_report
    from eva_helpers.app.local import load_local
    from eva_helpers.data import load_model_data
    from eva_helpers.inference import predict_logits

    _, result = train(recipe(cifar, tmp_path, tta=True, epochs=2))
    model, meta = load_trained(out_dir=tmp_path)
    assert meta["tta"] is True
    data = load_model_data(meta=meta)  # as notebook 05 does
    logits = predict_logits(model=model, images=data.x_test, meta=meta)
    report = error_report(logits=logits, labels=data.y_test, classes=data.classes, split=data.test_split)
    last = result.metrics["history"][-1]
    assert report.accuracy == result.metrics["test_acc"] == meta["test_acc"]
    assert float(report.loss.mean()) == pytest.approx(last["test_loss"], rel=1e-5)  # the TTA logits themselves
    plain = error_report(logits=predict_logits(model=model, images=data.x_test, meta={**meta, "tta": False}),
                         labels=data.y_test, classes=data.classes)  # fmt: skip
    assert float(plain.loss.mean()) != pytest.approx(last["test_loss"], rel=1e-5)  # so the check above can fail
    app = load_local(model_path=tmp_path / "model.pt", progress=False)
    assert app.report["accuracy"] == report.accuracy and app.report["n"] == report.n


@pytest.mark.filterwarnings("ignore:the LR range test found no usable descent")
def test_notebook_03s_range_test_is_reused_only_for_the_same_model_data_and_settings(cifar, tmp_path, monkeypatch):
    """03 then 04 with the same settings runs the range test once; any change that shapes the curve runs it again."""
    from eva_helpers import peak
    from eva_helpers.data import load_data
    from eva_helpers.files import save_json
    from eva_helpers.run_setup import new_model

    params = recipe(cifar, tmp_path, max_lr=None, finder_iters=6, epochs=1)
    data = load_data(params)  # notebook 03's cells
    finder = peak.lr_test(new_model(params, data), data, params)
    save_json(obj=finder, path=tmp_path / "lr_finder.json")
    ran = []
    real = peak.lr_range_test
    monkeypatch.setattr(peak, "lr_range_test", lambda **kw: ran.append(1) or real(**kw))
    _, result = train(params.replace(lr_rule="steep"))  # notebook 04 in the same out_dir
    assert ran == [] and result.metrics["lr_range_test_reused"] is True
    assert result.metrics["max_lr"] == finder["suggestions"]["steep"]
    older = {**finder, "suggestions": {k: v for k, v in finder["suggestions"].items() if k != "blowup"}}
    save_json(obj=older, path=tmp_path / "lr_finder.json")  # written before the blowup rule existed
    _, result = train(params.replace(lr_rule="blowup"))  # its curve is read again, not run again
    assert ran == [] and result.metrics["max_lr"] == finder["suggestions"]["blowup"]
    save_json(obj=finder, path=tmp_path / "lr_finder.json")
    for change in ({"weight_decay": 1e-3}, {"seed": 2}, {"logit_scale": 0.5}):
        _, result = train(params.replace(**change))
        assert len(ran) == 1 and result.metrics["lr_range_test_reused"] is False, change
        ran.clear()
        save_json(obj=finder, path=tmp_path / "lr_finder.json")  # 03's again, for the next change
