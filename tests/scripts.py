"""Import the project's scripts (benchmarks/*.py, tools/*.py), which are not in a package, as modules for tests."""

import importlib.util
from pathlib import Path


def load_script(path: Path):
    """The script at path, imported as a module named after its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
