"""Prepare the notebooks for CI with small parameters, or refresh the outputs they are checked against.

python tests/smoke_notebooks.py prepare build/smoke   # generated data + papermill --prepare-only
pytest --nbval-lax --nbval-current-env build/smoke     # executes them; checks cells marked NBVAL_CHECK_OUTPUT
python tests/smoke_notebooks.py refresh               # after changing a notebook: re-run and store checked outputs
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fakes import make_cifar10_batches, make_own_images  # noqa: E402

CHECK = "# NBVAL_CHECK_OUTPUT"


def notebooks() -> list[Path]:
    """The numbered notebooks, in order (05 reads what 04 wrote)."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def smoke_parameters(build: Path) -> dict:
    """The smoke parameters with generated data under `build`."""
    params = yaml.safe_load((ROOT / "tests" / "smoke.yaml").read_text())
    data_dir = make_cifar10_batches(build / "data", n_train_per_class=8, n_test_per_class=3, seed=0)
    images = make_own_images(build / "my_images")  # notebook 05 predicts these
    return {**params, "data_dir": str(data_dir), "out_dir": str(build / "outputs"), "images": str(images)}


def prepare(build: Path, *, execute: bool = False) -> list[Path]:
    """Write each notebook with the smoke parameters injected (and executed, if asked) into `build`."""
    build.mkdir(parents=True, exist_ok=True)
    params = smoke_parameters(build)
    out = []
    for nb in notebooks():
        names = set(papermill.inspect_notebook(str(nb)))
        target = build / nb.name
        papermill.execute_notebook(
            str(nb),
            str(target),
            parameters={k: v for k, v in params.items() if k in names},
            prepare_only=not execute,
            cwd=str(build),
            progress_bar=False,
            kernel_name="python3",
        )
        out.append(target)
    return out


def refresh() -> None:
    """Execute the smoke run and copy the outputs of checked cells back into notebooks/, dropping all others."""
    with tempfile.TemporaryDirectory() as tmp:
        executed = prepare(Path(tmp), execute=True)
        for source_path, done_path in zip(notebooks(), executed):
            source, done = nbformat.read(source_path, 4), nbformat.read(done_path, 4)
            ran = {c.source: c for c in done.cells if c.cell_type == "code"}
            for cell in source.cells:
                if cell.cell_type != "code":
                    continue
                checked = cell.source.startswith(CHECK)  # nbval compares only these; it needs their count too
                cell.outputs = ran[cell.source].outputs if checked else []
                cell.execution_count = ran[cell.source].execution_count if checked else None
                cell.metadata.pop("papermill", None)
                cell.metadata.pop("execution", None)
            source.metadata.pop("papermill", None)
            nbformat.write(source, source_path)
            print("refreshed", source_path.relative_to(ROOT))


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
