"""The probe rule: short rehearsals of the recipe below blowup's pick, scored on held-out training images."""

import math

import pytest
import torch
from fakes import make_cifar10_batches

from eva_helpers.data import load_data
from eva_helpers.engine import TrainingDiverged
from eva_helpers.peak import peak_lr
from eva_helpers.probe import APART, CANDIDATES, held_out_size, probe_peak, read_peak, rehearse
from eva_helpers.recipe import load_recipe
from eva_helpers.run_setup import new_model, prepare
from eva_helpers.training import fit


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):  # colour and stripes say the class: a set a good peak learns in a few steps
    return make_cifar10_batches(tmp_path_factory.mktemp("cifar"), n_train_per_class=20, n_test_per_class=2, seed=0)


def recipe(data_dir, out_dir, **over):
    return load_recipe(**{"data_dir": str(data_dir), "out_dir": str(out_dir), "download": False, "epochs": 4,
                          "peak_epoch": 2, "batch_size": 10, "max_lr": None, "lr_rule": "probe", "progress": False,
                          "precision": "fp32", "channels_last": False, **over})  # fmt: skip


def test_held_out_part_is_a_twentieth_of_the_training_split_within_bounds():
    assert [held_out_size(n) for n in (200, 10_000, 50_000, 77_000)] == [40, 1000, 2500, 3850]


@pytest.mark.slow  # eight short trainings
def test_the_probe_keeps_the_rehearsal_that_scores_best_and_it_learns_where_the_top_does_not(cifar, tmp_path):
    r = recipe(cifar, tmp_path)
    data = load_data(r)
    model = new_model(r, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    found = probe_peak(prepare(model, data, r, rank=0, world=1), {"suggestions": {"blowup": 1.6}, "lr": [], "loss": []})
    assert torch.equal(torch.rand(3), expected_draw)  # the random state goes on as if no rehearsal had run
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the model is left as it was
    runs = found["probe"]["runs"]
    assert [run["max_lr"] for run in runs] == pytest.approx([1.6 / APART**k for k in range(CANDIDATES)])
    assert found["rule"] == "probe" and found["probe"]["held_out"] == 40  # of the 200 training images
    best = max(runs, key=lambda run: run["score"])
    assert found["suggested_lr"] == found["probe"]["max_lr"] == read_peak(runs)
    assert best["max_lr"] / 2 <= found["suggested_lr"] <= best["max_lr"] * 2
    # On this set 1.6 trains to about chance in 8 steps (measured 20%) and 0.025 to 90%: the probe must not keep
    # the top of its range, and what it keeps must have learnt.
    assert runs[0]["score"] <= 0.4 and best["score"] >= 0.8 and found["suggested_lr"] <= 0.2


def rehearsed(scores, top=1.0):
    return [{"max_lr": top / APART**k, "score": s} for k, s in enumerate(scores)]


@pytest.mark.parametrize("true_peak", [0.05, 0.0625, 0.09, 0.12])
def test_the_peak_is_read_between_the_rehearsals_as_the_top_of_a_parabola(true_peak):
    # scores that fall as a parabola in log(LR) around true_peak: the reading recovers it exactly
    score = [1 - (math.log(lr) - math.log(true_peak)) ** 2 for lr in (1.0 / APART**k for k in range(CANDIDATES))]
    assert read_peak(rehearsed(score)) == pytest.approx(true_peak)


def test_at_an_end_of_the_range_or_beside_a_diverged_rehearsal_the_best_is_kept():
    assert read_peak(rehearsed([0.80, 0.76, 0.70, 0.53])) == 1.0  # the top scores best: nothing above to read
    assert read_peak(rehearsed([0.20, 0.40, 0.50, 0.60])) == 1.0 / APART**3
    assert read_peak(rehearsed([None, 0.60, 0.55, 0.30])) == 1.0 / APART  # above it diverged: no curve to read
    assert read_peak(rehearsed([0.30, 0.60, 0.60, 0.30])) == pytest.approx(1.0 / APART**1.5)  # a tie: between them
    # the probe's Tiny ImageNet proxy rehearsals (seed 1): 0.047 best, 0.19 close behind, so the peak lies between
    assert read_peak(rehearsed([0.195, 0.248, 0.252, 0.163], top=0.7565)) == pytest.approx(0.0891, rel=1e-3)


@pytest.mark.parametrize("ema", [0.0, 0.8])
def test_a_rehearsal_scores_what_fit_reports_for_the_same_recipe(cifar, tmp_path, ema):
    r = recipe(cifar, tmp_path, epochs=2, peak_epoch=1, max_lr=0.1, ema=ema)
    data = load_data(r)
    trained = fit(new_model(r, data), data, r)  # the oracle: the training loop the README's numbers come from
    assert rehearse(new_model(r, data), data, r) == trained.metrics["test_acc"]


def test_a_saved_probe_is_reused_and_another_schedule_runs_it_again(cifar, tmp_path, monkeypatch):
    r = recipe(cifar, tmp_path, epochs=2, peak_epoch=1)
    data = load_data(r)
    setup = prepare(new_model(r, data), data, r, rank=0, world=1)
    first = probe_peak(setup, {"suggestions": {"blowup": 0.4}})
    assert len(first["probe"]["runs"]) == CANDIDATES and not first["reused"]

    def no_training(*a, **k):
        raise AssertionError("a saved probe of the same recipe was trained again")

    monkeypatch.setattr("eva_helpers.probe.rehearse", no_training)
    again = probe_peak(setup, first)
    assert again["suggested_lr"] == first["suggested_lr"] and again["probe"] == first["probe"]
    older = {**first, "probe": {**first["probe"], "max_lr": 123.0}}  # saved by a rule that read no parabola
    assert probe_peak(setup, older)["suggested_lr"] == read_peak(first["probe"]["runs"]) == first["suggested_lr"]
    longer = prepare(setup.model, data, r.replace(epochs=4, peak_epoch=2), rank=0, world=1)
    with pytest.raises(AssertionError, match="trained again"):
        probe_peak(longer, first)  # its rehearsals would be twice as long: the saved ones do not answer for them


def test_a_recipe_that_diverges_at_every_candidate_says_what_to_do(cifar, tmp_path, monkeypatch):
    def diverges(*a, **k):
        raise TrainingDiverged("the training loss became nan")

    monkeypatch.setattr("eva_helpers.probe.rehearse", diverges)
    r = recipe(cifar, tmp_path, epochs=2, peak_epoch=1)
    data = load_data(r)
    with pytest.raises(TrainingDiverged, match="diverged at every peak from 0.4 down to 0.00625; give max_lr"):
        probe_peak(prepare(new_model(r, data), data, r, rank=0, world=1), {"suggestions": {"blowup": 0.4}})


def test_peak_lr_with_the_probe_rule_runs_the_range_test_then_the_rehearsals(cifar, tmp_path):
    r = recipe(cifar, tmp_path, epochs=2, peak_epoch=1, finder_iters=8)
    data = load_data(r)
    peak = peak_lr(new_model(r, data), data, r)
    found = peak.lr_finder
    top = found["suggestions"]["blowup"]
    assert peak.source == "lr range test" and found["rule"] == "probe" and len(found["lr"]) == 8
    assert peak.max_lr == found["suggested_lr"] and top / APART**CANDIDATES <= peak.max_lr <= top
    again = peak_lr(new_model(r, data), data, r)  # notebook 04 after notebook 03: lr_finder.json, probe and all
    assert again.lr_finder["reused"] and again.max_lr == peak.max_lr


def test_under_torchrun_the_probe_is_only_reused_and_a_missing_one_says_what_to_do():
    from types import SimpleNamespace

    from eva_helpers.peak import _probe

    with pytest.raises(ValueError, match="cannot start under torchrun; run peak_lr"):
        _probe(SimpleNamespace(world=2), {"suggestions": {"blowup": 0.4}})
