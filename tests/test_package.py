"""The package's shape: a light import, every re-exported name where it says, modules a reader can take in at once."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import eva_helpers

PACKAGE = Path(eva_helpers.__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
MAX_LINES = 340


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_importing_the_package_imports_nothing_else():
    code = (
        "import sys; import eva_helpers; assert not [m for m in sys.modules if m.startswith(('torch', 'eva_helpers.'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_re_exported_name_comes_from_its_module():
    for name in eva_helpers.__all__:
        module = importlib.import_module(f"eva_helpers.{eva_helpers._MODULE_OF[name]}")
        assert getattr(eva_helpers, name) is getattr(module, name), name
    assert set(eva_helpers.__all__) <= set(dir(eva_helpers))


def test_modules_are_short_and_say_what_they_hold_on_their_first_line():
    for path in MODULES:
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_LINES, f"{path.name}: {len(text.splitlines())} lines"
        doc = ast.get_docstring(ast.parse(text))
        assert doc and text.lstrip("r").startswith('"""') and len(doc.splitlines()[0]) > 20, path.name


def test_no_module_imports_back_into_one_that_imports_it():
    """No import cycles at run time (imports for type checkers only do not count)."""
    graph = {}
    for path in MODULES:
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level and id(node) not in typing_only:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                deps.add(target if target in {_module_name(p) for p in MODULES} else base)
        graph[name] = deps - {name}

    def visit(name, trail):
        assert name not in trail, " -> ".join([*trail, name])
        for dep in graph.get(name, ()):
            if not (dep == "eva_helpers" and name.startswith("eva_helpers.")):  # `from . import __version__` only
                visit(dep, [*trail, name])

    for name in graph:
        visit(name, [])
