"""What a trained model gets wrong and where it looks: the error report and Grad-CAM heatmaps."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .inference import normalize
from .models import gradcam_layers, preserved_state
from .validate import choice


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


def grad_cams(
    *,
    model: nn.Module,
    images: torch.Tensor,
    layers: Mapping[str, nn.Module],
    targets: Mapping[str, Sequence[int] | None],
    tta: bool = False,
) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """One forward pass of normalized `images` (N, 3, H, W): their logits, and Grad-CAM at every layer for each target.

    Returns (the float logits (N, classes), as inference.eval_logits gives them: with tta, those of each image
    and its mirror image averaged; {"<layer> / <target name>": heatmaps (N, H, W) float32 in [0, 1]}, layers
    in the order given). A target list gives one class per image; None means each image's predicted class.
    The heatmaps are pytorch-grad-cam's GradCAM, computed from one forward pass and one gradient per target
    list for all layers together, in fp32 and eval mode. The pass keeps no graph below the first chosen layer
    and no weight gradients; the model's modes, requires_grad flags and .grad are left as they were.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be a normalized float tensor (N, 3, H, W), got {shape}")
    n, (height, width) = images.shape[0], images.shape[2:]
    lists: dict[str, list[int] | None] = {}
    for which, classes in targets.items():
        lists[which] = None if classes is None else [int(c) for c in classes]
        if classes is not None and len(lists[which]) != n:
            raise ValueError(f"need one target class per image: {len(lists[which])} targets for {n} images")
    for layer in layers.values():
        if not any(module is layer for module in model.modules()):
            raise ValueError("layer is not a submodule of model; pick one of eva_helpers.models.gradcam_layers(model)")
    device = next(model.parameters()).device
    x = images.detach().to(device=device, dtype=torch.float32)
    acts: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
            if not acts:  # the first chosen layer to run: the graph starts here, nothing below it is kept
                output = output.detach().requires_grad_(True)
            acts[name] = output
            return output

        return hook

    handles = [layer.register_forward_hook(keep(name)) for name, layer in layers.items()]
    # fp32 even inside the caller's autocast or no_grad block: heatmaps in bf16 would be coarse
    with preserved_state(model), torch.enable_grad(), torch.autocast(device_type=device.type, enabled=False):
        model.eval().requires_grad_(False)
        try:
            out = model(torch.cat([x, x.flip(3)]) if tta and n else x).float()
        finally:
            for handle in handles:
                handle.remove()
        logits = (out[:n] + out[n:]) / 2 if tta and n else out
        cams: dict[str, np.ndarray] = {}
        for which, classes in lists.items():
            wanted = logits.argmax(1) if classes is None else torch.tensor(classes, dtype=torch.long, device=device)
            if n == 0:  # nothing to explain (a model without mistakes): no heatmaps
                cams.update({f"{name} / {which}": np.zeros((0, height, width), np.float32) for name in layers})
                continue
            score = out[:n].gather(1, wanted[:, None]).sum()  # the class scores of the images as given, not mirrored
            grads = torch.autograd.grad(score, [acts[name] for name in layers], retain_graph=True)
            for name, grad in zip(layers, grads, strict=True):
                weights = grad[:n].mean(dim=(2, 3), keepdim=True)  # GradCAM: the gradient averaged over the grid
                cam = (weights * acts[name][:n]).sum(dim=1).clamp_min(0)
                cams[f"{name} / {which}"] = _as_heatmaps(cam.detach().cpu().numpy(), width=width, height=height)
    return logits.detach(), {f"{name} / {which}": cams[f"{name} / {which}"] for name in layers for which in lists}


def _as_heatmaps(cam: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """(N, h, w) non-negative maps as pytorch-grad-cam finishes them: scaled to [0, 1], resized to the image, again."""
    # Imported here: pytorch_grad_cam pulls in scikit-learn, torchvision and OpenCV (seconds), and
    # `import eva_helpers` should stay cheap for notebooks and the training CLI that never draw a CAM.
    from pytorch_grad_cam.utils.image import scale_cam_image

    resized = scale_cam_image(cam.astype(np.float32), (width, height))  # what GradCAM does per layer
    return np.clip(scale_cam_image(np.maximum(resized, 0)), 0.0, 1.0)  # and to the layers' mean (one layer)


# The CAM methods on offer: Grad-CAM computed here in one pass (grad_cams), the others by pytorch-grad-cam itself.
CAM_METHODS = ("Grad-CAM", "Grad-CAM++", "Score-CAM", "Eigen-CAM", "Layer-CAM")


def library_cams(
    *,
    model: nn.Module,
    images: torch.Tensor,
    layers: Mapping[str, nn.Module],
    targets: Mapping[str, Sequence[int]],
    method: str,
) -> dict[str, np.ndarray]:
    """Heatmaps of one of pytorch-grad-cam's methods ({"<layer> / <target name>": (N, H, W)} in [0, 1]), as the
    library computes them: layer by layer, each with its own passes (Score-CAM runs one per channel of the layer).
    Eigen-CAM reads no class: its heatmap is the same for every target. The model is left as it was found."""
    choice("method", method, CAM_METHODS)
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = dict(zip(CAM_METHODS, (GradCAM, GradCAMPlusPlus, ScoreCAM, EigenCAM, LayerCAM), strict=True))[method]
    x = images.detach().to(device=next(model.parameters()).device, dtype=torch.float32)
    out: dict[str, np.ndarray] = {}
    with preserved_state(model), torch.enable_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        model.eval().requires_grad_(False)
        for name, layer in layers.items():
            with cls(model=model, target_layers=[layer]) as cam:  # __exit__ removes the hooks
                cam.compute_input_gradient = True  # the gradient reaches the layer though the weights are frozen
                cam.batch_size = 256  # Score-CAM: masked copies per forward pass (the library default, 16, is slow)
                for which, classes in targets.items():
                    with contextlib.redirect_stderr(io.StringIO()):  # Score-CAM draws a progress bar per call
                        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])
                    out[f"{name} / {which}"] = np.clip(np.nan_to_num(np.asarray(maps, np.float32)), 0.0, 1.0)
    return out


def gradcam(*, model: nn.Module, images: torch.Tensor, targets: Sequence[int], layer: nn.Module) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) float32 in [0, 1] of `layer` for class `targets[i]` of normalized `images`."""
    return grad_cams(model=model, images=images, layers={"layer": layer}, targets={"cam": targets})[1]["layer / cam"]


def explain(
    *,
    model: nn.Module,
    meta: Mapping,
    images: np.ndarray,
    targets: Mapping[str, Sequence[int] | None],
    layers: Mapping[str, nn.Module] | None = None,
) -> dict[str, np.ndarray]:
    """Grad-CAM of uint8 images (N, H, W, 3) at each layer (default: gradcam_layers) for each named target list.

    `meta` is model.pt's metadata (load_trained): its training-split mean and std prepare the images, as
    predict_logits prepares them, and a target list None is each image's predicted class (with its flip TTA).
    Returns {"<layer> / <target name>": heatmaps (N, H, W)}, layers shallowest first, e.g.
    targets={"predicted": report.pred[idx], "true": report.labels[idx]}. One forward pass serves every layer.
    """
    x = normalize(images=images, mean=meta["mean"], std=meta["std"], device=next(model.parameters()).device)
    layers = gradcam_layers(model) if layers is None else layers
    tta = bool(meta.get("tta", False)) and any(t is None for t in targets.values())  # only a prediction needs it
    return grad_cams(model=model, images=x, layers=layers, targets=targets, tta=tta)[1]


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


GAP = 2  # white pixels between the image the model saw and its heatmap


def beside(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """One picture: the image as the model saw it (left), a white gap, the heatmap over it (right).

    One picture per heatmap, not two: the crop and its heatmap stay side by side at any width, and the page (or
    a client) fetches one file per layer.
    """
    gap = np.full((image.shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([image, gap, heatmap], axis=1)
