"""tools/store_outputs.py: a real run's outputs go into the notebook; its parameters are shown, never executed."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
from nbclient import NotebookClient
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
store_outputs = load_script(ROOT / "tools" / "store_outputs.py")


def committed(folder: Path) -> Path:
    """A two-cell notebook: a tagged parameters cell, and a cell that prints what it got."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("epochs = 24  # training epochs", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('print(f"trained {epochs} epochs")'),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "demo.ipynb")
    return folder / "demo.ipynb"


def executed_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow  # two kernels
def test_a_stored_run_shows_its_parameters_and_runs_with_the_defaults(tmp_path):
    target = committed(tmp_path / "notebooks")
    run = tmp_path / "run" / "demo.ipynb"
    run.parent.mkdir()
    papermill.execute_notebook(str(target), str(run), parameters={"epochs": 5}, progress_bar=False)
    store_outputs.store(run, notebooks=target.parent)
    stored = nbformat.read(target, 4)
    assert [c.cell_type for c in stored.cells] == ["code", "markdown", "code"]
    note = stored.cells[1]
    assert note.metadata["tags"] == ["stored-run-parameters"] and "epochs = 5" in note.source
    assert executed_text(stored) == "trained 5 epochs\n"  # the run's outputs, for a reader
    first = target.read_bytes()
    store_outputs.store(run, notebooks=target.parent)
    assert target.read_bytes() == first  # storing the same run again changes nothing
    NotebookClient(stored, timeout=120).execute()  # "Run all", as a student opens it
    assert executed_text(stored) == "trained 24 epochs\n"


def test_a_run_of_other_code_is_refused(tmp_path):
    target = committed(tmp_path / "notebooks")
    run = nbformat.read(target, 4)
    run.cells.insert(1, nbformat.v4.new_code_cell("epochs = 5", metadata={"tags": ["injected-parameters"]}))
    run.cells[2].source = 'print("something else")'
    (tmp_path / "run").mkdir()
    nbformat.write(run, tmp_path / "run" / "demo.ipynb")
    with pytest.raises(SystemExit, match="changed since the run"):
        store_outputs.store(tmp_path / "run" / "demo.ipynb", notebooks=target.parent)
