"""The moving average of the weights (ema): what it averages, that it is what is evaluated and saved, and old
checkpoints (resuming an ema run: test_train.py's resume test, with ema)."""

import pytest
import torch
from fakes import make_cifar10_batches
from torch.optim.optimizer import register_optimizer_step_post_hook

from eva_helpers.analysis import error_report
from eva_helpers.data import load_data, load_model_data
from eva_helpers.inference import predict_logits
from eva_helpers.model_file import load_trained
from eva_helpers.recipe import load_recipe
from eva_helpers.run_setup import new_model
from eva_helpers.training import fit


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar10_batches(tmp_path_factory.mktemp("cifar"), n_train_per_class=5, n_test_per_class=2, seed=0)


def recipe(data_dir, out_dir, **over):
    return load_recipe(**{"data_dir": str(data_dir), "out_dir": str(out_dir), "download": False, "epochs": 2,
                          "peak_epoch": 1, "batch_size": 10, "max_lr": 0.05, "progress": False, "precision": "fp32",
                          "channels_last": False, **over})  # fmt: skip


def test_the_ema_is_the_moving_average_of_every_steps_weights_and_is_what_is_evaluated_and_saved(cifar, tmp_path):
    decay = 0.6
    r = recipe(cifar, tmp_path, ema=decay)
    data = load_data(r)
    model = new_model(r, data)
    after_each_step = []
    hook = register_optimizer_step_post_hook(
        lambda *_: after_each_step.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    )
    try:
        result = fit(model, data, r)
    finally:
        hook.remove()
    assert len(after_each_step) == 2 * 5  # 2 epochs of 50 images in batches of 10
    # The oracle, written out: the first step's weights, then decay * average + (1 - decay) * this step's weights,
    # BatchNorm's running statistics included.
    expected = dict(after_each_step[0])
    for weights in after_each_step[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * w if w.is_floating_point() else w
                    for k, w in weights.items()}  # fmt: skip
    raw = after_each_step[-1]
    saved, meta = load_trained(out_dir=tmp_path)
    for k, w in saved.state_dict().items():
        if w.is_floating_point():
            assert torch.allclose(w, expected[k], atol=1e-6), k
            assert torch.allclose(model.state_dict()[k], w), k  # fit hands back the weights it evaluated
    moved = [k for k, w in raw.items() if w.is_floating_point() and not torch.allclose(w, expected[k], atol=1e-4)]
    assert moved, "the average equals the last weights, so the checks above could not fail"
    # The accuracy reported is the averaged model's, as notebook 05 recomputes it from model.pt.
    again = load_model_data(meta=meta)
    logits = predict_logits(model=saved, images=again.x_test, meta=meta)
    report = error_report(logits=logits, labels=again.y_test, classes=again.classes)
    assert report.accuracy == result.metrics["test_acc"] == meta["test_acc"]
    assert float(report.loss.mean()) == pytest.approx(result.history[-1]["test_loss"], rel=1e-5)


def test_a_checkpoint_from_before_ema_existed_resumes_as_ema_off(cifar, tmp_path):
    r = recipe(cifar, tmp_path, epochs=1)
    data = load_data(r)
    fit(new_model(r, data), data, r)
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["identity"]["ema"], state["ema"]  # as an older eva_helpers wrote it
    torch.save(state, path)
    again = fit(new_model(r, data), data, r.replace(resume=True))
    assert again.metrics["finished"] and again.metrics["epochs_done"] == 1
    with pytest.raises(ValueError, match="ema: checkpoint 0.0 vs now 0.9"):
        fit(new_model(r, data), data, r.replace(resume=True, ema=0.9))
