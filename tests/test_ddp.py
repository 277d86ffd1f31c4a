"""torchrun data parallel (gloo, 2 CPU processes) against one process on the same global batches.

Why the comparison can be tight: every rank takes its own slice of each global batch, its loss is the
mean over that slice, and DDP averages the gradients, so one step of 2 ranks equals one step of one
process on the whole batch. Two things break that equality and are switched off here: BatchNorm
normalises each rank's half batch on its own (SyncBatchNorm needs CUDA), so the model's BatchNorms are
swapped for GroupNorm(1, C), which normalises each image on its own; and augmentation draws differ per
rank, so pad/flip/cutout are off. What is left is float summation order (about 1e-6 relative).

This file is also the worker that torchrun starts: `python tests/test_ddp.py ARGS` runs
`python -m eva_helpers.train ARGS` (eva_helpers.train.main) with a few functions wrapped to record, per rank, which
files it wrote, the weights before and after training, and the max_lr it used (under EVA_DDP_LOG).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
PRODUCTS = {"checkpoint.pt", "metrics.json", "model.pt", "history.png", "lr_schedule.png"}


# --- the worker (runs in each torchrun process, or in this one for world 1) ---------------------------


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().float().cpu().flatten() for p in model.parameters()])


def _worker(argv: list[str]) -> int:
    """Run eva_helpers.train.main(argv), recording this rank's writes, weights and max_lr under EVA_DDP_LOG."""
    from eva_helpers import checkpoint, model_file, peak, plots, train, training

    rank = int(os.environ.get("RANK", "0"))
    log = Path(os.environ["EVA_DDP_LOG"])
    log.mkdir(parents=True, exist_ok=True)
    writes: list[str] = []
    record: dict = {}
    originals = {
        (checkpoint, "save_torch"): checkpoint.save_torch,
        (model_file, "save_torch"): model_file.save_torch,
        (training, "save_json"): training.save_json,
        (peak, "save_json"): peak.save_json,
        (plots.common, "save_figure"): plots.common.save_figure,
        (train, "new_model"): train.new_model,
        (train, "fit"): train.fit,
        (training, "train_epoch"): training.train_epoch,
    }
    assert all(callable(f) for f in originals.values())  # a rename fails here, not by recording nothing

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(**kw):
            writes.append(Path(kw["path"]).name)
            return fn(**kw)

        return wrapper

    @functools.wraps(originals[train, "new_model"])
    def new_model(*args):
        model = originals[train, "new_model"](*args)
        if os.environ.get("EVA_DDP_GROUPNORM") == "1":  # per-image normalisation: the batch split changes nothing
            for parent in list(model.modules()):
                for name, child in parent.named_children():
                    if isinstance(child, torch.nn.BatchNorm2d):
                        setattr(parent, name, torch.nn.GroupNorm(1, child.num_features))
        record["before"] = _flat(model)
        return model

    @functools.wraps(originals[train, "fit"])
    def fit(model, data, recipe):
        result = originals[train, "fit"](model, data, recipe)
        record.update(after=_flat(model), max_lr=result.metrics["max_lr"], history=result.history)
        return result

    @functools.wraps(originals[training, "train_epoch"])
    def train_epoch(**kw):
        if kw["epoch"] == int(os.environ.get("EVA_DDP_STOP_AT_EPOCH", "-1")):
            if dist.is_initialized():
                dist.barrier()  # rank 0 has written the checkpoint: torchrun may now stop everyone
            raise KeyboardInterrupt  # as a user's Ctrl-C; the checkpoint of the epoch before stays
        return originals[training, "train_epoch"](**kw)

    patches = {
        (checkpoint, "save_torch"): logged(checkpoint.save_torch),
        (model_file, "save_torch"): logged(model_file.save_torch),
        (training, "save_json"): logged(training.save_json),
        (peak, "save_json"): logged(peak.save_json),
        (plots.common, "save_figure"): logged(plots.common.save_figure),
        (train, "new_model"): new_model,
        (train, "fit"): fit,
        (training, "train_epoch"): train_epoch,
    }
    for (module, name), value in patches.items():
        setattr(module, name, value)
    poisoned = rank == int(os.environ.get("EVA_DDP_NAN_RANK", "-1"))
    real_loss, calls = torch.nn.CrossEntropyLoss.forward, {"n": 0}

    def nan_loss(self, out, y):  # a loss that overflows on this rank only, at its third training step
        calls["n"] += 1
        loss = real_loss(self, out, y)
        return loss * float("nan") if calls["n"] == 3 else loss

    if poisoned:
        torch.nn.CrossEntropyLoss.forward = nan_loss
    try:
        return train.main(argv)
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        torch.nn.CrossEntropyLoss.forward = real_loss
        for (module, name), value in originals.items():
            setattr(module, name, value)
        (log / f"writes{rank}.json").write_text(json.dumps(writes))
        torch.save(record, log / f"rank{rank}.pt")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))


# --- the tests --------------------------------------------------------------------------------------

pytestmark = [
    pytest.mark.slow,  # torchrun starts processes that each import torch
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()),
        reason="torch.distributed with the gloo backend is not available",
    ),
]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    from fakes import make_cifar10_batches

    return make_cifar10_batches(tmp_path_factory.mktemp("cifar"), n_train_per_class=4, n_test_per_class=2, seed=0)


def launch(
    *,
    world: int,
    data_dir: Path,
    out_dir: Path,
    log: Path,
    extra: list[str] = (),
    groupnorm: bool = False,
    stop_at_epoch: int = -1,
    nan_rank: int = -1,
    expect_ok: bool = True,
) -> dict:
    """Run the worker in `world` torchrun processes (world 1: in this process); return each rank's record."""
    argv = [
        "--data_dir",
        str(data_dir),
        "--out_dir",
        str(out_dir),
        "--download",
        "false",
        "--epochs",
        "2",
        "--peak_epoch",
        "1",
        "--batch_size",
        "8",
        "--progress",
        "false",
        "--precision",
        "fp32",
        "--loader",
        "device",
        "--device",
        "cpu",
        *extra,
    ]
    settings = {
        "EVA_DDP_LOG": str(log),
        "EVA_DDP_GROUPNORM": "1" if groupnorm else "0",
        "EVA_DDP_STOP_AT_EPOCH": str(stop_at_epoch),
        "EVA_DDP_NAN_RANK": str(nan_rank),
    }
    if world == 1:
        threads = torch.get_num_threads()
        with pytest.MonkeyPatch.context() as mp:
            for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
                mp.delenv(k, raising=False)
            for k, v in settings.items():
                mp.setenv(k, v)
            torch.set_num_threads(1)  # as each torchrun process runs (OMP_NUM_THREADS=1)
            try:
                assert _worker(argv) == 0
            finally:
                torch.set_num_threads(threads)
    else:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        }
        env.update(
            settings,
            OMP_NUM_THREADS="1",
            MPLBACKEND="Agg",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                str(world),
                str(HERE),
                *argv,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert (proc.returncode == 0) == expect_ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        r: {
            "writes": json.loads((log / f"writes{r}.json").read_text()),
            **torch.load(log / f"rank{r}.pt", weights_only=True),
        }
        for r in range(world)
    }


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_two_ranks_match_one_process_on_the_same_global_batches_and_resume(cifar, tmp_path):
    # augmentation off and BatchNorm -> GroupNorm (see the top of this file); a small max_lr, as this tiny run
    # amplifies float noise: with torch 2.14 on the CPU, max_lr 0.002 turned a 1e-6 difference in the second
    # step's gradient into 0.12 of the distance the weights move, 5e-4 into 0.03; 2e-4 keeps it at 1e-5; unscaled
    # logits, as measured (x 1/8, the default, moves the weights too little at 2e-4)
    same = "--pad 0 --flip false --cutout 0 --max_lr 0.0002 --logit_scale 1.0 --tta false".split()
    one = launch(world=1, data_dir=cifar, out_dir=tmp_path / "one", log=tmp_path / "log1", extra=same, groupnorm=True)
    out = tmp_path / "two"
    cut = launch(
        world=2,
        data_dir=cifar,
        out_dir=out,
        log=tmp_path / "log_cut",
        extra=same,
        groupnorm=True,
        stop_at_epoch=1,
        expect_ok=False,
    )
    assert cut[1]["writes"] == [] and set(cut[0]["writes"]) == {"checkpoint.pt", "metrics.json"}
    assert json.loads((out / "metrics.json").read_text())["epochs_done"] == 1
    two = launch(
        world=2,
        data_dir=cifar,
        out_dir=out,
        log=tmp_path / "log_two",
        extra=[*same, "--resume", "true"],
        groupnorm=True,
    )

    # only rank 0 writes, and it writes every product
    assert two[1]["writes"] == []
    assert set(two[0]["writes"]) == set(one[0]["writes"]) == PRODUCTS
    assert {p.name for p in out.iterdir()} == PRODUCTS

    # both ranks end with the same weights (DDP keeps them in step) ...
    assert torch.equal(two[0]["before"], one[0]["before"])
    assert torch.equal(two[0]["after"], two[1]["after"])
    # ... and those equal one process's, up to float arithmetic. How close depends on the CPU: oneDNN picks its
    # convolution kernels by batch size and layout, and this tiny run amplifies their rounding. Measured, as a
    # fraction of the distance the weights moved: 1e-5 on an AVX2 EPYC; 0.023 on an AVX512-BF16 EPYC, where one
    # process alone moves 0.025 differently with channels_last off. Reading the same shard on both ranks,
    # summing instead of averaging gradients, or not syncing them at all each make it 1.1 to 1.5.
    moved = one[0]["after"] - one[0]["before"]
    assert moved.norm() > 1e-3 * one[0]["before"].norm()
    assert relative(two[0]["after"] - one[0]["before"], moved) < 0.1

    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((out / "metrics.json").read_text())
    assert (m1["world_size"], m2["world_size"]) == (1, 2) and m2["finished"]
    assert m2["steps_per_epoch"] == m1["steps_per_epoch"] == 40 // 8
    assert m2["lr_per_step"] == pytest.approx(m1["lr_per_step"])
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):  # metrics are all-reduced over all images
        assert h2["train_acc"] == h1["train_acc"] and h2["test_acc"] == h1["test_acc"]
        # the same kernel rounding as above: 4e-4 apart on the AVX512-BF16 EPYC, 1e-5 on an AVX2 one
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=2e-3)
        assert h2["test_loss"] == pytest.approx(h1["test_loss"], rel=2e-3)


def test_the_range_test_runs_on_rank_0_with_the_global_batch_and_its_suggestion_is_used(cifar, tmp_path):
    # a rule read off the curve: the default, probe, starts only on one process (its refusal: test_probe.py)
    finder = ["--max_lr", "None", "--lr_rule", "blowup", "--finder_iters", "6", "--epochs", "1"]
    launch(world=1, data_dir=cifar, out_dir=tmp_path / "one", log=tmp_path / "log1", extra=finder)
    out = tmp_path / "out"
    ranks = launch(world=2, data_dir=cifar, out_dir=out, log=tmp_path / "log", extra=finder)
    assert ranks[1]["writes"] == [] and set(ranks[0]["writes"]) == PRODUCTS | {"lr_finder.json", "lr_finder.png"}
    found = json.loads((out / "lr_finder.json").read_text())
    alone = json.loads((tmp_path / "one" / "lr_finder.json").read_text())
    # the same test as one process: batch 8, not each rank's 4 (whose losses differ by far more than this)
    assert found["lr"] == pytest.approx(alone["lr"]) and found["loss"] == pytest.approx(alone["loss"], rel=1e-4)
    assert ranks[0]["max_lr"] == ranks[1]["max_lr"] == found["suggested_lr"]
    assert torch.equal(ranks[0]["after"], ranks[1]["after"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["max_lr_source"] == "lr range test"
    assert metrics["max_lr"] == found["suggested_lr"]


def test_a_nan_on_one_rank_stops_every_rank_with_the_message(cifar, tmp_path):
    ranks = launch(world=2, data_dir=cifar, out_dir=tmp_path / "out", log=tmp_path / "log", nan_rank=1,
                   expect_ok=False)  # fmt: skip
    assert "TrainingDiverged: the training loss became nan at epoch 1, step 3 of 5" in ranks[1]["error"]
    assert (
        "TrainingDiverged: the training loss became not finite on another rank at epoch 1, step 3" in ranks[0]["error"]
    )


def test_ranks_with_different_numbers_of_evaluation_batches_finish(cifar, tmp_path):
    # 17 held-out images: rank 0 evaluates 9 in batches of 3, rank 1 evaluates 8 in one batch
    ranks = launch(world=2, data_dir=cifar, out_dir=tmp_path / "out", log=tmp_path / "log",
                   extra=["--test_limit", "17", "--epochs", "1"])  # fmt: skip
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_test"] == 17 and metrics["finished"] and torch.equal(ranks[0]["after"], ranks[1]["after"])
