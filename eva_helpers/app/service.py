"""What the app computes for a visitor, without Gradio: a safe read of an upload, top classes, Grad-CAM, mistakes.

Every function takes the AppModel and the visitor's values as arguments and returns values. Between calls
the app keeps only the model's answers to the last MAX_ANSWERS images (a digest of the pixels, the logits and
heatmaps; never the pixels), so that an example or a new opacity is blended without the model. The model is
shared by every visitor, and Grad-CAM hangs hooks on its layers while it runs (a forward pass of another
request in that moment would feed them), so every use of the model holds AppModel.lock.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..analysis import CAM_METHODS, beside, explain, grad_cams, library_cams, overlay
from ..images import ALLOWED_FORMATS, ImageError, formats_text
from ..inference import eval_logits, load_image, normalize, ranked, top_classes
from ..models import gradcam_layers
from ..validate import real, whole

MAX_PIXELS = 40_000_000  # an upload with more pixels is refused before it is decoded: a 10 KB PNG can hold 1e9 pixels
MAX_TOP_K = 10  # the most classes a visitor can ask for
MAX_FILES = 100  # the most files in one batch
MAX_MISTAKES = 100  # the misclassified images kept (highest loss first) for the gallery
MAX_ANSWERS = 256  # the model's answers kept for repeated questions (a few KB each), least recently asked dropped


class InputError(ValueError):
    """Something a visitor sent that the app cannot use; the message says what was wrong and what to do."""


@dataclass
class Mistake:
    """A misclassified image of the held-out split: the pixels, the true and predicted class, its probability."""

    image: np.ndarray  # uint8 (H, W, 3), as the model saw it
    true: int
    pred: int
    prob: float  # the predicted class's probability


@dataclass
class AppModel:
    """The model in eval mode and what the app shows about it; one per server, shared by every visitor."""

    model: nn.Module
    meta: dict[str, Any]  # model.pt's metadata: classes, mean/std of the training split, image_size, ...
    examples: list[Path] = field(default_factory=list)  # PNG files, one test image per class
    mistakes: list[Mistake] = field(default_factory=list)  # computed once, at start or at export
    report: dict[str, Any] | None = None  # the held-out split's analysis.ErrorReport.summary()
    metrics: dict[str, Any] | None = None  # the run's metrics.json (history, params, provenance), if known
    figures: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (title, RGB image) for the model tab
    notes: list[str] = field(default_factory=list)  # what is missing and why, shown in the app
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # What the model computed, kept so that a repeated question (an example, a new opacity) is only blended:
    # (image digest, layers, extra class) -> (logits, heatmaps); the mistakes' heatmaps for every layer.
    answers: OrderedDict = field(default_factory=OrderedDict, repr=False)
    mistake_cams: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        """The class names, in label order."""
        return list(self.meta["classes"])

    @property
    def layer_names(self) -> list[str]:
        """The Grad-CAM layers of the model by name, shallowest first."""
        return list(gradcam_layers(self.model))

    @property
    def max_k(self) -> int:
        """The most top classes a visitor can ask for: 10, or fewer if the model knows fewer classes."""
        return min(MAX_TOP_K, len(self.classes))


def read_upload(path: str | Path | None, *, size: int, name: str | None = None, max_pixels: int = MAX_PIXELS):
    """An uploaded file as the uint8 (size, size, 3) image the model takes, or InputError naming the file.

    The pixel count is read from the header and checked before anything is decoded: a JPEG over max_pixels is
    decoded at the reduced scale that fits (up to 64 times more pixels), any other file is refused. Then the file
    goes through inference.load_image, the preprocessing of evaluation and training (images.to_rgb, then the crop).
    """
    from PIL import Image, UnidentifiedImageError

    if path is None or str(path) == "":
        raise InputError("No image was given: upload an image, or pick one of the examples.")
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise InputError(f"{name} did not arrive; upload it again.")
    if path.stat().st_size == 0:
        raise InputError(f"{name} is empty (0 bytes); upload the image file itself.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            with Image.open(path, formats=ALLOWED_FORMATS) as im:  # no other reader is tried (EPS runs Ghostscript)
                (width, height), jpeg = im.size, im.format == "JPEG"
    except Image.DecompressionBombError as e:  # larger than even PIL's own limit
        raise InputError(f"{name} has more pixels than the {max_pixels / 1e6:g} megapixels this app decodes; "
                         "make it smaller first.") from e  # fmt: skip
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(
            f"{name} is not an image this app can read ({type(e).__name__}); upload a {formats_text()} file."
        ) from e
    draft = None
    # A JPEG decodes at 1/2, 1/4 or 1/8 scale (Image.draft): a phone photo over the limit is read smaller, not refused.
    scale = next((f for f in (1, 2, 4, 8) if width * height <= max_pixels * f * f), None) if jpeg else None
    if scale is not None and scale > 1:
        draft = (width // scale, height // scale)
    elif width * height > max_pixels:
        raise InputError(
            f"{name} has {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), more than the "
            f"{max_pixels / 1e6:g} megapixels this app decodes; make it smaller first (the model sees {size}x{size})."
        )
    try:
        return load_image(path, size=size, draft=draft)
    except ImageError as e:  # damaged, cut short, or pixels it cannot use (a float image outside [0, 1])
        raise InputError(f"{name} {e.reason}") from e
    except (ValueError, OSError) as e:
        raise InputError(f"{name} cannot be decoded: the file is damaged or cut short; upload it again.") from e


def check_k(*, app: AppModel, k: Any) -> int:
    """k as an int in 1..app.max_k, or InputError saying the range."""
    if isinstance(k, float) and k.is_integer():
        k = int(k)  # a slider's 5.0
    try:
        return whole("k", k, low=1, high=app.max_k, hint=f"at most {MAX_TOP_K}, and this model knows "
                                                         f"{len(app.classes)} classes")  # fmt: skip
    except ValueError as e:
        raise InputError(str(e)) from e


def check_layers(*, app: AppModel, layers: str | Sequence[str] | None) -> list[str]:
    """The Grad-CAM layer names asked for (one name or a list), each one of the model's, or InputError."""
    names = [layers] if isinstance(layers, str) else list(layers or [])
    if not names:
        raise InputError(f"Choose at least one Grad-CAM layer: {', '.join(app.layer_names)}.")
    unknown = [n for n in names if n not in app.layer_names]
    if unknown:
        raise InputError(f"The model has no Grad-CAM layer {unknown[0]!r}; choose from {', '.join(app.layer_names)}.")
    return list(dict.fromkeys(names))


def check_opacity(opacity: Any) -> float:
    """The heatmap's opacity as a float in [0, 1], or InputError."""
    try:
        return real("opacity", opacity, low=0.0, high=1.0, hint="0 shows the image only, 1 the heatmap only")
    except ValueError as e:
        raise InputError(str(e)) from e


def class_index(*, app: AppModel, name: str) -> int:
    """The label of class `name`, or InputError."""
    if name not in app.classes:
        raise InputError(f"The model knows no class {name!r}; pick one from the list.")
    return app.classes.index(name)


def top_k(*, app: AppModel, image: np.ndarray, k: Any) -> list[tuple[str, float]]:
    """The k most probable classes of one uint8 image (as read_upload gives it), most probable first."""
    k = check_k(app=app, k=k)
    with app.lock:
        return top_classes(model=app.model, images=image[None], meta=app.meta, k=k)[0]


def explain_image(
    *,
    app: AppModel,
    image: np.ndarray,
    k: Any,
    layers: Sequence[str],
    opacity: Any,
    also_class: str | None = None,
    method: str = "Grad-CAM",
) -> tuple[list[tuple[str, float]], list[tuple[np.ndarray, str]]]:
    """Top-k of one image, and a gallery of its Grad-CAM (per layer) for the predicted class and, if given, for
    `also_class`: each picture is the image as the model saw it with the heatmap beside it (see `beside`).

    One forward pass serves the top-k (with the model's flip TTA) and every layer's Grad-CAM; another `method` of
    analysis.CAM_METHODS is pytorch-grad-cam's own, layer by layer. An image asked about before is answered from
    app.answers, and only blended.
    """
    if method not in CAM_METHODS:
        raise InputError(f"There is no CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}.")
    k, layers, opacity = check_k(app=app, k=k), check_layers(app=app, layers=layers), check_opacity(opacity)
    targets: dict[str, list[int] | None] = {"predicted": None}
    if also_class:
        targets["chosen"] = [class_index(app=app, name=also_class)]
    logits, cams = _answer(app=app, image=image, layers=layers, targets=targets, method=method)
    top = ranked(logits, app.classes, k=k)[0]
    predicted = int(logits.argmax(1)[0])  # the class the "predicted" heatmaps explain; top[0] gives its probability
    wanted = [("predicted", predicted, f"predicted, {top[0][1]:.0%}")]
    if also_class and targets["chosen"][0] != predicted:
        wanted.append(("chosen", targets["chosen"][0], "your choice"))
    named = "" if method == "Grad-CAM" else f", {method}"
    gallery = [(beside(image, overlay(image=image, heatmap=cams[f"{layer} / {key}"][0], image_weight=1.0 - opacity)),
                f"{layer}: {app.classes[c]} ({why}{named})")
               for layer in layers for key, c, why in wanted]  # fmt: skip
    return top, gallery


def _answer(
    *, app: AppModel, image: np.ndarray, layers: list[str], targets: dict[str, list[int] | None], method: str
) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The model's logits and heatmaps for one image: from app.answers when asked before, else computed, then kept."""
    key = (hashlib.sha256(image.tobytes()).hexdigest(), image.shape, tuple(layers), tuple(map(str, targets.items())),
           method)  # fmt: skip
    with app.lock:
        if key in app.answers:
            app.answers.move_to_end(key)
            return app.answers[key]
        chosen = {name: gradcam_layers(app.model)[name] for name in layers}
        x = normalize(images=image[None], mean=app.meta["mean"], std=app.meta["std"],
                      device=next(app.model.parameters()).device)  # fmt: skip
        tta = bool(app.meta.get("tta", False))
        if method == "Grad-CAM":
            answer = grad_cams(model=app.model, images=x, layers=chosen, targets=targets, tta=tta)
        else:
            with torch.no_grad():
                logits = eval_logits(app.model, x, tta=tta).float()
            named = {which: logits.argmax(1).tolist() if c is None else c for which, c in targets.items()}
            answer = logits, library_cams(model=app.model, images=x, layers=chosen, targets=named, method=method)
        app.answers[key] = answer
        while len(app.answers) > MAX_ANSWERS:
            app.answers.popitem(last=False)
        return answer


def predict_files(*, app: AppModel, files: Sequence[tuple[str | Path, str]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows of file, top class, probability; the problems) for (path, name) pairs; files that fail are named."""
    if not files:
        raise InputError("No files were given: choose one or more image files.")
    if len(files) > MAX_FILES:
        raise InputError(f"{len(files)} files is more than the {MAX_FILES} this app takes at once; split them up.")
    size = app.meta["image_size"]
    images, names, problems = [], [], []
    for path, name in files:
        try:
            images.append(read_upload(path, size=size, name=name))
            names.append(name)
        except InputError as e:
            problems.append(str(e))
    if not images:
        raise InputError("None of the files could be used: " + " ".join(problems))
    with app.lock:
        tops = top_classes(model=app.model, images=np.stack(images), meta=app.meta, k=1)
    rows = [{"file": n, "top class": t[0][0], "probability": round(t[0][1], 4)} for n, t in zip(names, tops)]
    return rows, problems


def rows_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The batch table as CSV text with a header line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["file", "top class", "probability"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def mistake_caption(*, app: AppModel, mistake: Mistake) -> str:
    """'true cat, predicted dog (87%)'."""
    return f"true {app.classes[mistake.true]}, predicted {app.classes[mistake.pred]} ({mistake.prob:.0%})"


def mistakes_gallery(
    *, app: AppModel, count: Any, gradcam: bool = False, layer: str | None = None, opacity: Any = 0.5
) -> list[tuple[np.ndarray, str]]:
    """The `count` worst mistakes (highest loss first) captioned; with gradcam, each followed by its Grad-CAM
    for the predicted class and for the true class at `layer` (default: the deepest)."""
    if not app.mistakes:
        r = app.report
        perfect = r is not None and r["count"] == 0
        raise InputError(f"No mistakes to show: the model got all {r['n']:,} {r['split']} images right." if perfect
                         else " ".join(app.notes) or "The held-out split has no misclassified images.")  # fmt: skip
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    try:
        count = whole("count", count, low=1, high=len(app.mistakes), hint="the misclassified images kept")
    except ValueError as e:
        raise InputError(str(e)) from e
    chosen = app.mistakes[:count]
    shown = [(m.image, mistake_caption(app=app, mistake=m)) for m in chosen]
    if not gradcam:
        return shown
    layer = check_layers(app=app, layers=layer or app.layer_names[-1])[0]
    opacity = check_opacity(opacity)
    heatmaps = mistake_heatmaps(app=app)
    out = []
    for i, m in enumerate(chosen):
        out.append(shown[i])  # the mistake, then its heatmaps for the predicted and the true class
        for which, c in (("predicted", m.pred), ("true", m.true)):
            blended = overlay(image=m.image, heatmap=heatmaps[f"{layer} / {which}"][i], image_weight=1.0 - opacity)
            out.append((blended, f"{layer}: {which} {app.classes[c]}"))
    return out


def mistake_heatmaps(*, app: AppModel) -> dict[str, np.ndarray]:
    """Grad-CAM of every kept mistake at every layer, for the predicted and the true class: computed once."""
    with app.lock:
        if not app.mistake_cams and app.mistakes:
            images = np.stack([m.image for m in app.mistakes])
            app.mistake_cams = explain(model=app.model, meta=app.meta, images=images, layers=gradcam_layers(app.model),
                                       targets={"predicted": [m.pred for m in app.mistakes],
                                                "true": [m.true for m in app.mistakes]})  # fmt: skip
        return app.mistake_cams


def warm_up(*, app: AppModel) -> None:
    """Answer what visitors ask first before any of them comes: the examples at the deepest layer (or, without
    examples, a grey image, so that the first visitor does not wait for the imports), and the mistakes' heatmaps."""
    size, deepest = app.meta["image_size"], app.layer_names[-1:]
    firsts = [read_upload(p, size=size) for p in app.examples] or [np.full((size, size, 3), 128, np.uint8)]
    for image in firsts:
        explain_image(app=app, image=image, k=1, layers=deepest, opacity=0.5)
    mistake_heatmaps(app=app)
