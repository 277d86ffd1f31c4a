"""Helpers for the numbered notebooks: `import eva_helpers as eva`, then `eva.load_data(...)`, `eva.fit(...)`.

Each name below lives in the module named for what it does (data/, augment, models, train, analysis,
plots, ...). Importing this package imports nothing else: a module is imported the first time one of
its names is used, so `import eva_helpers` is instant and `python -m eva_helpers.train` runs cleanly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# fmt: off
_NAMES = {  # module: the names the notebooks use from it
    "params": ("TRAIN_PARAMS", "check_params", "pick", "read_config"),
    "data": ("ImageData", "DataError", "load_data", "load_model_data", "synthetic", "dataset_stats", "channel_stats",
             "class_counts", "balanced_subset"),
    "augment": ("resolve_augment", "albumentations_steps", "albumentations_train", "batch_preview"),
    "models": ("build_model", "count_params", "model_summary", "gradcam_layers"),
    "device": ("pick_device", "seed_everything"),
    "train": ("prepare", "lr_test", "fit"),
    "inference": ("load_trained", "load_image", "predict_logits", "top_classes", "predict_images"),
    "analysis": ("error_report", "explain", "gradcam", "overlay", "top_class_cams"),
    "plots": ("plot_samples", "plot_class_counts", "plot_augmentations", "plot_lr_finder", "plot_lr_schedule",
              "plot_history", "plot_misclassified", "plot_confusion_matrix", "plot_per_class_accuracy", "plot_gradcam",
              "plot_predictions", "save_figure", "train_figures"),
    "files": ("save_json", "load_torch"),
}
# fmt: on
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """Import the module that holds `name` on first use (PEP 562)."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'eva_helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # for editors and type checkers, which do not run __getattr__
    from .analysis import error_report, explain, gradcam, overlay, top_class_cams  # noqa: F401
    from .augment import albumentations_steps, albumentations_train, batch_preview, resolve_augment  # noqa: F401
    from .data import (  # noqa: F401
        DataError,
        ImageData,
        balanced_subset,
        channel_stats,
        class_counts,
        dataset_stats,
        load_data,
        load_model_data,
        synthetic,
    )
    from .device import pick_device, seed_everything  # noqa: F401
    from .files import load_torch, save_json  # noqa: F401
    from .inference import load_image, load_trained, predict_images, predict_logits, top_classes  # noqa: F401
    from .models import build_model, count_params, gradcam_layers, model_summary  # noqa: F401
    from .params import TRAIN_PARAMS, check_params, pick, read_config  # noqa: F401
    from .plots import (  # noqa: F401
        plot_augmentations,
        plot_class_counts,
        plot_confusion_matrix,
        plot_gradcam,
        plot_history,
        plot_lr_finder,
        plot_lr_schedule,
        plot_misclassified,
        plot_per_class_accuracy,
        plot_predictions,
        plot_samples,
        save_figure,
        train_figures,
    )
    from .train import fit, lr_test, prepare  # noqa: F401
