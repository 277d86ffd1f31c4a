"""An AppModel from a model.pt and its data: the held-out split's mistakes and report once, examples, figures."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import error_report
from ..inference import predict_logits
from ..model_file import load_trained
from .bundle import save_png
from .service import MAX_MISTAKES, AppModel, Mistake

EXAMPLES_DIR = "app_examples"  # beside model.pt: one held-out image per class (the first 10 classes), as PNG
N_EXAMPLES = 10


def read_metrics(*, model_path: Path, meta: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The metrics.json beside model.pt if it belongs to the same run (same test accuracy), else None and why."""
    path = model_path.parent / "metrics.json"
    if not path.is_file():
        return None, [f"No metrics.json beside {model_path.name}: the recipe and the curves are not shown."]
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, [f"{path.name} beside {model_path.name} cannot be read: the recipe and the curves are not shown."]
    if not metrics.get("finished") or metrics.get("test_acc") != meta.get("test_acc"):
        return None, [f"{path.name} beside {model_path.name} is from another run (one still training?); the recipe "
                      "and the curves are not shown."]  # fmt: skip
    return metrics, []


def choose_examples(*, labels: np.ndarray, num_classes: int, n: int = N_EXAMPLES) -> list[int]:
    """Indices of the first held-out image of each of the first n classes (one per class for CIFAR-10)."""
    out = []
    for c in range(min(n, num_classes)):
        hits = np.flatnonzero(labels == c)
        if len(hits):
            out.append(int(hits[0]))
    return out


def write_examples(*, folder: Path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[Path]:
    """The example images as NN_<class>.png in `folder`; an existing set of PNGs there is used as it is."""
    found = sorted(folder.glob("*.png"))
    if found:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, i in enumerate(choose_examples(labels=labels, num_classes=len(classes))):
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", classes[labels[i]].split(",")[0]).strip("_") or "class"
        path = folder / f"{j:02d}_{name}.png"
        save_png(image=images[i], path=path)
        paths.append(path)
    return paths


def figure_image(fig) -> np.ndarray:
    """A matplotlib figure drawn into an RGB uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figures(*, app: AppModel, report) -> list[tuple[str, np.ndarray]]:
    """The model tab's figures: the confusion matrix (20 classes or fewer), per-class accuracy, training curves."""
    from ..plots import MANY_CLASSES, plot_confusion_matrix, plot_history, plot_per_class_accuracy

    out = []
    if report is not None:
        if len(app.classes) <= MANY_CLASSES:
            out.append(("Confusion matrix", figure_image(plot_confusion_matrix(cm=report.confusion, classes=app.classes,
                                                                                title=report.title))))  # fmt: skip
        acc = plot_per_class_accuracy(accuracy=report.per_class_accuracy, classes=app.classes)
        out.append(("Accuracy per class", figure_image(acc)))
    if app.metrics and app.metrics.get("history"):
        curves = plot_history(history=app.metrics["history"], test_split=app.meta.get("test_split", "test"))
        out.append(("Training curves", figure_image(curves)))
    return out


def load_local(
    *, model_path: str | Path, data_dir: str | Path | None = None, device: str = "cpu", progress: bool = True
) -> AppModel:
    """The app's model from model.pt (strictly), with the mistakes and report of its held-out split computed now.

    data_dir: where the data is on this machine (default: where model.pt says it was). When the data cannot
    be found and data_dir was not given, the app starts without the mistakes and says why.
    """
    from ..data import DataError, load_model_data

    model_path = Path(model_path)
    model, meta = load_trained(checkpoint=model_path, device=device)
    metrics, notes = read_metrics(model_path=model_path, meta=meta)
    app = AppModel(model=model, meta=meta, metrics=metrics, notes=notes)
    examples_dir = model_path.parent / EXAMPLES_DIR
    try:
        data = load_model_data(meta=meta, data_dir=data_dir, progress=progress)
    except (FileNotFoundError, DataError, ValueError, OSError) as e:
        if data_dir is not None:
            raise
        app.notes.append(f"The mistakes are not shown: the data could not be loaded ({e}). Start the app with "
                         "--data_dir <the folder holding the data>.")  # fmt: skip
        app.examples = sorted(examples_dir.glob("*.png"))
        app.figures = figures(app=app, report=None)
        return app
    started = time.perf_counter()
    logits = predict_logits(model=model, images=data.x_test, meta=meta, progress=progress)
    report = error_report(logits=logits, labels=data.y_test, classes=meta["classes"], split=data.test_split)
    if progress:
        print(f"{report.title} ({time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)
    app.mistakes = [Mistake(image=data.x_test[i], true=int(report.labels[i]), pred=int(report.pred[i]),
                            prob=float(report.confidence[i])) for i in report.order[:MAX_MISTAKES]]  # fmt: skip
    app.report = report.summary()  # the JSON notebook 05 saves as misclassified.json
    app.examples = write_examples(folder=examples_dir, images=data.x_test, labels=data.y_test, classes=app.classes)
    app.figures = figures(app=app, report=report)
    return app
