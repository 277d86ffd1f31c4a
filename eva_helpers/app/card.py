"""What was trained, in Markdown for the app's model tab and the Space's README: data, recipe, accuracy and source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .service import AppModel

WORST = 10  # most-confused pairs listed, and the worst classes when there are many (5 of 20 or fewer)


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "unknown"


def _augment(aug: dict[str, Any] | None) -> str:
    """'pad 4 + random crop, horizontal flip, 8x8 cutout' from the recipe's augment dict."""
    if not aug:
        return "unknown"
    parts = [f"pad {aug['pad']} + random crop" if aug.get("pad") else "",
             "horizontal flip" if aug.get("flip") else "",
             f"{aug['cutout']}x{aug['cutout']} cutout" if aug.get("cutout") else "",
             f"rotate ±{aug['rotate']}°" if aug.get("rotate") else "",
             f"RGB shift ±{aug['rgb_shift']}" if aug.get("rgb_shift") else ""]  # fmt: skip
    return ", ".join(p for p in parts if p) or "none"


def data_lines(app: AppModel) -> list[str]:
    """The data and the split, from metrics.json (else model.pt's metadata)."""
    meta, m = app.meta, app.metrics or {}
    data = m.get("data") or meta.get("data") or {}
    split = meta.get("test_split", "test")
    limits = [f"{k.replace('_', ' ')} {data[k]:,}" for k in ("train_limit", "test_limit") if data.get(k)]
    names = ", ".join(app.classes[:10]) + (f" ... ({len(app.classes)} in all)" if len(app.classes) > 10 else "")
    counts = (f"{m['n_train']:,} training images, {m['n_test']:,} {split} images" if "n_train" in m
              else f"the {split} split held out")  # fmt: skip
    split_how = (" (train and val merged, then split 70/30 per class)" if data.get("dataset") == "tinyimagenet"
                 else "")  # fmt: skip
    return [
        f"- **Data**: {data.get('dataset', 'unknown')}, {counts}{split_how}"
        + (f"; limited to {', '.join(limits)}" if limits else "")
        + f". Normalised with the training split's mean {_triplet(meta['mean'])} and std {_triplet(meta['std'])}.",
        f"- **Classes** ({len(app.classes)}): {names}.",
        f"- **Input**: {meta['image_size']}x{meta['image_size']} RGB; an upload is oriented by its EXIF tag, laid on "
        "white where transparent, centre-cropped to a square and resized, as in evaluation.",
    ]


def _triplet(values) -> str:
    return "(" + ", ".join(f"{float(v):.4f}" for v in values) + ")"


def recipe_lines(app: AppModel) -> list[str]:
    """The network and the training recipe."""
    meta, m = app.meta, app.metrics or {}
    p = m.get("params", {})
    n_params = sum(t.numel() for t in app.model.parameters())
    epochs = p.get("epochs", meta.get("epochs"))
    lines = [f"- **Network**: {meta['model']} ({n_params:,} parameters)."]
    if p:
        max_lr = p.get("max_lr", meta.get("max_lr"))
        lines += [
            f"- **Recipe**: {epochs} epochs of One-Cycle SGD peaking at epoch {p.get('peak_epoch')}, max LR "
            f"{max_lr:.3g} ({m.get('max_lr_source', 'given')}), batch {p.get('batch_size')}, momentum "
            f"{p.get('momentum')}{' (Nesterov)' if p.get('nesterov') else ''}, weight decay {p.get('weight_decay')}, "
            f"label smoothing {p.get('label_smoothing', 0)}, logit scale {p.get('logit_scale', 1.0)}"
            + (f"; the weights are their moving average (decay {p['ema']} per step)." if p.get("ema") else "."),
            f"- **Augmentation**: {_augment(p.get('augment'))}.",
        ]
    else:
        lines.append(f"- **Recipe**: {epochs} epochs (metrics.json was not found: the rest of the recipe is unknown).")
    device = m.get("device_name") or meta.get("device_name") or meta.get("device", "unknown")
    lines.append(f"- **Trained on**: {device} ({m.get('device', meta.get('device'))}), precision "
                 f"{m.get('precision', meta.get('precision'))}, seed {m.get('seed', 'unknown')}.")  # fmt: skip
    return lines


def accuracy_lines(app: AppModel) -> list[str]:
    """The accuracy, each number with where it comes from."""
    meta, m, r = app.meta, app.metrics or {}, app.report
    split = meta.get("test_split", "test")
    versions = m.get("versions", {})
    where = ", ".join(
        s for s in (f"git commit {m.get('git_commit') or meta.get('git_commit') or 'unknown'}",
                    f"torch {versions['torch']}" if "torch" in versions else "",
                    f"eva_helpers {meta.get('eva_helpers', versions.get('eva_helpers', '?'))}") if s
    )  # fmt: skip
    source = "the run's metrics.json" if m else "model.pt's metadata"
    epochs = m.get("epochs_done", meta.get("epochs"))
    unfinished = "" if m.get("finished", True) else ", a run that had not finished"
    lines = [f"- **{_pct(m.get('test_acc', meta.get('test_acc')))}** {split} accuracy after the last epoch "
             f"({epochs}), from {source} ({where}{unfinished})."]  # fmt: skip
    if m.get("best_test_acc") is not None:
        lines.append(f"- {_pct(m['best_test_acc'])} at the best epoch, for reference: the number above is the last "
                     f"epoch's, not one picked on the {split} split.")  # fmt: skip
    if r:
        lines.append(f"- **{_pct(r['accuracy'])}** recomputed from these weights on all {r['n']:,} {r['split']} "
                     f"images when the app started or was exported ({r['count']:,} misclassified).")  # fmt: skip
    return lines


def worst_lines(app: AppModel) -> list[str]:
    """The worst classes and the most-confused pairs, as Markdown tables (the whole matrix is a figure)."""
    r = app.report
    if not r:
        return []
    acc = r["per_class_accuracy"]  # {class: accuracy} in label order (ErrorReport.summary)
    worst = sorted(acc, key=acc.__getitem__)[: WORST if len(acc) > 20 else 5]  # ties: in label order
    lines = ["", f"**The {len(worst)} worst classes** ({r['split']} accuracy)", "", "| class | accuracy |", "|---|---|"]
    lines += [f"| {c} | {acc[c]:.1%} |" for c in worst]
    pairs = r.get("most_confused", [])[:WORST]
    if pairs:
        lines += ["", "**The most-confused pairs**", "", "| true | predicted | images | share of the true class |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {p['true']} | {p['predicted']} | {p['count']} | {p['share_of_true_class']:.1%} |" for p in pairs]
    return lines


DATASET_NAMES = {"cifar10": "CIFAR-10", "tinyimagenet": "Tiny ImageNet"}
MODEL_NAMES = {"custom_resnet": "ResNet-9", "resnet18": "ResNet18"}


def page_title(app: AppModel) -> str:
    """'CIFAR-10 classifier · ResNet-9 · 91.5% test accuracy': the data (an image folder by its name), the network,
    and the accuracy recomputed from the weights (else the run's)."""
    data = app.meta.get("data") or {}
    dataset = DATASET_NAMES.get(data.get("dataset")) or Path(data.get("data_dir") or "image").name
    model = MODEL_NAMES.get(app.meta["model"], app.meta["model"])
    accuracy, split = (app.report["accuracy"], app.report["split"]) if app.report else (
        app.meta.get("test_acc"), app.meta.get("test_split", "test"))  # fmt: skip
    return f"{dataset} classifier · {model}" + (f" · {accuracy:.1%} {split} accuracy" if accuracy is not None else "")


def model_card(app: AppModel) -> str:
    """The whole description in Markdown: what was trained, the recipe, the accuracy with its provenance."""
    parts = ["### What was trained", *data_lines(app), *recipe_lines(app), "", "### Accuracy, and where it comes from",
             *accuracy_lines(app), *worst_lines(app)]  # fmt: skip
    if app.notes:
        parts += ["", *[f"> {note}" for note in app.notes]]
    return "\n".join(parts) + "\n"
