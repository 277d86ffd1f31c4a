"""Grad-CAM heatmaps (pytorch-grad-cam) and their overlay on the images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from eva_helpers.models import preserved_state


def gradcam(*, model: nn.Module, images: torch.Tensor, targets: Sequence[int], layer: nn.Module) -> np.ndarray:
    """Return Grad-CAM heatmaps (N, H, W) float32 in [0, 1] of `layer` for class `targets[i]` of normalized `images`."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be a normalized float tensor (N, 3, H, W), got {shape}")
    targets = [int(t) for t in targets]
    if len(targets) != images.shape[0]:
        raise ValueError(f"need one target class per image: {len(targets)} targets for {images.shape[0]} images")
    if not any(module is layer for module in model.modules()):
        raise ValueError("layer is not a submodule of model; pick one from eva_helpers.models.gradcam_layers(model)")
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


def overlay(*, image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Return the image (H, W, 3) uint8 with the heatmap `cam` (H, W) in [0, 1] blended over it, uint8."""
    image = np.asarray(image)
    cam = np.asarray(cam)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if cam.shape != image.shape[:2]:
        raise ValueError(f"cam shape {cam.shape} must match the image's (H, W) {image.shape[:2]}")
    from pytorch_grad_cam.utils.image import show_cam_on_image  # imported here: see gradcam

    mask = np.clip(cam.astype(np.float32), 0.0, 1.0)
    return show_cam_on_image(image.astype(np.float32) / 255.0, mask, use_rgb=True, image_weight=image_weight)
