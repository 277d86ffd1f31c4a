"""The networks by name (David C's custom ResNet for CIFAR-10, a CIFAR-style ResNet18), a summary, Grad-CAM layers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
import torchinfo
from torch import nn

from .validate import choice, real, whole


def _conv3x3(cin: int, cout: int, *, stride: int = 1) -> nn.Conv2d:
    """Return a 3x3 convolution with padding 1 and no bias (a BatchNorm follows it)."""
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _scaled(channels: int, width: float) -> int:
    """A layer's channel count at `width` times the published network's (at least 1)."""
    return max(1, round(channels * width))


def _stem(cout: int) -> nn.Sequential:
    """Conv 3x3 -> BN -> ReLU on the RGB input, at full resolution: the first layer of both networks."""
    stem = nn.Sequential()
    stem.add_module("conv", _conv3x3(3, cout))
    stem.add_module("bn", nn.BatchNorm2d(cout))
    stem.add_module("relu", nn.ReLU())
    return stem


# ---------------------------------------------------------------------------------------------
# Custom ResNet (seed 003/004): prep -> layer1 (+res) -> layer2 -> layer3 (+res) -> maxpool 4 -> fc


class ConvPoolBlock(nn.Sequential):
    """Conv 3x3 -> MaxPool 2 -> BN -> ReLU: halves the resolution (the seed's X in each layer)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv3x3(cin, cout)
        self.pool = nn.MaxPool2d(2)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()


class ResBlock(nn.Sequential):
    """(Conv-BN-ReLU) x 2 at constant width: the seed's R, added to X by the layer that owns it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()


class ResLayer(nn.Module):
    """X = ConvPoolBlock(x); out = X + ResBlock(X)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvPoolBlock(cin, cout)
        self.res = ResBlock(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x + self.res(x)


class CustomResNet(nn.Module):
    """David C's ResNet-9 variant for 32x32 CIFAR-10 images (6,573,130 parameters for 10 classes); returns logits."""

    input_size = 32  # layer3 leaves 4x4 at 32x32 input, which the final MaxPool2d(4) turns into 1x1
    gradcam_layer_names = ("layer1", "layer2", "layer3")  # Grad-CAM targets, shallowest first

    def __init__(self, num_classes: int = 10, logit_scale: float = 1.0, width: float = 1.0) -> None:
        super().__init__()
        self.logit_scale = logit_scale  # a constant, not a parameter: Page multiplies the logits by 0.125
        self.width = width  # channels x width: 0.25 is the LR sweep's proxy, at about 1/16 of the work
        c1, c2, c3, c4 = (_scaled(c, width) for c in (64, 128, 256, 512))
        self.prep = _stem(c1)
        self.layer1 = ResLayer(c1, c2)  # 32 -> 16
        self.layer2 = ConvPoolBlock(c2, c3)  # 16 -> 8
        self.layer3 = ResLayer(c3, c4)  # 8 -> 4
        self.pool = nn.MaxPool2d(4)  # 4 -> 1
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            # Without this check a 64x64 image fails inside fc with a shape error that names no cause.
            raise ValueError(
                f"CustomResNet takes {self.input_size}x{self.input_size} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}; use model 'resnet18' for other image sizes"
            )
        x = self.prep(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.fc(self.flatten(self.pool(x))) * self.logit_scale


# ---------------------------------------------------------------------------------------------
# ResNet18, CIFAR style (kuangliu/pytorch-cifar): 3x3 stem, no max-pool, adaptive average pool


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with an identity (or 1x1 conv-BN) shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride=stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet18 for 32x32 or 64x64 images (11,173,962 parameters for 10 classes); returns logits."""

    gradcam_layer_names = ("layer2", "layer3", "layer4")  # Grad-CAM targets, shallowest first

    def __init__(self, num_classes: int = 10, logit_scale: float = 1.0, width: float = 1.0) -> None:
        super().__init__()
        self.logit_scale = logit_scale  # a constant multiplying the logits, not a parameter
        self.width = width  # channels x width, as in CustomResNet
        c1, c2, c3, c4 = (_scaled(c, width) for c in (64, 128, 256, 512))
        self.stem = _stem(c1)
        self.layer1 = self._make_layer(c1, c1, stride=1)
        self.layer2 = self._make_layer(c1, c2, stride=2)
        self.layer3 = self._make_layer(c2, c3, stride=2)
        self.layer4 = self._make_layer(c3, c4, stride=2)
        # Adaptive, not a fixed avg_pool2d(4): the same network then takes 32x32 and 64x64 images.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c4, num_classes)

    @staticmethod
    def _make_layer(cin: int, cout: int, *, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(cin, cout, stride=stride), BasicBlock(cout, cout, stride=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.pool(x))) * self.logit_scale


# ---------------------------------------------------------------------------------------------


# The networks by name: adding one is its class above and one line here.
MODELS: dict[str, type[nn.Module]] = {"custom_resnet": CustomResNet, "resnet18": ResNet18}


def build_model(
    *, name: str, num_classes: int, seed: int | None = None, logit_scale: float = 1.0, width: float = 1.0
) -> nn.Module:
    """Return a freshly initialised model by name; with a seed, the same weights every time (global RNG untouched).

    logit_scale multiplies the logits (David Page's ResNet-9 recipe uses 0.125): with a mean loss it
    acts like a smaller LR for the last layer and a softer softmax. It adds no parameter. width multiplies
    every layer's channels (1: the published network; benchmarks/lr_sweep.py trains proxies at 0.25).
    """
    choice("model", name, MODELS)
    whole("num_classes", num_classes, low=2, hint="pass the dataset's class count")
    real("logit_scale", logit_scale, low=0, low_open=True)
    real("width", width, low=0, low_open=True, hint="1 for the published network, 0.25 for a quarter of its channels")
    kwargs = {"num_classes": num_classes, "logit_scale": logit_scale, "width": width}
    if seed is None:
        return MODELS[name](**kwargs)
    with torch.random.fork_rng(devices=[]):  # initialisation draws from torch's CPU generator only
        torch.manual_seed(whole("seed", seed, low=0))
        return MODELS[name](**kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DDP and torch.compile wrappers (the model itself when there are none)."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def model_name(model: nn.Module) -> str | None:
    """The name build_model knows `model` by (through DDP and torch.compile wrappers), or None."""
    model = unwrap(model)
    return next((name for name, cls in MODELS.items() if type(model) is cls), None)


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Return the number of parameters (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore every module's train/eval mode, every parameter's requires_grad and the model's device on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    first = next(model.parameters(), None)
    device = first.device if first is not None else None
    try:
        yield
    finally:
        if device is not None:
            model.to(device)
        for module, training in modes:
            module.training = training
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)


def model_summary(
    *, model: nn.Module, image_size: int, batch_size: int = 1, device: str | torch.device = "cpu"
) -> torchinfo.ModelStatistics:
    """Return torchinfo's layer table for a (batch_size, 3, image_size, image_size) input; display it to see it."""
    whole("image_size", image_size, low=1)
    whole("batch_size", batch_size, low=1)
    # torchinfo moves the model to `device` and switches it to eval: put both back afterwards.
    with preserved_state(model):
        return torchinfo.summary(
            model,
            input_size=(batch_size, 3, image_size, image_size),
            device=device,
            verbose=0,
            depth=3,
            col_names=("output_size", "num_params", "mult_adds"),
            row_settings=("var_names",),
        )


def gradcam_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Return {name: module} of Grad-CAM target layers, shallowest first, deepest last."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper shares its modules with the original
    names = getattr(type(model), "gradcam_layer_names", None)
    if names is None:
        raise ValueError(
            f"no Grad-CAM layers known for {type(model).__name__}; build the model with build_model "
            f"(one of {', '.join(MODELS)}) or pick a conv layer yourself"
        )
    return {name: getattr(model, name) for name in names}
