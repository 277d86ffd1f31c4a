"""Every figure the notebooks show; each function returns a matplotlib Figure and shows nothing."""

from .common import MANY_CLASSES, _short, save_figure, save_figures
from .data import plot_augmentations, plot_class_counts, plot_samples
from .errors import plot_confusion_matrix, plot_gradcam, plot_misclassified, plot_per_class_accuracy, plot_predictions
from .training import plot_history, plot_lr_finder, plot_lr_schedule, plot_peak, train_figures

__all__ = [
    "MANY_CLASSES", "plot_augmentations", "plot_class_counts", "plot_confusion_matrix", "plot_gradcam",
    "plot_history", "plot_lr_finder", "plot_lr_schedule", "plot_misclassified", "plot_peak", "plot_per_class_accuracy",
    "plot_predictions", "plot_samples", "save_figure", "save_figures", "train_figures", "_short",
]  # fmt: skip
