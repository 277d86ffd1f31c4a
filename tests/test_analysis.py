"""The error report against a plain Python loop; Grad-CAM: shape and range, the model left as found, hooks removed,
and a CAM that points where the evidence is."""

import numpy as np
import pytest
import torch
from torch import nn

from eva_helpers.analysis import error_report, explain, gradcam, overlay, top_class_cams
from eva_helpers.inference import normalize
from eva_helpers.models import build_model, gradcam_layers


def test_error_report_matches_a_plain_python_loop():
    rng = np.random.default_rng(0)
    k, n = 4, 300
    logits = rng.normal(size=(n, k)).astype(np.float32) * 3
    labels = rng.integers(0, k - 1, size=n)  # class 3 never occurs: its accuracy is 0, not a division by zero
    report = error_report(logits=logits, labels=labels, classes=list("abcd"), split="validation")
    confusion = [[0] * k for _ in range(k)]
    losses = []
    for row, t in zip(logits.tolist(), labels.tolist()):
        p = max(range(k), key=lambda j: row[j])
        confusion[t][p] += 1
        log_z = max(row) + np.log(sum(np.exp(v - max(row)) for v in row))
        losses.append(log_z - row[t])
    assert report.confusion.tolist() == confusion
    wrong = [i for i in range(n) if max(range(k), key=lambda j: logits[i, j]) != labels[i]]
    assert report.count == len(wrong) and report.n == n and report.accuracy == pytest.approx(1 - len(wrong) / n)
    assert sorted(report.order.tolist()) == wrong
    assert report.loss == pytest.approx(losses, rel=1e-5, abs=1e-6)  # float32 against float64
    assert all(report.loss[a] >= report.loss[b] for a, b in zip(report.order, report.order[1:]))  # worst first
    recall = [confusion[c][c] / sum(confusion[c]) if sum(confusion[c]) else 0.0 for c in range(k)]
    assert report.per_class_accuracy == pytest.approx(recall)
    assert report.confidence == pytest.approx(torch.softmax(torch.tensor(logits), 1).max(1).values.numpy())
    summary = report.summary()
    assert summary["split"] == "validation" and summary["per_class_accuracy"]["d"] == 0.0
    assert summary["confusion_matrix"] == confusion
    i = int(report.order[0])
    assert report.captions([i]) == [f"{'abcd'[labels[i]]} → {'abcd'[report.pred[i]]}"]


def test_error_report_names_a_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        error_report(logits=np.zeros((5, 4)), labels=np.zeros(5, dtype=int), classes=list("abc"))


class ColourDetector(nn.Module):
    """Class 0 = "how red", class 1 = "how blue": each logit reads one channel of `features` and nothing else."""

    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(3, 2, kernel_size=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[0, 0] = 1.0  # channel 0 fires on red
            conv.weight[1, 2] = 1.0  # channel 1 fires on blue
        self.features = nn.Sequential(conv, nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.head(self.features(x))


def _red_top_left_blue_bottom_right(h=16, w=24):
    # not square, so a transposed heatmap would fail too
    x = torch.zeros(1, 3, h, w)
    x[0, 0, : h // 4, : w // 4] = 1.0
    x[0, 2, -h // 4 :, -w // 4 :] = 1.0
    return x


def test_cam_is_highest_where_the_target_class_evidence_is():
    model = ColourDetector()
    x = _red_top_left_blue_bottom_right()
    cams = gradcam(model=model, images=x.repeat(2, 1, 1, 1), targets=[0, 1], layer=model.features)
    assert cams.shape == (2, 16, 24) and cams.dtype == np.float32
    red, blue = cams
    assert red[:4, :6].mean() > 0.9 and red[-4:, -6:].mean() < 0.1
    assert blue[-4:, -6:].mean() > 0.9 and blue[:4, :6].mean() < 0.1
    # the peak of each map lies in its own quadrant
    assert np.unravel_index(red.argmax(), red.shape)[0] < 8
    assert np.unravel_index(blue.argmax(), blue.shape)[0] >= 8


def test_gradcam_leaves_model_as_found_and_removes_hooks():
    torch.manual_seed(0)
    model = build_model(name="custom_resnet", num_classes=10).train()
    model.fc.weight.requires_grad_(False)
    model.fc.bias.grad = torch.ones_like(model.fc.bias)
    flags = [p.requires_grad for p in model.parameters()]
    layers = gradcam_layers(model)
    images = torch.randn(3, 3, 32, 32)
    for layer in layers.values():
        cams = gradcam(model=model, images=images, targets=[1, 2, 3], layer=layer)
        assert cams.shape == (3, 32, 32)
        assert cams.min() >= 0.0 and cams.max() <= 1.0 and cams.max() > 0.5
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    torch.testing.assert_close(model.fc.bias.grad, torch.ones_like(model.fc.bias))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "fc.bias")
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks


def test_gradcam_works_inside_no_grad_autocast_channels_last_and_targets_matter():
    torch.manual_seed(0)
    model = build_model(name="resnet18", num_classes=10).eval()
    layer = gradcam_layers(model)["layer4"]
    images = torch.randn(1, 3, 32, 32)
    model = model.to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a = gradcam(model=model, images=images.to(memory_format=torch.channels_last), targets=[0], layer=layer)
    b = gradcam(model=model, images=images, targets=[5], layer=layer)
    assert a.shape == b.shape == (1, 32, 32)
    assert np.abs(a - b).max() > 0.05


def test_gradcam_rejects_bad_arguments():
    model = ColourDetector()
    with pytest.raises(ValueError, match="one target class per image"):
        gradcam(model=model, images=torch.zeros(2, 3, 8, 8), targets=[0], layer=model.features)
    with pytest.raises(ValueError, match="submodule"):
        gradcam(model=model, images=torch.zeros(1, 3, 8, 8), targets=[0], layer=nn.ReLU())
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        gradcam(model=model, images=torch.zeros(3, 8, 8), targets=[0], layer=model.features)


def test_overlay_blends_heatmap_into_uint8_image():
    image = np.full((8, 10, 3), 128, dtype=np.uint8)
    cam = np.zeros((8, 10), dtype=np.float32)
    cam[:4] = 1.0
    out = overlay(image=image, heatmap=cam)
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    # jet colormap: hot (red) where the cam is 1, cold (blue) where it is 0
    assert out[0, 0, 0] > out[0, 0, 2] and out[-1, -1, 2] > out[-1, -1, 0]
    with pytest.raises(ValueError, match="match"):
        overlay(image=image, heatmap=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="uint8"):
        overlay(image=image.astype(np.float32), heatmap=cam)


def test_explain_is_gradcam_of_the_normalized_images_for_each_layer_and_target():
    model = build_model(name="custom_resnet", num_classes=10, seed=0).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    cams = explain(
        model=model, meta={"mean": mean, "std": std}, images=images, targets={"predicted": [1, 2], "true": [3, 4]}
    )
    assert list(cams) == [f"{layer} / {t}" for layer in ("layer1", "layer2", "layer3") for t in ("predicted", "true")]
    x = normalize(images=images, mean=mean, std=std)
    expected = gradcam(model=model, images=x, targets=[3, 4], layer=model.layer2)
    np.testing.assert_array_equal(cams["layer2 / true"], expected)


def test_the_top_class_cam_is_grad_cam_at_the_deepest_layer():
    model = build_model(name="custom_resnet", num_classes=10, seed=0).eval()
    images = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    meta = {"classes": [str(i) for i in range(10)], "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    preds = [{"image": im, "top": [{"class": c, "prob": 0.5}]} for im, c in zip(images, ("3", "7"))]
    got = top_class_cams(model=model, meta=meta, predictions=preds)
    x = normalize(images=images, mean=meta["mean"], std=meta["std"])
    np.testing.assert_array_equal(got, gradcam(model=model, images=x, targets=[3, 7], layer=model.layer3))


def test_confused_pairs_top5_and_title_match_a_plain_loop():
    rng = np.random.default_rng(1)
    k, n = 12, 400
    logits = rng.normal(size=(n, k)).astype(np.float32)
    labels = rng.integers(0, k, size=n)
    report = error_report(logits=logits, labels=labels, classes=[f"c{i}" for i in range(k)], split="validation")
    counts = {}
    for row, t in zip(logits.tolist(), labels.tolist()):
        p = max(range(k), key=lambda j: row[j])
        if p != t:
            counts[(t, p)] = counts.get((t, p), 0) + 1
    pairs = report.confused_pairs(top=5)
    assert [p["count"] for p in pairs] == sorted(counts.values(), reverse=True)[:5]
    for p in pairs:
        t, q = int(p["true"][1:]), int(p["predicted"][1:])
        assert counts[(t, q)] == p["count"]
        assert p["share_of_true_class"] == pytest.approx(p["count"] / int((labels == t).sum()))
    in_top5 = [t in sorted(range(k), key=lambda j: -row[j])[:5] for row, t in zip(logits.tolist(), labels.tolist())]
    assert report.top5 == pytest.approx(sum(in_top5) / n)
    assert report.title == (
        f"validation split: {report.count} of {n} misclassified, accuracy {report.accuracy:.2%}, "
        f"top-5 accuracy {report.top5:.2%}"
    )
    assert report.summary()["top5_accuracy"] == report.top5 and len(report.summary()["most_confused"]) == 10
    few = error_report(logits=logits[:, :10], labels=labels % 10, classes=list("abcdefghij"))
    assert few.top5 is None and "top-5" not in few.title  # ten classes or fewer: not reported
    perfect = error_report(logits=np.eye(3, dtype=np.float32) * 5, labels=np.arange(3), classes=list("abc"))
    assert perfect.confused_pairs() == []


@pytest.mark.parametrize("name", ["custom_resnet", "resnet18"])
def test_one_pass_for_every_layer_is_pytorch_grad_cams_gradcam_layer_by_layer(name):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from eva_helpers.analysis import grad_cams

    model = build_model(name=name, num_classes=10, seed=0, logit_scale=0.125).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    layers = gradcam_layers(model)
    logits, cams = grad_cams(model=model, images=x, layers=layers, targets={"given": [1, 5, 9], "predicted": None})
    assert all(p.grad is None for p in model.parameters())  # no weight gradients (the library's own pass makes them)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))
    for layer_name, layer in layers.items():  # the library itself, one layer and one target list at a time
        with GradCAM(model=model, target_layers=[layer]) as cam:
            for which, classes in {"given": [1, 5, 9], "predicted": model(x).argmax(1).tolist()}.items():
                theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
                np.testing.assert_allclose(cams[f"{layer_name} / {which}"], theirs, atol=2e-5)


def test_the_pass_keeps_no_graph_below_the_first_chosen_layer_and_tta_gives_eval_logits():
    from eva_helpers.analysis import grad_cams
    from eva_helpers.inference import eval_logits

    model = build_model(name="custom_resnet", num_classes=10, seed=0).eval()
    seen = {}
    model.layer1.register_forward_hook(lambda m, i, o: seen.__setitem__("layer1", o.requires_grad))
    model.layer2.register_forward_hook(lambda m, i, o: seen.__setitem__("layer2", o.requires_grad))
    x = torch.randn(2, 3, 32, 32)
    logits, cams = grad_cams(model=model, images=x, layers={"layer3": model.layer3}, targets={"p": None}, tta=True)
    assert seen == {"layer1": False, "layer2": False}  # below layer3 the pass runs as inference
    with torch.no_grad():
        torch.testing.assert_close(logits, eval_logits(model, x, tta=True), rtol=1e-4, atol=1e-5)
    # the heatmap is of the image as given (not its mirror), for the class TTA predicts
    plain = gradcam(model=model, images=x, targets=logits.argmax(1).tolist(), layer=model.layer3)
    np.testing.assert_allclose(cams["layer3 / p"], plain, atol=1e-6)
