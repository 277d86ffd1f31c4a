"""Prepare copies of the notebooks for CI with small parameters, or refresh the values they are checked against.

python tests/smoke_notebooks.py prepare build/smoke   # generated data, copies with smoke parameters, the checks
pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg build/smoke
                                                       # executes the copies; nbval checks the cells tagged
                                                       # nbval-check-output, then test_products.py what they wrote
python tests/smoke_notebooks.py refresh               # after changing a notebook: re-run, store the expected values

The notebooks in notebooks/ keep the outputs of a real run, for reading. This never rewrites them: the copies
get the expected outputs of their checked cells from tests/notebook_outputs/<notebook>.json, and the expected
products (stats.json, metrics.json, ...) come from tests/notebook_outputs/products.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fakes import make_cifar10_batches, make_own_images  # noqa: E402
from smoke_products import describe  # noqa: E402

CHECK_TAG = "nbval-check-output"  # nbval reads its markers from cell tags, so a reader never sees them
EXPECTED = ROOT / "tests" / "notebook_outputs"
PRODUCTS = ("stats.json", "lr_finder.json", "metrics.json", "misclassified.json", "predictions.json")


def notebooks() -> list[Path]:
    """The numbered notebooks, in order (05 reads what 04 wrote)."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and CHECK_TAG in cell.metadata.get("tags", [])


def smoke_parameters(build: Path) -> dict:
    """The smoke parameters with generated data under `build`."""
    params = yaml.safe_load((ROOT / "tests" / "smoke.yaml").read_text())
    data_dir = make_cifar10_batches(build / "data", n_train_per_class=8, n_test_per_class=3, seed=0)
    images = make_own_images(build / "my_images")  # notebook 05 predicts these
    return {**params, "data_dir": str(data_dir), "out_dir": str(build / "outputs"), "images": str(images)}


def _copy_with_smoke_parameters(nb: Path, target: Path, params: dict, build: Path, *, execute: bool) -> None:
    names = set(papermill.inspect_notebook(str(nb)))
    papermill.execute_notebook(
        str(nb),
        str(target),
        parameters={k: v for k, v in params.items() if k in names},
        prepare_only=not execute,
        cwd=str(build),
        progress_bar=False,
        kernel_name="python3",
    )


def prepare(build: Path) -> list[Path]:
    """Copies of the notebooks in `build`: smoke parameters, the expected outputs of checked cells, no others."""
    build.mkdir(parents=True, exist_ok=True)
    params = smoke_parameters(build)
    out = []
    for nb in notebooks():
        target = build / nb.name
        _copy_with_smoke_parameters(nb, target, params, build, execute=False)
        expected_file = EXPECTED / f"{nb.stem}.json"
        expected = json.loads(expected_file.read_text()) if expected_file.exists() else {}
        copy = nbformat.read(target, 4)
        for cell in copy.cells:
            if cell.cell_type != "code":
                continue
            want = expected.get(cell.get("id")) if is_checked(cell) else None
            if is_checked(cell) and want is None:
                raise SystemExit(f"{nb.name}: no expected output for checked cell {cell.get('id')}; run refresh")
            cell.outputs = [nbformat.from_dict(o) for o in want["outputs"]] if want else []
            cell.execution_count = want["execution_count"] if want else None
        nbformat.write(copy, target)
        out.append(target)
    shutil.copy(ROOT / "tests" / "smoke_products.py", build / "test_products.py")
    shutil.copy(EXPECTED / "products.json", build / "expected_products.json")
    return out


def refresh() -> None:
    """Execute the smoke run and store what CI checks: checked cells' outputs and the products' values or shapes."""
    EXPECTED.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp)
        params = smoke_parameters(build)
        for nb in notebooks():
            done = build / nb.name
            _copy_with_smoke_parameters(nb, done, params, build, execute=True)
            cells = [c for c in nbformat.read(done, 4).cells if is_checked(c)]
            expected = {c.id: {"execution_count": c.execution_count, "outputs": c.outputs} for c in cells}
            path = EXPECTED / f"{nb.stem}.json"
            path.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
            print("refreshed", path.relative_to(ROOT), f"({len(cells)} checked cells)")
        products = {name: describe(build / "outputs" / name) for name in PRODUCTS}
        path = EXPECTED / "products.json"
        path.write_text(json.dumps(products, indent=1, sort_keys=True) + "\n")
        print("refreshed", path.relative_to(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare").add_argument("build", type=Path)
    sub.add_parser("refresh")
    args = parser.parse_args()
    if args.command == "prepare":
        for path in prepare(args.build.resolve()):
            print("prepared", path)
    else:
        refresh()


if __name__ == "__main__":
    main()
