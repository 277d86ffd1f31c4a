"""Store a real run's outputs in the notebooks a reader opens on GitHub.

    python tools/store_outputs.py RUN_DIR/04_train_ocp.ipynb [...]

Each RUN is a notebook of notebooks/ executed by papermill on real data (the commands are in
docs/stored_outputs.md). Its code must still be the committed notebook's: a code cell changed since the run
makes the outputs stale, and this refuses them. The stored notebook keeps the committed text and tags, and
takes the run's outputs. The parameters that ran are shown under the defaults as a markdown note, never as
code: papermill's injected-parameters cell would override the defaults for everyone who opens the notebook
and runs it (Colab's "Run all", nbconvert, or papermill with no -p). Progress-bar widgets (which GitHub
cannot draw) and papermill's bookkeeping are dropped; nothing else is changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"
INJECTED = "injected-parameters"  # papermill's tag for the code cell it writes
NOTE = "stored-run-parameters"  # our tag for the markdown note that shows them instead
NOTE_ID = "stored-run-parameters"  # a fixed cell id: storing the same run twice writes the same file


def _readable(outputs: list) -> list:
    """The outputs without progress-bar widgets: their text fallback is the bar's first frame ("0%"), not its end."""
    return [out for out in outputs if WIDGET not in out.get("data", {})]


def parameters_note(injected_source: str) -> nbformat.NotebookNode:
    """A markdown cell showing the parameters papermill injected (its `# Parameters` header left out)."""
    lines = [line for line in injected_source.strip().splitlines() if line.strip() != "# Parameters"]
    text = (
        "**The stored run's parameters.** The outputs below come from a run with these values in place of the "
        "defaults above (papermill `-p`). Run the notebook yourself and the defaults apply.\n\n"
        "```python\n" + "\n".join(lines) + "\n```"
    )
    cell = nbformat.v4.new_markdown_cell(source=text, metadata={"tags": [NOTE]})
    cell.id = NOTE_ID
    return cell


def store(run: Path, notebooks: Path = ROOT / "notebooks") -> Path:
    """Merge the executed `run` into notebooks/<its name>; raise SystemExit if its code is not the committed code."""
    target = notebooks / run.name
    if not target.is_file():
        raise SystemExit(f"{run}: no {notebooks.name}/{run.name} to store it in")
    committed, done = nbformat.read(target, 4), nbformat.read(run, 4)
    ran = {c.get("id"): c for c in done.cells}
    injected = [c for c in done.cells if INJECTED in c.metadata.get("tags", [])]
    if len(injected) != 1:
        raise SystemExit(f"{run}: not a papermill run with parameters (no injected-parameters cell)")
    cells = []
    for cell in committed.cells:
        tags = cell.metadata.get("tags", [])
        if INJECTED in tags or NOTE in tags:
            continue  # an earlier run's: this run's note takes its place
        if cell.cell_type == "code":
            twin = ran.get(cell.get("id"))
            is_parameters = "parameters" in tags
            if not is_parameters and (twin is None or twin.source != cell.source):
                raise SystemExit(f"{run}: code cell {cell.get('id')} changed since the run; run the notebook again")
            cell.outputs = [] if is_parameters else _readable(twin.outputs)
            cell.execution_count = None if is_parameters else twin.execution_count
            for key in ("papermill", "execution"):
                cell.metadata.pop(key, None)
        cells.append(cell)
        if "parameters" in tags:  # the run's parameters go right under the defaults they replaced
            cells.append(parameters_note(injected[0].source))
    committed.cells = cells
    for key in ("papermill", "widgets"):
        committed.metadata.pop(key, None)
    nbformat.validate(committed)
    nbformat.write(committed, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="notebooks executed by papermill")
    for run in parser.parse_args().runs:
        path = store(run)
        print(f"stored {run} in {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
