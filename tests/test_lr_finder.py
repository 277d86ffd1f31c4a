"""The LR range test: a curve, a suggestion, a restored model, and a clean stop on divergence."""

import numpy as np
import pytest
import torch
from torch import nn
from torch_lr_finder import LRFinder

from eva_helpers.lr_finder import lr_range_test, steepest_lr


def batches(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * 16, 10, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)]


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def test_returns_curve_and_suggestion_and_restores_model_and_optimizer():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = repr(opt.state_dict())
    got = lr_range_test(
        model=model,
        optimizer=opt,
        criterion=nn.CrossEntropyLoss(),
        train_loader=batches(),
        device=torch.device("cpu"),
        start_lr=1e-4,
        end_lr=1.0,
        num_iter=30,
    )
    assert len(got["lr"]) == len(got["loss"]) == 30
    assert got["lr"][0] == pytest.approx(1e-4, rel=0.5) and got["lr"] == sorted(got["lr"])
    assert got["suggested_lr"] == steepest_lr(lr=got["lr"], loss=got["loss"])
    assert got["diverged"] is False
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN statistics restored
    assert repr(opt.state_dict()) == opt_before


def test_nan_loss_stops_cleanly_and_still_suggests():
    calls = {"n": 0}

    def criterion(out, y):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(out, y)
        return loss * float("nan") if calls["n"] > 20 else loss

    model = small_model()
    got = lr_range_test(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-3),
        criterion=criterion,
        train_loader=batches(),
        device=torch.device("cpu"),
        start_lr=1e-3,
        end_lr=1.0,
        num_iter=50,
    )
    assert got["diverged"] is True
    assert len(got["loss"]) == 20 and np.isfinite(got["loss"]).all()
    assert got["suggested_lr"] == steepest_lr(lr=got["lr"], loss=got["loss"])


def test_exploding_loss_stops_early():
    model = small_model()
    got = lr_range_test(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-2),
        criterion=nn.CrossEntropyLoss(),
        train_loader=batches(),
        device=torch.device("cpu"),
        start_lr=1e-2,
        end_lr=1e6,
        num_iter=100,
    )
    assert got["diverged"] is True and len(got["loss"]) < 100


def test_steepest_lr_finds_the_fastest_fall():
    lr = np.logspace(-4, 0, 60)
    loss = 2.0 - 1.5 / (1 + np.exp(-(np.log10(lr) + 2) * 6))  # falls fastest at 1e-2
    assert steepest_lr(lr=lr, loss=loss) == pytest.approx(1e-2, rel=0.2)
    loss[-3:] = np.nan
    assert steepest_lr(lr=lr, loss=loss) == pytest.approx(1e-2, rel=0.2)
    with pytest.raises(ValueError, match="finite points"):
        steepest_lr(lr=[1e-3, 1e-2], loss=[1.0, np.nan])


def test_steepest_lr_is_torch_lr_finders_own_suggestion():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    for _ in range(5):
        lr = np.logspace(-5, 1, 80)
        loss = 2.3 - 1.2 / (1 + np.exp(-(np.log10(lr) + rng.uniform(1, 3)) * 4)) + rng.normal(0, 0.02, 80)
        finder = LRFinder.__new__(LRFinder)  # only its plot(), which holds the library's suggestion rule
        finder.history = {"lr": lr.tolist(), "loss": loss.tolist()}
        _, theirs = finder.plot(skip_start=10, skip_end=5, suggest_lr=True, ax=Figure().subplots())
        assert steepest_lr(lr=lr, loss=loss) == theirs
