"""Models: the seeds' parameter counts, 32 and 64 px inputs, channels_last, bf16, summary, Grad-CAM layers."""

import pytest
import torch
from torch import nn

from eva_helpers.models import (
    CustomResNet,
    ResNet18,
    build_model,
    count_params,
    gradcam_layers,
    model_name,
    model_summary,
)


@pytest.mark.parametrize(
    ("name", "num_classes", "expected"),
    [("custom_resnet", 10, 6_573_130), ("resnet18", 10, 11_173_962), ("resnet18", 200, 11_271_432)],
)
def test_parameter_counts_match_the_seeds(name, num_classes, expected):
    model = build_model(name=name, num_classes=num_classes)
    assert count_params(model) == expected
    assert count_params(model, trainable_only=True) == expected


def test_custom_resnet_layout_follows_the_seed():
    model = CustomResNet(num_classes=10)
    assert list(dict(model.named_children())) == ["prep", "layer1", "layer2", "layer3", "pool", "flatten", "fc"]
    # layer: conv -> maxpool -> BN -> ReLU, in that order; the FC layer has a bias; no softmax anywhere
    assert [type(m) for m in model.layer2] == [nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d, nn.ReLU]
    assert model.fc.bias is not None
    assert not any(isinstance(m, (nn.Softmax, nn.LogSoftmax)) for m in model.modules())
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_custom_resnet_residual_adds_x_and_r():
    model = CustomResNet(num_classes=10).eval()
    x = torch.randn(2, 128, 16, 16)
    with torch.no_grad():
        block_x = model.layer3.conv(model.layer2(x))
        expected = block_x + model.layer3.res(block_x)
        torch.testing.assert_close(model.layer3(model.layer2(x)), expected)


@pytest.mark.parametrize(("name", "size"), [("custom_resnet", 32), ("resnet18", 32), ("resnet18", 64)])
def test_forward_shapes_channels_last_and_bf16(name, size):
    torch.manual_seed(0)
    model = build_model(name=name, num_classes=7).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        assert ref.shape == (2, 7) and ref.dtype == torch.float32
        model_cl = model.to(memory_format=torch.channels_last)
        out_cl = model_cl(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out_cl, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16 = model_cl(x.to(memory_format=torch.channels_last))
    # bf16 keeps 8 bits of mantissa: the logits agree with fp32 to about 1e-2 of their spread, not exactly
    assert out_bf16.shape == (2, 7)
    assert (out_bf16.float() - ref).abs().max() < 0.05 * ref.abs().max() + 0.05


def test_custom_resnet_learns_a_batch_in_train_mode():
    torch.manual_seed(0)
    model = build_model(name="custom_resnet", num_classes=10).train()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(5):  # every parameter gets a gradient, and a few steps fit one fixed batch
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_custom_resnet_rejects_other_image_sizes_with_a_hint():
    with pytest.raises(ValueError, match="resnet18"):
        CustomResNet()(torch.zeros(1, 3, 64, 64))


def test_build_model_rejects_unknown_names_and_bad_class_counts():
    with pytest.raises(ValueError, match="'custom_resnet', 'resnet18'"):
        build_model(name="resnet50", num_classes=10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model(name="resnet18", num_classes=0)


def test_model_summary_counts_params_and_leaves_the_model_alone():
    model = build_model(name="resnet18", num_classes=200).train()
    stats = model_summary(model=model, image_size=64, batch_size=2)
    assert stats.total_params == 11_271_432
    assert "layer4" in str(stats)
    assert model.training and all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="image_size"):
        model_summary(model=model, image_size=0)


@pytest.mark.parametrize(
    ("model", "names"), [(CustomResNet(), ["layer1", "layer2", "layer3"]), (ResNet18(), ["layer2", "layer3", "layer4"])]
)
def test_gradcam_layers_are_submodules_deepest_last(model, names):
    layers = gradcam_layers(model)
    assert list(layers) == names
    assert all(layers[n] is getattr(model, n) for n in names)


def test_gradcam_layers_unknown_model():
    with pytest.raises(ValueError, match="build_model"):
        gradcam_layers(nn.Linear(2, 2))


def test_build_model_with_a_seed_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_model(name="custom_resnet", num_classes=10, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = build_model(name="custom_resnet", num_classes=10, seed=7)
    c = build_model(name="custom_resnet", num_classes=10, seed=8)
    torch.manual_seed(7)
    d = build_model(name="custom_resnet", num_classes=10)  # the same draws as seeding the global generator
    for (k, va), vb, vd in zip(a.state_dict().items(), b.state_dict().values(), d.state_dict().values()):
        assert torch.equal(va, vb) and torch.equal(va, vd), k
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_model_name_sees_through_wrappers():
    model = build_model(name="resnet18", num_classes=10)
    assert model_name(model) == "resnet18" and model_name(nn.Linear(2, 2)) is None
    assert model_name(torch.nn.DataParallel(model)) == "resnet18"


@pytest.mark.parametrize("name", ["custom_resnet", "resnet18"])
def test_the_logit_scale_multiplies_the_logits_and_adds_no_parameter(name):
    plain = build_model(name=name, num_classes=10, seed=3).eval()
    scaled = build_model(name=name, num_classes=10, seed=3, logit_scale=0.125).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), plain(x) * 0.125)
    assert count_params(scaled) == count_params(plain) and scaled.state_dict().keys() == plain.state_dict().keys()
    with pytest.raises(ValueError, match="logit_scale=0"):
        build_model(name=name, num_classes=10, logit_scale=0)


@pytest.mark.parametrize("name", ["custom_resnet", "resnet18"])
def test_width_scales_every_layers_channels_and_width_1_is_the_published_network(name):
    full, quarter = build_model(name=name, num_classes=10), build_model(name=name, num_classes=10, width=0.25)
    # conv weights scale with width squared: a quarter of the channels is about 1/16 of the parameters
    assert count_params(full) / 17 < count_params(quarter) < count_params(full) / 15
    convs = [m.out_channels for m in quarter.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [max(1, round(m.out_channels / 4)) for m in full.modules() if isinstance(m, nn.Conv2d)]
    assert build_model(name=name, num_classes=10, width=1.0).state_dict().keys() == full.state_dict().keys()
    assert count_params(build_model(name=name, num_classes=10, width=1.0)) == count_params(full)
    x = torch.randn(4, 3, 32, 32)
    assert quarter.eval()(x).shape == (4, 10)


@pytest.mark.parametrize("width", [0, -1, float("nan"), "0.5"])
def test_a_bad_width_names_the_value(width):
    with pytest.raises(ValueError, match="width"):
        build_model(name="custom_resnet", num_classes=10, width=width)
