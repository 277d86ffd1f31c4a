"""Write each notebook's parameters cell and the README's parameter table from the recipe (eva_helpers/recipe.py),
where every default, help text and limit is written once.

    python tools/notebook_params.py          # rewrite them (after changing a default in eva_helpers/recipe.py)
    python tools/notebook_params.py --check  # exit 1 if one differs from the recipe (tests/test_notebooks.py)

A parameters cell is what papermill overrides and what a student edits, so it must hold plain assignments;
this keeps them equal to the recipe. Which parameters each notebook takes is listed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eva_helpers.data import REGISTRY  # noqa: E402
from eva_helpers.recipe import SPEC, TRAIN_PARAMS  # noqa: E402

_DATA = ("dataset", "data_dir", "download", "cache_dir", "skip_bad_images", "train_limit", "test_limit", "split_seed")
_AUGMENT = ("pad", "flip", "cutout", "rotate", "rgb_shift")
_RANGE_TEST = ("finder_start_lr", "finder_end_lr", "finder_iters", "lr_rule")

# notebook -> the parameters its cell offers, in the recipe's order
NOTEBOOK_PARAMS: dict[str, tuple[str, ...]] = {
    "01_dataset_stats.ipynb": (*_DATA, "seed", "n_samples", "out_dir", "progress"),
    "02_augmentation_preview.ipynb": (*_DATA, *_AUGMENT, "seed", "n_preview", "out_dir", "progress"),
    "03_lr_range_test.ipynb": (
        *_DATA,
        *_AUGMENT,
        "model",
        "logit_scale",
        "batch_size",
        "momentum",
        "nesterov",
        "weight_decay",
        "label_smoothing",
        *_RANGE_TEST,
        "seed",
        "device",
        "loader",
        "precision",
        "channels_last",
        "num_workers",
        "out_dir",
        "progress",
    ),
    "04_train_ocp.ipynb": TRAIN_PARAMS,
    "05_misclassified_gradcam.ipynb": (
        "out_dir",
        "data_dir",
        "checkpoint",
        "test_limit",
        "batch_size",
        "n_misclassified",
        "n_gradcam",
        "images",
        "device",
        "progress",
    ),
}
# In notebook 05 a few parameters mean what they mean for a trained model.
_IN_05 = {
    "out_dir": "the out_dir notebook 04 wrote to; figures and misclassified.json go here too",
    "data_dir": "the data folder; None: the one notebook 04 used (stored in model.pt)",
    "test_limit": "0: the whole held-out split; n: a seeded, class-balanced subset",
    "batch_size": "images per evaluation batch",
    "device": "'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'",
}


def _dataset_defaults(name: str) -> str:
    """'None: cifar10 4, imagefolder 4, tinyimagenet 8': an augmentation knob's default on each dataset."""
    return "None: " + ", ".join(f"{dataset} {module.AUGMENT[name]}" for dataset, module in REGISTRY.items())


def help_of(name: str, notebook: str) -> str:
    """The comment a parameter gets in `notebook`'s cell."""
    if notebook.startswith("05") and name in _IN_05:
        return _IN_05[name]
    p = SPEC[name]
    return f"{p.help} ({_dataset_defaults(name)})" if p.group == "augment" and p.default is None else p.help


def cell_source(notebook: str) -> str:
    """The parameters cell of `notebook`: `name = default  # help`, one line each."""
    lines = []
    for name in NOTEBOOK_PARAMS[notebook]:
        default = SPEC[name].default
        value = json.dumps(default) if isinstance(default, str) else repr(default)  # the quotes ruff format keeps
        lines.append(f"{name} = {value}".ljust(28) + f"  # {help_of(name, notebook)}")
        if len(lines[-1]) > 120:
            raise ValueError(f"{notebook}: {name}'s line is {len(lines[-1])} characters; shorten its help in recipe.py")
    return "\n".join(lines)


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook's one code cell tagged `parameters`."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


README_START, README_END = "<!-- parameters: written by tools/notebook_params.py -->", "<!-- parameters: end -->"


def readme_table() -> str:
    """The README's table: every parameter, its default, what it does, and which notebooks take it."""
    rows = ["| parameter | default | what it does | 01 | 02 | 03 | 04 | 05 |", "|---|---|---|:-:|:-:|:-:|:-:|:-:|"]
    for name, p in SPEC.items():
        marks = " | ".join("✓" if name in names else " " for names in NOTEBOOK_PARAMS.values())
        what = help_of(name, "").replace("<", "&lt;").replace(">", "&gt;")  # markdown would read <class> as a tag
        rows.append(f"| `{name}` | `{p.default!r}` | {what} | {marks} |")
    return "\n".join(rows)


def _readme_with_table(text: str) -> str:
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    return text[:start] + "\n" + readme_table() + "\n" + text[end:]


def stale(root: Path = ROOT) -> list[str]:
    """The notebooks (and README.md) whose parameters differ from the recipe."""

    def cell(name: str) -> str:
        return parameters_cell(nbformat.read(root / "notebooks" / name, as_version=4)).source

    differ = [name for name in NOTEBOOK_PARAMS if cell(name) != cell_source(name)]
    readme = (root / "README.md").read_text()
    return differ + (["README.md"] if _readme_with_table(readme) != readme else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report the notebooks whose cell differs")
    args = parser.parse_args(argv)
    differ = stale()
    if args.check:
        for name in differ:
            print(f"{name}: its parameters differ from eva_helpers/recipe.py; run python tools/notebook_params.py")
        return 1 if differ else 0
    for name in differ:
        if name == "README.md":
            (ROOT / name).write_text(_readme_with_table((ROOT / name).read_text()))
            print("rewrote the README's parameter table")
            continue
        path = ROOT / "notebooks" / name
        nb = nbformat.read(path, as_version=4)
        parameters_cell(nb).source = cell_source(name)
        nbformat.write(nb, path)
        print(f"rewrote the parameters cell of {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
