"""The notebooks' shape: a tagged parameters cell of commented literals, checked names, thin cells."""

import ast
from pathlib import Path

import nbformat
import papermill
import pytest

from eva_helpers.params import SPEC, TRAIN_PARAMS, check_params

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


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
    for name, value in values.items():
        assert value == SPEC[name].default, f"{path.name}: {name} default differs from eva_helpers.params"
    check_params(namespace=values)  # the defaults pass the checks the notebook runs


def test_notebook_04_takes_exactly_the_trainers_parameters():
    assert set(papermill.inspect_notebook(str(NOTEBOOKS[3]))) == set(TRAIN_PARAMS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_short_and_checks_are_tags_a_reader_does_not_see(path):
    nb = nbformat.read(path, 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    checked = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(checked) >= 2
    for c in code[1:]:
        if "injected-parameters" in c.metadata.get("tags", []):
            continue  # papermill's record of the stored run's parameters
        assert len(c.source.splitlines()) <= 12, f"{path.name}: logic belongs in eva_helpers:\n{c.source}"
        assert "NBVAL" not in c.source, f"{path.name}: a test marker in the text; tag the cell instead"
    assert any("check_params(namespace=globals()" in c.source for c in code[:4])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_stored_notebook_shows_a_real_run_and_says_which(path):
    nb = nbformat.read(path, 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    injected = [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, f"{path.name}: store a papermill run (its parameters cell shows what ran)"
    assert not any(p in injected[0].source for p in ("/work/", "/home/", "/tmp/", "/Users/")), "a machine path"
    assert "smoke" not in injected[0].source and "make_cifar10_batches" not in injected[0].source
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
