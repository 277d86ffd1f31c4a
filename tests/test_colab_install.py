"""The Colab install cell, resolved by pip's dry run against what Colab already has: it must replace none of it."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "tests" / "colab_constraints.txt"


def install_requirement() -> str:
    """The one requirement every notebook's Colab cell installs (the same in all five)."""
    found = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = [c.source for c in nbformat.read(path, 4).cells if "google.colab" in c.source and "%pip" in c.source]
        assert len(cells) == 1, f"{path.name}: one Colab install cell"
        found |= set(re.findall(r'%pip install -q "([^"]+)"', cells[0]))
    assert len(found) == 1, f"the notebooks install different things: {found}"
    return found.pop()


def pinned() -> dict[str, str]:
    lines = [ln.split("#")[0].strip() for ln in CONSTRAINTS.read_text().splitlines()]
    return dict(ln.split("==") for ln in lines if ln)


def test_the_install_cell_takes_no_extras_so_no_jupyter_or_test_packages():
    requirement = install_requirement()
    assert re.fullmatch(r"eva-helpers @ git\+https://github\.com/[\w.-]+/[\w.-]+", requirement), requirement


@pytest.mark.slow  # asks the package registry; about 40 s
def test_the_install_cell_keeps_colabs_torch_ipykernel_and_pandas(tmp_path):
    # The same package from this checkout instead of GitHub: its metadata is what the git URL would install.
    local = install_requirement().split(" @ ")[0] + f" @ {ROOT.as_uri()}"
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--report", str(report), "-c", str(CONSTRAINTS), local],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, f"pip could not keep Colab's versions:\n{run.stderr[-3000:]}"
    installs = json.loads(report.read_text())["install"]
    chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}
    assert "eva-helpers" in chosen
    for name, version in pinned().items():
        assert chosen.get(name, version) == version, f"pip would replace Colab's {name} {version} by {chosen[name]}"
    for name in ("jupyterlab", "nbval", "pytest", "papermill", "ipykernel"):
        assert name not in chosen, f"the Colab install pulls {name}"
