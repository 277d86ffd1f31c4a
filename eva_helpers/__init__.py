"""Helpers for the numbered notebooks: `import eva_helpers as eva`, `recipe = eva.check_params(globals())`, then
`data = eva.load_data(recipe)`, `eva.fit(eva.new_model(recipe, data), data, recipe)`.

Each name below lives in the module named for what it does (recipe, data/, augment, models, run_setup, peak,
training, analysis, plots, ...). Importing this package imports nothing else: a module is imported the
first time one of its names is used, so `import eva_helpers` is instant and `eva-train` starts cleanly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# fmt: off
_NAMES = {  # module: the names the notebooks use from it
    "recipe": ("Recipe", "TRAIN_PARAMS", "check_params", "load_recipe", "read_config"),
    "data": ("ImageData", "DataError", "load_data", "read_data", "load_model_data", "synthetic", "dataset_stats",
             "channel_stats", "class_counts", "balanced_subset"),
    "augment": ("resolve_augment", "albumentations_steps", "albumentations_train", "batch_preview"),
    "models": ("build_model", "count_params", "model_summary", "gradcam_layers"),
    "device": ("pick_device", "seed_everything"),
    "run_setup": ("new_model", "augmentation", "augmentation_steps", "prepare"),
    "peak": ("lr_test", "peak_lr", "lr_schedule"),
    "training": ("fit",),
    "model_file": ("load_trained",),
    "inference": ("load_image", "predict_logits", "top_classes", "predict_images"),
    "analysis": ("error_report", "explain", "gradcam", "overlay", "top_class_cams"),
    "plots": ("plot_samples", "plot_class_counts", "plot_augmentations", "plot_lr_finder", "plot_lr_schedule",
              "plot_history", "plot_peak", "plot_misclassified", "plot_confusion_matrix", "plot_per_class_accuracy",
              "plot_gradcam", "plot_predictions", "save_figure", "save_figures", "train_figures"),
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
        read_data,
        synthetic,
    )
    from .device import pick_device, seed_everything  # noqa: F401
    from .files import load_torch, save_json  # noqa: F401
    from .inference import load_image, predict_images, predict_logits, top_classes  # noqa: F401
    from .model_file import load_trained  # noqa: F401
    from .models import build_model, count_params, gradcam_layers, model_summary  # noqa: F401
    from .peak import lr_schedule, lr_test, peak_lr  # noqa: F401
    from .plots import (  # noqa: F401
        plot_augmentations,
        plot_class_counts,
        plot_confusion_matrix,
        plot_gradcam,
        plot_history,
        plot_lr_finder,
        plot_lr_schedule,
        plot_misclassified,
        plot_peak,
        plot_per_class_accuracy,
        plot_predictions,
        plot_samples,
        save_figure,
        save_figures,
        train_figures,
    )
    from .recipe import TRAIN_PARAMS, Recipe, check_params, load_recipe, read_config  # noqa: F401
    from .run_setup import augmentation, augmentation_steps, new_model, prepare  # noqa: F401
    from .training import fit  # noqa: F401
