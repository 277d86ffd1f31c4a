"""Grad-CAM: shape and range, the model left as found, hooks removed, and a CAM that points where the evidence is."""

import numpy as np
import pytest
import torch
from torch import nn

from eva_helpers.cam import gradcam, overlay
from eva_helpers.models import build_model, gradcam_layers


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
    out = overlay(image=image, cam=cam)
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    # jet colormap: hot (red) where the cam is 1, cold (blue) where it is 0
    assert out[0, 0, 0] > out[0, 0, 2] and out[-1, -1, 2] > out[-1, -1, 0]
    with pytest.raises(ValueError, match="match"):
        overlay(image=image, cam=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="uint8"):
        overlay(image=image.astype(np.float32), cam=cam)
