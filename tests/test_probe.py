"""The probe rule: short rehearsals of the recipe around blowup's pick, scored on held-out training images."""

import math

import pytest
import torch
from fakes import make_cifar10_batches

from eva_helpers.data import load_data
from eva_helpers.engine import TrainingDiverged
from eva_helpers.peak import peak_lr
from eva_helpers.probe import APART, CANDIDATES, STEPS_UP, held_out_size, probe_peak, read_peak, rehearse
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


def scored_like(true_peak, calls):
    """A stand-in for rehearse: held-out accuracy falling as a parabola in log(LR) around true_peak, 0 beside it."""

    def rehearse(model, data, recipe):
        calls.append(recipe.optim.max_lr)
        return max(0.0, 0.9 - 0.005 * (math.log(recipe.optim.max_lr) - math.log(true_peak)) ** 2)

    return rehearse


@pytest.mark.parametrize(
    ("true_peak", "end_lr", "steps_up", "read"),
    [(0.015, 10, 0, 0.015), (0.3, 10, 2, 0.3), (5.0, 2, 2, 0.64), (100, 100, 3, 2.56)],
)
def test_when_the_top_rehearsal_scores_best_the_probe_climbs_above_blowups_pick(
    cifar, tmp_path, monkeypatch, true_peak, end_lr, steps_up, read
):
    # A range test that blew up early (Tiny ImageNet proxy, seed 3: blowup 0.046 while 0.0625-0.125 trained best)
    # leaves the best peak above every candidate below blowup's pick: the probe must step up to find it, reading it
    # exactly between rehearsals; it stops at finder_end_lr (end_lr) and after STEPS_UP steps (x64 above blowup's).
    calls = []
    monkeypatch.setattr("eva_helpers.probe.rehearse", scored_like(true_peak, calls))
    r = recipe(cifar, tmp_path, epochs=2, peak_epoch=1, finder_end_lr=end_lr)
    data = load_data(r)
    setup = prepare(new_model(r, data), data, r, rank=0, world=1)
    found = probe_peak(setup, {"suggestions": {"blowup": 0.04}})
    rehearsed_at = [0.04 / APART**k for k in range(CANDIDATES)] + [0.04 * APART**k for k in range(1, steps_up + 1)]
    assert steps_up <= STEPS_UP and calls == pytest.approx(rehearsed_at)
    assert [run["max_lr"] for run in found["probe"]["runs"]] == pytest.approx(sorted(rehearsed_at, reverse=True))
    assert found["suggested_lr"] == pytest.approx(read)

    calls.clear()  # saved: the rehearsals are reused, and a wider range adds only the missing step
    assert probe_peak(setup, found)["suggested_lr"] == found["suggested_lr"] and calls == []
    if end_lr == 2:
        wider = prepare(setup.model, data, r.replace(finder_end_lr=10.0), rank=0, world=1)
        assert probe_peak(wider, found)["suggested_lr"] == pytest.approx(2.56) and calls == pytest.approx([2.56])
        with pytest.raises(ValueError, match="needs a rehearsal at max_lr 2.56 that the saved probe lacks"):
            probe_peak(wider, found, may_train=False)  # under torchrun: one device must rehearse it first


def test_rehearsals_tied_at_chance_do_not_climb(cifar, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("eva_helpers.probe.rehearse", lambda model, data, r: calls.append(r.optim.max_lr) or 0.1)
    r = recipe(cifar, tmp_path, epochs=2, peak_epoch=1)
    data = load_data(r)
    found = probe_peak(prepare(new_model(r, data), data, r, rank=0, world=1), {"suggestions": {"blowup": 1e-6}})
    assert len(calls) == CANDIDATES and found["suggested_lr"] == 1e-6  # a flat range test: nothing learnt anywhere


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
    highest = min(top * APART**STEPS_UP, r.range_test.finder_end_lr)  # the probe may step up, within the range
    assert peak.max_lr == found["suggested_lr"] and top / APART**CANDIDATES <= peak.max_lr <= highest
    again = peak_lr(new_model(r, data), data, r)  # notebook 04 after notebook 03: lr_finder.json, probe and all
    assert again.lr_finder["reused"] and again.max_lr == peak.max_lr


def test_under_torchrun_the_probe_is_only_reused_and_a_missing_one_says_what_to_do():
    from types import SimpleNamespace

    from eva_helpers.peak import _probe

    with pytest.raises(ValueError, match="cannot start under torchrun; run peak_lr"):
        _probe(SimpleNamespace(world=2), {"suggestions": {"blowup": 0.4}})
