"""The README stays true: its commands, its parameter table and its pictures."""

import re
from pathlib import Path

from eva_helpers.recipe import SPEC

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_parameter_is_documented():
    missing = [name for name in SPEC if f"| `{name}` |" not in README]
    assert not missing, f"add these to the README's parameter table: {missing}"


def test_the_two_commands():
    assert "\nbash .ci/run\n" in README
    assert ".venv/bin/python -m eva_helpers.run notebooks/04_train_ocp.ipynb outputs/04_train_ocp.ipynb" in README
    assert (ROOT / ".ci" / "run").is_file() and (ROOT / "notebooks" / "04_train_ocp.ipynb").is_file()


def test_every_picture_exists_and_every_picture_is_shown():
    shown = set(re.findall(r"\]\((Images/[^)]+)\)", README))
    assert shown, "the README shows no pictures"
    for path in shown:
        assert (ROOT / path).is_file(), path
    assert {f"Images/{p.name}" for p in (ROOT / "Images").glob("*.png")} == shown
