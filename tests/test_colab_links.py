"""The repository URL has one home (pyproject.toml); the notebooks' install cells and badges and the README agree."""

from pathlib import Path

import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def links():
    return load_script(ROOT / "tools" / "colab_links.py")


def test_every_badge_and_install_cell_carries_the_url_in_pyproject(links):
    assert links.updated(check=True) == [], "run: python tools/colab_links.py"
    url = links.repository()
    for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        text = path.read_text()
        assert f"git+{url}" in text  # the install cell
        assert (
            f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/notebooks/{path.name}"
            in text
        )


def test_a_fork_that_changes_the_url_is_told_which_files_to_update(links, monkeypatch):
    monkeypatch.setattr(links, "repository", lambda: "https://github.com/someone/their-fork")
    stale = links.updated(check=True)
    assert "README.md" in stale and len([s for s in stale if s.startswith("notebooks/")]) == 5
