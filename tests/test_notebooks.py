"""The notebooks' shape: a tagged parameters cell of commented literals, checked names, thin cells."""

import ast
import dataclasses
import importlib.util
from pathlib import Path

import nbformat
import papermill
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from eva_helpers.recipe import SPEC, TRAIN_PARAMS, check_params

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def notebook_params():
    spec = importlib.util.spec_from_file_location("notebook_params", ROOT / "tools" / "notebook_params.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameters_cells_and_the_readme_table_are_written_from_the_recipe():
    tool = notebook_params()
    assert tool.stale() == [], "run python tools/notebook_params.py"
    assert [p.name for p in NOTEBOOKS] == list(tool.NOTEBOOK_PARAMS)


def test_a_changed_default_makes_the_cells_stale(tmp_path, monkeypatch):
    """The check can fail: a default changed in recipe.py but not in a notebook's cell is caught."""
    tool = notebook_params()
    (tmp_path / "notebooks").mkdir()
    for path in NOTEBOOKS:
        (tmp_path / "notebooks" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text())
    assert tool.stale(tmp_path) == []
    moved = dataclasses.replace(tool.SPEC["epochs"], default=30)
    monkeypatch.setitem(tool.SPEC, "epochs", moved)
    assert tool.stale(tmp_path) == ["04_train_ocp.ipynb", "README.md"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_holds_commented_literal_parameters(path):
    nb = nbformat.read(path, 4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.metadata.get("tags") == ["parameters"]
    values = {}
    for line in first.source.splitlines():
        assert "#" in line, f"{path.name}: parameter line without a comment: {line!r}"
        node = ast.parse(line).body[0]
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant), line
        values[node.targets[0].id] = node.value.value
    inspected = papermill.inspect_notebook(str(path))
    assert list(inspected) == list(values), "papermill must read every parameter (no '=' in comments)"
    assert set(values) <= set(SPEC)
    check_params(values)  # they pass the checks the notebook runs (that they are the recipe's: the test above)


def test_notebook_04_takes_exactly_the_trainers_parameters():
    assert set(papermill.inspect_notebook(str(NOTEBOOKS[3]))) == set(TRAIN_PARAMS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_short_and_checks_are_tags_a_reader_does_not_see(path):
    nb = nbformat.read(path, 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    checked = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])]
    assert any("load_data(recipe)" in c.source or "load_model_data(" in c.source for c in checked), (
        f"{path.name}: CI must check what the data cell shows (tag it nbval-check-output)"
    )
    for c in code[1:]:
        assert len(c.source.splitlines()) <= 12, f"{path.name}: logic belongs in eva_helpers:\n{c.source}"
        assert "NBVAL" not in c.source, f"{path.name}: a test marker in the text; tag the cell instead"
    assert any("eva.check_params(globals())" in c.source for c in code[:4])


def assigned_names(source: str) -> set[str]:
    """The names a cell's code binds anywhere in it (IPython's own transformer turns magics into calls first)."""
    code = TransformerManager().transform_cell(source)
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):  # =, +=, for, with, :=, unpacking
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.alias)):
            found.add(getattr(node, "asname", None) or getattr(node, "name", "").split(".")[0])
    return found


def test_assigned_names_sees_every_way_to_bind_a_name():
    assert assigned_names("epochs = 5") == {"epochs"}
    bound = assigned_names("a, (epochs, b) = f()\nfor seed in x: pass\nwith f() as tta: pass")
    assert bound >= {"epochs", "seed", "tta"}
    assert assigned_names("%matplotlib inline\nimport x as data_dir\nif (max_lr := 1): pass") >= {"data_dir", "max_lr"}
    assert assigned_names("print(epochs)") == set()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_the_parameters_cell_sets_a_parameter(path):
    """A stored run's values must not execute: opened and run, a notebook uses the defaults of its parameters cell."""
    nb = nbformat.read(path, 4)
    names = set(papermill.inspect_notebook(str(path))) | set(SPEC)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        assert "injected-parameters" not in tags, f"{path.name}: papermill's injected cell would override the defaults"
        if cell.cell_type == "code" and "parameters" not in tags:
            clash = assigned_names(cell.source) & names
            assert not clash, f"{path.name}: cell {cell.get('id')} sets parameters {sorted(clash)}:\n{cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_stored_notebook_shows_a_real_run_and_says_which(path):
    nb = nbformat.read(path, 4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    note = nb.cells[at + 1]
    assert note.cell_type == "markdown" and note.metadata.get("tags") == ["stored-run-parameters"], (
        f"{path.name}: store a papermill run with tools/store_outputs.py (a note under the parameters shows what ran)"
    )
    shown = note.source.split("```python\n", 1)[1].split("```", 1)[0]
    values = {n.targets[0].id: n.value for n in ast.parse(shown).body}
    assert values and set(values) <= set(papermill.inspect_notebook(str(path))), f"{path.name}: {shown}"
    assert not any(p in shown for p in ("/work/", "/home/", "/tmp/", "/Users/")), "a machine path"
    assert "smoke" not in shown and "make_cifar10_batches" not in shown
    code = [c for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in code if "parameters" not in c.metadata.get("tags", [])]
    assert all(c.execution_count for c in ran), f"{path.name}: every cell after the parameters ran"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), f"{path.name}: no figure"
    assert path.stat().st_size < 1.5e6, f"{path.name} is {path.stat().st_size / 1e6:.2f} MB"
    intro = nb.cells[0].source
    assert "Stored outputs" in intro and "CI smoke" not in intro, f"{path.name}: say which run the outputs are"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_use_the_package_one_way(path):
    code = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    assert "import eva_helpers as eva" in code
    assert "from eva_helpers" not in code and code.count("import eva_helpers") == 1
