"""What a trained model gets wrong and where it looks: the error report and Grad-CAM heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .inference import normalize
from .models import gradcam_layers, preserved_state


@dataclass(repr=False)
class ErrorReport:
    """A model's predictions on a labelled split: per image, then summed into a confusion matrix."""

    labels: np.ndarray  # the true class of each image
    pred: np.ndarray  # the predicted class
    confidence: np.ndarray  # the predicted class's probability
    loss: np.ndarray  # per-image cross-entropy
    confusion: np.ndarray  # (classes, classes) counts; rows are the true class
    order: np.ndarray  # indices of the misclassified images, highest loss first
    classes: list[str]
    split: str  # what the images are: "test", "validation", ...
    top5: float | None = None  # fraction with the true class among the 5 most probable (more than 10 classes only)

    @property
    def n(self) -> int:
        """Number of images."""
        return len(self.labels)

    @property
    def count(self) -> int:
        """Number of misclassified images."""
        return len(self.order)

    @property
    def accuracy(self) -> float:
        """Fraction of images classified correctly."""
        return (self.n - self.count) / max(self.n, 1)  # correct / n, the same division as training's accuracy

    @property
    def per_class_accuracy(self) -> list[float]:
        """Recall of each class in label order (0 for a class with no images)."""
        return (self.confusion.diagonal() / np.maximum(self.confusion.sum(1), 1)).tolist()

    @property
    def title(self) -> str:
        """What the report covers, for a figure's title: 'test split: 812 of 10,000 misclassified, accuracy 91.88%'."""
        top5 = "" if self.top5 is None else f", top-5 accuracy {self.top5:.2%}"
        return f"{self.split} split: {self.count:,} of {self.n:,} misclassified, accuracy {self.accuracy:.2%}{top5}"

    def confused_pairs(self, top: int = 10) -> list[dict]:
        """The `top` most frequent (true, predicted) mistakes, most first, with their share of the true class."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        per_class = np.maximum(self.confusion.sum(1), 1)
        flat = [int(i) for i in np.argsort(-off, axis=None, kind="stable")[:top] if off.flat[i] > 0]
        return [
            {"true": self.classes[t], "predicted": self.classes[p], "count": int(off[t, p]),
             "share_of_true_class": float(off[t, p] / per_class[t])}
            for t, p in (divmod(i, len(self.classes)) for i in flat)
        ]  # fmt: skip

    def captions(self, idx: Sequence[int]) -> list[str]:
        """'true → predicted' for the images at idx."""
        return [f"{self.classes[self.labels[i]]} → {self.classes[self.pred[i]]}" for i in idx]

    def summary(self) -> dict:
        """The JSON-ready part, notebook 05's misclassified.json and the app's report: counts, accuracies, confusion."""
        return {
            "split": self.split,
            "count": self.count,
            "n": self.n,
            "accuracy": self.accuracy,
            "top5_accuracy": self.top5,
            "most_confused": self.confused_pairs(),
            "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy)),
            "confusion_matrix": self.confusion.tolist(),
        }

    def __repr__(self) -> str:
        return f"ErrorReport({self.title})"


def error_report(*, logits: np.ndarray, labels: np.ndarray, classes: Sequence[str], split: str = "test") -> ErrorReport:
    """Predictions, confidences, losses, the confusion matrix and the mistakes (worst first) from logits."""
    logits_t = torch.as_tensor(np.asarray(logits), dtype=torch.float32)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    k = len(classes)
    if logits_t.ndim != 2 or logits_t.shape != (len(labels_t), k):
        raise ValueError(f"logits must be (images, classes) = ({len(labels_t)}, {k}); got {tuple(logits_t.shape)}.")
    confidence, pred = logits_t.softmax(1).max(1)
    loss = F.cross_entropy(logits_t, labels_t, reduction="none")
    confusion = torch.bincount(labels_t * k + pred, minlength=k * k).view(k, k).numpy()
    wrong = (pred != labels_t).nonzero().flatten()
    order = wrong[loss[wrong].argsort(descending=True)].numpy()
    top5 = None
    if k > 10:  # with 10 classes or fewer, top-5 says little
        top5 = (
            float((logits_t.topk(5, dim=1).indices == labels_t[:, None]).any(1).float().mean())
            if len(labels_t)
            else 0.0
        )
    return ErrorReport(
        labels=labels_t.numpy(),
        pred=pred.numpy(),
        confidence=confidence.numpy(),
        loss=loss.numpy(),
        confusion=confusion,
        order=order,
        classes=list(classes),
        split=split,
        top5=top5,
    )


def gradcam(*, model: nn.Module, images: torch.Tensor, targets: Sequence[int], layer: nn.Module) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) float32 in [0, 1] of `layer` for class `targets[i]` of normalized `images`."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be a normalized float tensor (N, 3, H, W), got {shape}")
    targets = [int(t) for t in targets]
    if len(targets) != images.shape[0]:
        raise ValueError(f"need one target class per image: {len(targets)} targets for {images.shape[0]} images")
    if not any(module is layer for module in model.modules()):
        raise ValueError("layer is not a submodule of model; pick one from eva_helpers.models.gradcam_layers(model)")
    if not targets:  # no images (a model with no mistakes to explain): no heatmaps
        return np.zeros((0, *images.shape[2:]), dtype=np.float32)
    # Imported here: pytorch_grad_cam pulls in scikit-learn, torchvision and OpenCV (seconds), and
    # `import eva_helpers` should stay cheap for notebooks and the training CLI that never draw a CAM.
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    device = next(model.parameters()).device
    images = images.detach().to(device=device, dtype=torch.float32)
    # Grad-CAM needs the gradient of the class score with respect to the layer's output only.
    # Freezing the weights and asking for the input's gradient instead keeps the parameters' .grad
    # untouched (the library calls model.zero_grad() otherwise) and skips the weight gradients.
    saved_grads = [(p, p.grad) for p in model.parameters()]
    # fp32 even inside the caller's autocast block: the library turns activations into numpy (no bfloat16).
    with preserved_state(model), torch.enable_grad(), torch.autocast(device_type=device.type, enabled=False):
        model.requires_grad_(False)
        with GradCAM(model=model, target_layers=[layer]) as cam:  # __exit__ removes the hooks
            cam.compute_input_gradient = True
            heatmaps = cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    for param, grad in saved_grads:
        param.grad = grad
    return np.clip(np.asarray(heatmaps, dtype=np.float32), 0.0, 1.0)


def explain(
    *,
    model: nn.Module,
    meta: Mapping,
    images: np.ndarray,
    targets: Mapping[str, Sequence[int]],
    layers: Mapping[str, nn.Module] | None = None,
) -> dict[str, np.ndarray]:
    """Grad-CAM of uint8 images (N, H, W, 3) at each layer (default: gradcam_layers) for each named target list.

    `meta` is model.pt's metadata (load_trained): its training-split mean and std prepare the images, as
    predict_logits prepares them. Returns {"<layer> / <target name>": heatmaps (N, H, W)}, layers shallowest
    first, e.g. targets={"predicted": report.pred[idx], "true": report.labels[idx]}.
    """
    x = normalize(images=images, mean=meta["mean"], std=meta["std"], device=next(model.parameters()).device)
    layers = gradcam_layers(model) if layers is None else layers
    return {
        f"{name} / {which}": gradcam(model=model, images=x, targets=list(classes), layer=layer)
        for name, layer in layers.items()
        for which, classes in targets.items()
    }


def top_class_cams(*, model: nn.Module, meta: Mapping, predictions: Sequence[Mapping]) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) at the deepest layer for each prediction's top class (inference.predict_images)."""
    images = np.stack([p["image"] for p in predictions])
    deepest = dict(list(gradcam_layers(model).items())[-1:])
    tops = [list(meta["classes"]).index(p["top"][0]["class"]) for p in predictions]
    cams = explain(model=model, meta=meta, images=images, targets={"top": tops}, layers=deepest)
    return next(iter(cams.values()))


def overlay(*, image: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """The image (H, W, 3) uint8 with `heatmap` (H, W) in [0, 1] blended over it, as uint8."""
    image = np.asarray(image)
    heatmap = np.asarray(heatmap)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heatmap.shape} must match the image's (H, W) {image.shape[:2]}")
    from pytorch_grad_cam.utils.image import show_cam_on_image  # imported here: see gradcam

    mask = np.clip(heatmap.astype(np.float32), 0.0, 1.0)
    return show_cam_on_image(image.astype(np.float32) / 255.0, mask, use_rgb=True, image_weight=image_weight)
