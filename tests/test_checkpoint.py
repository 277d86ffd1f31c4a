"""Resuming anywhere: a checkpoint written on one device and precision continues on another."""

import os
import random

import numpy as np
import pytest
import torch
from fakes import make_cifar10_batches

from eva_helpers.checkpoint import RunLog, load_checkpoint, restore
from eva_helpers.data import load_data
from eva_helpers.files import rng_state, set_rng_state
from eva_helpers.models import build_model
from eva_helpers.recipe import load_recipe
from eva_helpers.run_setup import make_sgd, new_model
from eva_helpers.schedule import one_cycle
from eva_helpers.training import fit


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar10_batches(tmp_path_factory.mktemp("cifar"), n_train_per_class=5, n_test_per_class=2, seed=0)


def run(data_dir, out_dir, **over):
    """fit on the fake CIFAR-10 with a tiny recipe (no figures: they are the command line's)."""
    recipe = load_recipe(**{"data_dir": str(data_dir), "out_dir": str(out_dir), "download": False, "epochs": 2,
                              "peak_epoch": 1, "batch_size": 10, "max_lr": 0.02, "progress": False,
                              "precision": "fp32", "channels_last": False, **over})  # fmt: skip
    data = load_data(recipe)
    return fit(new_model(recipe, data), data, recipe)


def test_a_checkpoint_loaded_for_another_device_restores_from_cpu_tensors(cifar, tmp_path):
    # The meta device stands in for CUDA: a checkpoint mapped onto it held the RNG states as non-CPU
    # tensors, which numpy and torch.set_rng_state refuse (the crash of every resume on a GPU).
    run(cifar, tmp_path, epochs=1)
    path = tmp_path / "checkpoint.pt"
    identity = torch.load(path, weights_only=True)["identity"]
    state = load_checkpoint(path=path, resume=True, identity=identity, may_differ=set(), defaults={},
                            device=torch.device("meta"), rank=0)  # fmt: skip
    assert all(t.device.type == "cpu" for t in (state["rng"]["torch"], state["rng"]["numpy"]["key"]))
    model = build_model(name="custom_resnet", num_classes=10)
    optimizer = make_sgd(model=model, lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = one_cycle(optimizer=optimizer, max_lr=0.02, epochs=1, peak_epoch=1, steps_per_epoch=5)
    log = restore(state=state, model=model, optimizer=optimizer, scheduler=scheduler,
                  scaler=torch.amp.GradScaler("cpu", enabled=False), precision="float32")  # fmt: skip
    assert isinstance(log, RunLog) and len(log.history) == 1
    assert torch.equal(model.fc.weight, state["model"]["fc.weight"])


def test_rng_states_come_back_and_no_cuda_state_is_kept_for_a_machine_with_fewer_gpus(monkeypatch):
    def one_gpu(states):
        if len(states) > 1:
            raise IndexError("list index out of range")  # torch.cuda.set_rng_state for a GPU this machine lacks

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.zeros(16, dtype=torch.uint8)] * 8)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", one_gpu)
    state = rng_state()
    assert "cuda" not in state  # one per visible GPU would not restore on a machine with fewer
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state({**state, "cuda": [torch.zeros(16, dtype=torch.uint8)] * 8})  # an 8-GPU checkpoint: ignored
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.slow  # fp16 autocast is slow on a CPU: 30 s
def test_a_bf16_or_fp32_run_resumes_under_fp16_with_a_fresh_loss_scale(cifar, tmp_path):
    run(cifar, tmp_path, epochs=2, precision="fp32")
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["precision"] == "float32" and ckpt["scaler"] == {}  # what ran is recorded, not "auto"
    torch.save({**ckpt, "epoch": 1, "history": ckpt["history"][:1], "lr_per_step": ckpt["lr_per_step"][:5],
                "epoch_seconds": ckpt["epoch_seconds"][:1]}, tmp_path / "checkpoint.pt")  # fmt: skip
    with pytest.warns(UserWarning, match="ran in float32 and this run resumes in float16"):
        result = run(cifar, tmp_path, epochs=2, precision="fp16", resume=True)
    assert result.metrics["epochs_done"] == 2 and result.metrics["precision"] == "float16"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["scaler"]["scale"] > 0  # fp16 now scales


def test_the_products_say_what_ran_and_how_long_each_part_took(cifar, tmp_path):
    result = run(cifar, tmp_path, epochs=2)
    m = result.metrics
    assert len(m["checkpoint_seconds"]) == len(m["epoch_seconds"]) == 2
    assert m["wall_seconds"] >= sum(m["epoch_seconds"]) + sum(m["checkpoint_seconds"])
    assert m["precision"] == "float32" and m["params"]["compile"] is False and m["device_name"]
    assert m["cuda"] is None and m["cudnn"] is None  # on the CPU
    assert m["git_commit"] is None or len(m["git_commit"].split("+")[0]) == 40
    meta = torch.load(result.paths["model"], weights_only=True)["meta"]
    assert {k: meta[k] for k in ("precision", "device_name", "git_commit")} == {
        k: m[k] for k in ("precision", "device_name", "git_commit")
    }
    assert meta["recipe"] == m["params"] and meta["compile"] is False  # model.pt holds the recipe that ran


# The last commit before the recipe object: its model.pt files (fit's keyword arguments, no "recipe" in the meta)
# must still load, predict and feed notebook 05 and the app.
BEFORE_RECIPE = "9b31d41"
OLD_TRAINING = """
import sys, warnings
warnings.simplefilter("ignore")
from eva_helpers.data import load_data
from eva_helpers.models import build_model
from eva_helpers.train import fit
data = load_data(dataset="cifar10", data_dir=sys.argv[1], download=False, progress=False)
fit(model=build_model(name="custom_resnet", num_classes=10, seed=1, logit_scale=0.125), data=data, epochs=1,
    peak_epoch=1, batch_size=10, max_lr=0.02, tta=True, progress=False, precision="fp32",
    channels_last=False, out_dir=sys.argv[2])
"""


@pytest.mark.slow  # trains one epoch with the old code
def test_a_model_pt_written_before_the_recipe_object_still_loads(cifar, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from eva_helpers.analysis import error_report
    from eva_helpers.app.local import load_local
    from eva_helpers.data import load_model_data
    from eva_helpers.inference import predict_logits
    from eva_helpers.model_file import load_trained

    root = Path(__file__).resolve().parents[1]
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", BEFORE_RECIPE, "eva_helpers"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"this checkout lacks commit {BEFORE_RECIPE} (a shallow clone?): {archive.stderr[-200:]!r}")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(old)}
    ran = subprocess.run([sys.executable, "-c", OLD_TRAINING, str(cifar), str(out)], cwd=old, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    model, meta = load_trained(out_dir=out)
    assert "recipe" not in meta and meta["tta"] is True and model.logit_scale == 0.125
    data = load_model_data(meta=meta)
    report = error_report(logits=predict_logits(model=model, images=data.x_test, meta=meta), labels=data.y_test,
                          classes=data.classes)  # fmt: skip
    assert report.accuracy == meta["test_acc"]  # the accuracy the old run measured, recomputed
    assert load_local(model_path=out / "model.pt", progress=False).report["accuracy"] == meta["test_acc"]


def test_a_narrow_proxy_network_round_trips_through_model_pt(cifar, tmp_path):
    from eva_helpers.model_file import load_trained

    recipe = load_recipe(data_dir=str(cifar), out_dir=str(tmp_path), download=False, epochs=1, peak_epoch=1,
                         batch_size=10, max_lr=0.02, progress=False, precision="fp32", channels_last=False)  # fmt: skip
    data = load_data(recipe)
    net = build_model(name="custom_resnet", num_classes=10, seed=1, width=0.25, logit_scale=recipe.network.logit_scale)
    fit(net, data, recipe)
    model, meta = load_trained(out_dir=tmp_path)
    assert meta["width"] == 0.25 and model.width == 0.25
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(model(x), net.eval()(x), rtol=0, atol=0)  # the trained weights, not a fresh network
