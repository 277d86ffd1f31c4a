"""The LR range test: a curve, a suggestion, a restored model, and a clean stop on divergence."""

import numpy as np
import pytest
import torch
from torch import nn
from torch_lr_finder import LRFinder

from eva_helpers.lr_finder import RULES, lr_range_test, steepest_lr, suggest


def batches(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * 16, 10, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)]


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.filterwarnings("ignore:the LR range test found no usable descent")
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
    assert got["suggested_lr"] == suggest(lr=got["lr"], loss=got["loss"])[0]["valley"]  # the default rule
    assert got["diverged"] is False
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN statistics restored
    assert repr(opt.state_dict()) == opt_before


@pytest.mark.filterwarnings("ignore:the LR range test found no usable descent")
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
    assert got["suggested_lr"] == suggest(lr=got["lr"], loss=got["loss"])[0]["valley"]


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


def _curve(points):
    """A piecewise-linear loss over log10(LR) through the (log10 lr, loss) points, on 100 LRs from 1e-5 to 10."""
    lr = np.logspace(-5, 1, 100)
    xs, ys = zip(*points)
    return lr, np.interp(np.log10(lr), xs, ys)


def test_every_rule_falls_before_the_minimum_on_a_curve_that_blows_up_and_dips_again():
    # The README's picture at the recipe's scale: 2.87 at the start, the minimum 2.19 at 5.3e-3, a climb to
    # 8.6 at 0.35, a dip to 5.6 at 2.9, then divergence. Steepest descent over the whole curve picks the dip.
    lr, loss = _curve([(-5, 2.87), (-3.5, 2.8), (-2.28, 2.19), (-0.46, 8.6), (0.46, 5.6), (1, 9.0)])
    minimum_lr = lr[loss.argmin()]
    assert steepest_lr(lr=lr, loss=loss) > minimum_lr  # the old rule: on the dip, after the loss blew up
    got, warning = suggest(lr=lr, loss=loss)
    assert warning is None and set(got) == set(RULES)
    assert all(value < minimum_lr for value in got.values()), got
    assert got["minimum"] == pytest.approx(minimum_lr / 10)
    assert 10**-3.5 <= got["steep"] <= minimum_lr  # the steep part of the descent, not its flat start


def test_valley_is_the_middle_of_the_longest_fall():
    lr, loss = _curve([(-5, 3.0), (-4, 3.0), (-3, 2.0), (-1, 1.0), (0, 4.0), (1, 9.0)])
    got, _ = suggest(lr=lr, loss=loss)
    # the fall runs from 1e-4 to 1e-1, so its middle lies near 10 ** -2.5
    assert 10**-3 <= got["valley"] <= 10**-2


def test_blowup_is_a_tenth_of_the_last_lr_before_the_loss_climbs_a_quarter_of_its_fall():
    # falls from 3.0 to 2.0 by 1e-1, then climbs: 2.25 (a quarter of the fall above the best) is passed at 10**-0.75
    lr, loss = _curve([(-5, 3.0), (-3, 2.9), (-1, 2.0), (0, 3.0), (1, 9.0)])
    got, _ = suggest(lr=lr, loss=loss)
    first_up = np.flatnonzero(loss > 2.25 + 1e-12)
    first_up = first_up[first_up > loss.argmin()][0]
    assert got["blowup"] == pytest.approx(lr[first_up - 1] / 10)
    assert 10**-1.85 <= got["blowup"] <= 10**-1.75


def test_blowup_ignores_the_noise_of_a_flat_start_and_gives_a_lower_bound_when_nothing_blows_up():
    rng = np.random.default_rng(0)
    lr, loss = _curve([(-5, 2.3), (-2, 2.3), (1, 1.9)])  # falls to the end and never climbs
    loss = loss + rng.normal(0, 0.002, len(loss))  # wiggles far smaller than a quarter of the fall
    got, _ = suggest(lr=lr, loss=loss)
    assert got["blowup"] == pytest.approx(lr[-1] / 10)


@pytest.mark.parametrize("shape", ["flat", "rising"])
def test_a_curve_without_a_descent_warns_what_to_try(shape):
    points = [(-5, 2.3), (1, 2.29)] if shape == "flat" else [(-5, 2.3), (1, 7.0)]
    lr, loss = _curve(points)
    got, warning = suggest(lr=lr, loss=loss)
    assert "no usable descent" in warning and "finder_start_lr" in warning and "max_lr" in warning
    assert len(set(got.values())) == 1  # no rule pretends to read anything off it


@pytest.mark.filterwarnings("ignore:the LR range test found no usable descent")  # a tiny model barely moves
def test_the_range_test_records_every_rule_and_the_chosen_one():
    model = small_model()
    got = lr_range_test(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1e-4),
                        criterion=nn.CrossEntropyLoss(), train_loader=batches(), device=torch.device("cpu"),
                        start_lr=1e-4, end_lr=1.0, num_iter=30, rule="steep")  # fmt: skip
    assert got["rule"] == "steep" and got["suggested_lr"] == got["suggestions"]["steep"]
    assert set(got["suggestions"]) == set(RULES)
    with pytest.raises(ValueError, match="lr_rule='flat'"):
        lr_range_test(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1e-4),
                      criterion=nn.CrossEntropyLoss(), train_loader=batches(), device=torch.device("cpu"),
                      rule="flat")  # fmt: skip


def test_the_steep_rule_is_torch_lr_finders_where_that_one_is_sound():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rng = np.random.default_rng(1)
    for _ in range(5):  # falls, bottoms out, then rises: the library's pick lies before the minimum here
        lr = np.logspace(-5, 1, 100)
        x = np.log10(lr)
        loss = 2.3 - 1.2 / (1 + np.exp(-(x + 3) * 3)) + np.clip(x + 0.5, 0, None) ** 2 + rng.normal(0, 0.005, 100)
        finder = LRFinder.__new__(LRFinder)
        finder.history = {"lr": lr.tolist(), "loss": loss.tolist()}
        _, theirs = finder.plot(skip_start=10, skip_end=5, suggest_lr=True, ax=Figure().subplots())
        assert theirs < lr[loss.argmin()]
        assert suggest(lr=lr, loss=loss)[0]["steep"] == theirs


def test_each_rule_reads_its_own_point_of_a_real_curve():
    """The range test behind the README's picture (ResNet-9, 10,000 CIFAR-10 JPEG images, fp32 CPU), read again.

    minimum and steep are checked against independent readings (numpy, and torch-lr-finder's own rule on the
    descent); valley must lie inside the descent; all three against what the committed picture shows. A rule
    that reads the wrong point (the minimum itself, a point past it, the flat start) fails here.
    """
    import json
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    saved = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/lr_range_test_cifar10_jpeg_cpu.json")
                       .read_text())  # fmt: skip
    lr, loss = np.array(saved["lr"]), np.array(saved["loss"])
    got, warning = suggest(lr=lr, loss=loss)
    assert warning is None and len(set(got.values())) == len(RULES)
    low = int(loss.argmin())
    assert got["minimum"] == pytest.approx(lr[low] / 10, rel=1e-12)
    finder = LRFinder.__new__(LRFinder)  # the library's rule on the descent only, with the same first points cut
    finder.history = {"lr": lr[: low + 1].tolist(), "loss": loss[: low + 1].tolist()}
    skip = min((low + 1) // 4, 10)
    _, theirs = finder.plot(skip_start=skip, skip_end=0, suggest_lr=True, ax=Figure().subplots())
    assert got["steep"] == theirs
    valley = int(np.searchsorted(lr, got["valley"]))
    assert 0 < valley < low and loss[valley] < loss[0] and loss[valley] > loss[low]
    assert {k: got[k] for k in saved["suggestions"]} == pytest.approx(saved["suggestions"], rel=1e-12)  # the picture
    best = np.minimum.accumulate(loss)  # blowup: the last LR before the loss climbs a quarter of its fall, / 10
    climbed = int(np.argmax(loss - best > (loss[0] - loss.min()) / 4))
    assert low < climbed and got["blowup"] == pytest.approx(lr[climbed - 1] / 10, rel=1e-12)
