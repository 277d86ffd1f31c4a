"""Figures: the right panels, titles and labels for 10 and 200 classes; PNGs written; no global state touched."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import albumentations as A  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from eva_helpers import plots  # noqa: E402

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TINY = [f"European fire salamander, Salamandra salamandra {i}" for i in range(200)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _images(n, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _texts(fig):
    """Every title, axis label, tick label and text of the figure, as one string."""
    out = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() + ax.texts]
        legend = ax.get_legend()
        if legend:
            out += [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()]
    return "\n".join(out)


def test_import_leaves_rcparams_alone_and_stays_light():
    code = (
        "import sys, matplotlib as mpl; before = dict(mpl.rcParams); "
        "import eva_helpers.plots, eva_helpers.analysis; assert dict(mpl.rcParams) == before; "
        "assert 'pytorch_grad_cam' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_samples_one_titled_tile_per_image():
    fig = plots.plot_samples(images=_images(11), labels=list(range(10)) + [3], classes=CIFAR, ncols=4, title="CIFAR-10")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 11
    assert [ax.get_title() for ax in fig.axes][:3] == ["airplane", "automobile", "bird"]
    assert fig._suptitle.get_text() == "CIFAR-10"


def test_plot_samples_shortens_long_class_names():
    fig = plots.plot_samples(images=_images(2), labels=[0, 199], classes=TINY)
    titles = [ax.get_title() for ax in fig.axes]
    assert all(len(t) <= 18 for t in titles) and titles[0].startswith("European fire")
    with pytest.raises(ValueError, match="one label per image"):
        plots.plot_samples(images=_images(2), labels=[0], classes=CIFAR)
    with pytest.raises(ValueError, match="uint8"):
        plots.plot_samples(images=_images(2).astype(np.float32), labels=[0, 1], classes=CIFAR)


@pytest.mark.parametrize("classes", [CIFAR, TINY])
def test_plot_class_counts_bars_per_split(classes):
    k = len(classes)
    fig = plots.plot_class_counts(counts={"train": [50] * k, "validation": [20] * k}, classes=classes)
    (ax,) = fig.axes
    assert len(ax.patches) >= 2 * k
    assert "validation" in _texts(fig) and f"{k} classes" in ax.get_title()
    assert len(ax.get_xticklabels()) <= 20  # never 200 tick labels
    with pytest.raises(ValueError, match="entries"):
        plots.plot_class_counts(counts={"train": [1, 2]}, classes=classes)


def test_plot_augmentations_rows_and_reproducible():
    images = _images(4, size=32)
    flip = A.HorizontalFlip(p=0.5)
    cutout = A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(8, 8), hole_width_range=(8, 8), p=1.0)
    steps = {"horizontal flip": flip, "cutout 8x8": cutout, "all together": A.Compose([flip, cutout])}
    state = cutout.random_generator.bit_generator.state

    def pixels(fig):
        return [ax.images[0].get_array().copy() for ax in fig.axes]

    fig = plots.plot_augmentations(images=images, steps=steps, seed=3)
    assert len(fig.axes) == 4 * 4
    row_labels = [fig.axes[r * 4].get_ylabel() for r in range(4)]
    assert row_labels == ["original", "horizontal flip", "cutout 8x8", "all together"]
    first = pixels(fig)
    np.testing.assert_array_equal(first[0], images[0])
    assert not np.array_equal(first[2 * 4], images[0])  # cutout always cuts
    again = pixels(plots.plot_augmentations(images=images, steps=steps, seed=3))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    other = pixels(plots.plot_augmentations(images=images, steps=steps, seed=4))
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    assert cutout.random_generator.bit_generator.state == state  # the caller's transform is not consumed


def test_plot_lr_finder_marks_every_rule_and_the_chosen_one():
    lr = np.logspace(-5, 0, 50)
    loss = np.concatenate([np.linspace(2.3, 1.0, 40), np.linspace(1.2, 6.0, 10)])
    suggestions = {"valley": 1e-3, "steep": 3e-3, "minimum": 1e-2}
    fig = plots.plot_lr_finder(lr=lr, loss=loss, suggestions=suggestions, rule="steep", diverged=True)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and "smoothed" in ax.get_ylabel() and "diverged" in ax.get_title()
    texts = _texts(fig)
    assert "steep: 3.00e-03 (chosen)" in texts and "valley: 1.00e-03" in texts
    sizes = [float(c.get_sizes()[0]) for c in ax.collections if len(c.get_sizes())]
    assert len(sizes) == 3 and max(sizes) == sizes[1]  # the chosen rule is drawn largest
    shaded = ax.patches[0].get_x()  # the shading starts at the loss minimum
    assert shaded == pytest.approx(lr[39])
    with pytest.raises(ValueError, match="same length"):
        plots.plot_lr_finder(lr=lr, loss=loss[:-1])


def test_plot_lr_schedule_x_in_epochs_with_peak():
    lrs = list(np.linspace(0.001, 0.05, 50)) + list(np.linspace(0.05, 0.0, 150))
    fig = plots.plot_lr_schedule(lrs=lrs, steps_per_epoch=10, peak_epoch=5)
    (ax,) = fig.axes
    x, _ = ax.lines[0].get_data()
    assert x[-1] == pytest.approx(20.0)
    assert ax.get_xlabel() == "epoch"
    assert "peak 5.00e-02 at epoch 5.00" in _texts(fig) and "peak_epoch = 5" in _texts(fig)


@pytest.mark.parametrize("split", ["test", "validation"])
def test_plot_history_loss_and_percent_accuracy(split):
    history = [
        dict(epoch=e, train_loss=1 / e, train_acc=0.1 * e, test_loss=1.1 / e, test_acc=0.09 * e) for e in (1, 2, 3)
    ]
    fig = plots.plot_history(history=history, test_split=split)
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in acc_ax.lines] == ["train", split]
    assert acc_ax.lines[1].get_ydata()[-1] == pytest.approx(27.0)
    assert f"final {split} 27.00% after epoch 3" in acc_ax.get_title()
    assert "%" in acc_ax.get_ylabel()
    with pytest.raises(ValueError, match="missing"):
        plots.plot_history(history=[dict(epoch=1)])


@pytest.mark.parametrize("classes", [CIFAR, TINY])
def test_plot_misclassified_titles(classes):
    fig = plots.plot_misclassified(
        images=_images(7),
        true=[1] * 7,
        pred=[2] * 7,
        confidence=[0.876] * 7,
        loss=[3.0, 2.5, 2, 1.5, 1, 0.5, 0.2],
        classes=classes,
        ncols=5,
    )
    assert len(fig.axes) == 7
    title = fig.axes[0].get_title()
    assert title.startswith(f"true: {plots._short(classes[1])}\npred: {plots._short(classes[2])} (88%)")
    assert "loss 3.00" in title


def test_plot_confusion_matrix_10_classes_annotated_and_normalized():
    cm = np.eye(10, dtype=int) * 90 + 1
    fig = plots.plot_confusion_matrix(cm=cm, classes=CIFAR)
    ax = fig.axes[0]
    assert len(ax.texts) == 100
    assert ax.texts[0].get_text() == "0.91"  # 91 / 100
    assert [t.get_text() for t in ax.get_yticklabels()] == CIFAR
    assert ax.get_ylabel() == "true class"
    assert plots.plot_confusion_matrix(cm=cm, classes=CIFAR, normalize=False).axes[0].texts[0].get_text() == "91"


def test_plot_confusion_matrix_200_classes_without_clutter():
    cm = np.eye(200, dtype=int) * 10
    cm[5, 5] = 0  # an empty row must not divide by zero
    fig = plots.plot_confusion_matrix(cm=cm, classes=TINY)
    ax = fig.axes[0]
    assert len(ax.texts) == 0
    assert len(ax.get_xticklabels()) == 10 and len(ax.get_yticklabels()) == 10
    assert np.isfinite(ax.collections[0].get_array()).all()
    with pytest.raises(ValueError, match=r"\(200, 200\)"):
        plots.plot_confusion_matrix(cm=np.zeros((10, 10)), classes=TINY)


def test_plot_per_class_accuracy_all_classes_when_few():
    acc = np.linspace(0.5, 0.95, 10)
    fig = plots.plot_per_class_accuracy(accuracy=acc, classes=CIFAR)
    (ax,) = fig.axes
    assert len(ax.patches) == 10
    assert ax.get_yticklabels()[0].get_text() == "truck"  # best first
    assert max(p.get_width() for p in ax.patches) == pytest.approx(95.0)


def test_plot_per_class_accuracy_worst_and_best_for_200():
    acc = np.linspace(0.0, 1.0, 200)
    acc[7] = np.nan  # a class without held-out images is left out
    fig = plots.plot_per_class_accuracy(accuracy=acc, classes=TINY, top=20)
    worst, best = fig.axes
    assert (worst.get_title(), best.get_title()) == ("Worst 20 classes", "Best 20 classes")
    assert len(worst.patches) == len(best.patches) == 20
    assert worst.patches[0].get_width() == pytest.approx(0.0)
    assert best.patches[0].get_width() == pytest.approx(100.0)
    with pytest.raises(ValueError, match="fractions"):
        plots.plot_per_class_accuracy(accuracy=np.full(200, 50.0), classes=TINY)


def test_plot_gradcam_columns_and_row_titles():
    images = _images(3)
    cams = {"layer3 / predicted": np.random.rand(3, 16, 16), "layer3 / true": np.zeros((3, 16, 16))}
    fig = plots.plot_gradcam(images=images, cams=cams, titles=["a", "b", "c"])
    assert len(fig.axes) == 9 + 1  # and the colour bar
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["image", "layer3\nfor the predicted class", "layer3\nfor the true class"]
    assert "Grad-CAM" in fig.axes[-1].get_ylabel()
    assert [fig.axes[r * 3].get_xlabel() for r in range(3)] == ["a", "b", "c"]
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), images[0])
    with pytest.raises(ValueError, match="expected"):
        plots.plot_gradcam(images=images, cams={"x": np.zeros((3, 8, 8))})


def test_save_figure_writes_png(tmp_path):
    fig = plots.plot_lr_schedule(lrs=[0.1, 0.2, 0.1], steps_per_epoch=1)
    path = plots.save_figure(fig=fig, path=tmp_path / "new" / "dir" / "lr.png")
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=".png"):
        plots.save_figure(fig=fig, path=tmp_path / "lr.jpg")


def test_plot_functions_leave_no_global_state():
    before = dict(matplotlib.rcParams)
    plots.plot_class_counts(counts={"train": [1] * 10}, classes=CIFAR)
    plots.plot_confusion_matrix(cm=np.eye(10), classes=CIFAR)
    assert dict(matplotlib.rcParams) == before


def test_plot_predictions_shows_each_image_its_cam_and_its_top_classes():
    rng = np.random.default_rng(0)
    preds = [{"path": f"/photos/p{i}.jpg", "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
              "top": [{"class": c, "prob": p} for c, p in (("cat", 0.7), ("dog", 0.2), ("frog", 0.05))]}
             for i in range(2)]  # fmt: skip
    fig = plots.plot_predictions(predictions=preds, cams=np.zeros((2, 32, 32)))
    assert len(fig.axes) == 6 and "p1.jpg" in _texts(fig) and "Grad-CAM: cat" in _texts(fig)
    bars = fig.axes[2]
    assert [round(p.get_width()) for p in bars.patches] == [70, 20, 5]
    assert len(plots.plot_predictions(predictions=preds).axes) == 4  # without Grad-CAM
    with pytest.raises(ValueError, match="one heatmap per image"):
        plots.plot_predictions(predictions=preds, cams=np.zeros((1, 32, 32)))


def test_a_model_without_mistakes_gets_a_sentence_where_the_figures_would_be():
    from eva_helpers.analysis import explain
    from eva_helpers.models import build_model

    none = np.zeros((0, 32, 32, 3), np.uint8)
    fig = plots.plot_misclassified(images=none, true=[], pred=[], confidence=[], loss=[], classes=["a", "b"],
                             title="test split: 0 of 100 misclassified, accuracy 100.00%")  # fmt: skip
    said = " ".join(t.get_text() for t in fig.texts)
    assert "No misclassified images" in said and "0 of 100 misclassified" in said and not fig.axes
    cams = explain(model=build_model(name="custom_resnet", num_classes=2, seed=0), meta={"mean": [0.5] * 3,
                   "std": [0.25] * 3}, images=none, targets={"predicted": [], "true": []})  # fmt: skip
    assert all(h.shape == (0, 32, 32) for h in cams.values()) and len(cams) == 6
    fig = plots.plot_gradcam(images=none, cams=cams, titles=[])
    assert "No images to explain" in " ".join(t.get_text() for t in fig.texts) and not fig.axes
