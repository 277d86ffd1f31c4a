"""The One-Cycle schedule, with torch's own OneCycleLR as the oracle."""

import pytest
import torch

from eva_helpers.schedule import one_cycle, one_cycle_lr


def one_cycle_lrs(**shape) -> list[float]:
    """one_cycle_lr at every step of a run (keyword arguments as for one_cycle_lr, without step)."""
    return [one_cycle_lr(step=i, **shape) for i in range(shape["epochs"] * shape["steps_per_epoch"])]


def _lrs(opt, sched, steps: int) -> list[float]:
    """The LR each of `steps` optimiser steps uses, stepping the scheduler after each."""
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def torch_one_cycle_lrs(*, max_lr, epochs, peak_epoch, steps_per_epoch, div_factor, final_div_factor):
    """The LR each step uses under torch.optim.lr_scheduler.OneCycleLR, as the seeds configure it."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=max_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=peak_epoch / epochs,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=False,
        anneal_strategy="linear",
        cycle_momentum=False,
    )
    return _lrs(opt, sched, epochs * steps_per_epoch)


def run_ours(**shape):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=123.0, momentum=0.9)
    return _lrs(opt, one_cycle(optimizer=opt, **shape), shape["epochs"] * shape["steps_per_epoch"])


@pytest.mark.parametrize(
    "epochs,peak_epoch,steps_per_epoch,div,final_div",
    [
        (24, 5, 98, 100.0, 100.0),  # the CIFAR-10 recipe: 50,000 / 512
        (50, 10, 7, 100.0, 100.0),  # the Tiny ImageNet shape, fewer steps
        (4, 1, 78, 25.0, 1e4),  # torch's defaults for the factors
        (3, 2, 5, 10.0, 10.0),
    ],
)
def test_matches_torch_one_cycle(epochs, peak_epoch, steps_per_epoch, div, final_div):
    shape = dict(
        max_lr=0.05,
        epochs=epochs,
        peak_epoch=peak_epoch,
        steps_per_epoch=steps_per_epoch,
        div_factor=div,
        final_div_factor=final_div,
    )
    expected = torch_one_cycle_lrs(**shape)
    assert run_ours(**shape) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert one_cycle_lrs(**shape) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_peak_lands_on_the_last_step_of_the_peak_epoch():
    shape = dict(max_lr=0.4, epochs=24, peak_epoch=5, steps_per_epoch=98, div_factor=100.0, final_div_factor=100.0)
    lrs = one_cycle_lrs(**shape)
    peak = 5 * 98 - 1  # step peak_epoch * steps_per_epoch, counted from 1
    assert lrs[peak] == pytest.approx(0.4, rel=1e-12)
    assert max(lrs) == lrs[peak]
    assert lrs[0] == pytest.approx(0.4 / 100)
    assert lrs[-1] == pytest.approx(0.4 / 100 / 100)
    rising, falling = lrs[: peak + 1], lrs[peak:]
    assert all(a < b for a, b in zip(rising, rising[1:]))
    assert all(a > b for a, b in zip(falling, falling[1:]))


def test_tiny_runs_where_torch_divides_by_zero():
    # one step of warm-up: OneCycleLR raises ZeroDivisionError here; ours starts at the peak
    lrs = one_cycle_lrs(max_lr=0.1, epochs=2, peak_epoch=1, steps_per_epoch=1, div_factor=100.0, final_div_factor=100.0)
    assert lrs == pytest.approx([0.1, 0.1 / 1e4])
    # peak at the very end: the LR only rises
    lrs = one_cycle_lrs(max_lr=0.1, epochs=2, peak_epoch=2, steps_per_epoch=3, div_factor=10.0, final_div_factor=10.0)
    assert lrs[-1] == pytest.approx(0.1) and lrs[0] == pytest.approx(0.01)


def test_state_dict_round_trip_continues_the_schedule():
    shape = dict(max_lr=0.1, epochs=3, peak_epoch=1, steps_per_epoch=4, div_factor=100.0, final_div_factor=100.0)
    full = run_ours(**shape)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sched = one_cycle(optimizer=opt, **shape)
    for _ in range(5):
        opt.step()
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    opt2 = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sched2 = one_cycle(optimizer=opt2, **shape)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    rest = []
    for _ in range(12 - 5):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest == pytest.approx(full[5:])


@pytest.mark.parametrize("peak_epoch", [0, 4, -1])
def test_peak_outside_the_run_is_refused(peak_epoch):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="peak_epoch"):
        one_cycle(optimizer=opt, max_lr=0.1, epochs=3, peak_epoch=peak_epoch, steps_per_epoch=2)


def test_step_outside_the_schedule_is_refused():
    with pytest.raises(ValueError, match="step=6"):
        one_cycle_lr(step=6, max_lr=0.1, epochs=3, peak_epoch=1, steps_per_epoch=2)
