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


def _typing_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`), its else branch excluded."""
    out = set()
    for block in ast.walk(tree):
        test = getattr(block, "test", None)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in (getattr(test, "id", None), getattr(test, "attr", None)):
            out |= {id(n) for stmt in block.body for n in ast.walk(stmt)}
    return out


def import_graph() -> dict[str, dict[str, list[str]]]:
    """{module: {module it imports: ["file.py:line", ...]}} inside eva_helpers, function-level imports included.

    `from .data import folders` names the submodule eva_helpers.data.folders, `from .data import load_data` the
    package eva_helpers.data (its __init__); imports under `if TYPE_CHECKING:` do not run and do not count, nor do
    importlib's string names (eva_helpers/__init__.py's lazy names).
    """
    names = {_module_name(p) for p in MODULES}

    def known(dotted: str) -> str | None:  # the longest prefix that is a module of the package
        parts = dotted.split(".")
        return next((m for i in range(len(parts), 0, -1) if (m := ".".join(parts[:i])) in names), None)

    graph = {}
    for path in MODULES:
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        skip = _typing_only(tree)
        deps: dict[str, list[str]] = {}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [known(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    up = package.split(".")
                    base = ".".join(up[: len(up) - (node.level - 1)])
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                targets = [known(f"{source}.{a.name}") if f"{source}.{a.name}" in names else known(source)
                           for a in node.names]  # fmt: skip
            for target in filter(None, targets):
                deps.setdefault(target, []).append(f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno}")
        graph[name] = deps
    return graph


def import_cycles(graph: dict[str, dict[str, list[str]]]) -> list[str]:
    """One readable cycle per strongly connected component of more than one module (or a module importing itself)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:  # v is the root of a component: it is what the stack holds from v up
            component = set(stack[stack.index(v) :])
            del stack[stack.index(v) :]
            on_stack.difference_update(component)
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for component in components:
        start = min(component)
        if len(component) == 1 and start not in graph[start]:
            continue
        paths, queue = {start: [start]}, [start]  # the shortest way from start back to itself inside the component
        while queue and start not in graph[queue[0]]:
            v = queue.pop(0)
            for w in sorted(set(graph[v]) & component):
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
        trail = [*paths[queue[0]], start]
        sites = ", ".join(graph[a][b][0] for a, b in zip(trail, trail[1:]))
        cycles.append(f"{' -> '.join(trail)} (imported at {sites}; all of {sorted(component)})")
    return cycles


def test_import_cycles_are_found_and_reported():
    graph = {"a": {"b": ["a.py:1"]}, "b": {"c": ["b.py:2"]}, "c": {"a": ["c.py:3"], "d": ["c.py:4"]}, "d": {},
             "e": {"e": ["e.py:5"]}}  # fmt: skip
    assert import_cycles(graph) == [
        "a -> b -> c -> a (imported at a.py:1, b.py:2, c.py:3; all of ['a', 'b', 'c'])",
        "e -> e (imported at e.py:5; all of ['e'])",
    ]
    assert import_cycles({"a": {"b": ["a.py:1"]}, "b": {}}) == []


def test_the_import_graph_resolves_submodules_packages_and_skips_type_checking():
    graph = import_graph()
    assert "eva_helpers.data.cifar10" in graph["eva_helpers.data"]  # from . import cifar10, ...
    assert "eva_helpers.data.folders" in graph["eva_helpers.data"]  # from .folders import imagefolder_index
    assert "eva_helpers.validate" in graph["eva_helpers.data.folders"]  # from ..validate import ...
    assert "eva_helpers.data" in graph["eva_helpers.augment"]  # from .data import augment_defaults
    assert graph["eva_helpers"] == {}  # its imports are for type checkers, or importlib's strings


def test_no_module_imports_back_into_one_that_imports_it():
    """No import cycles inside eva_helpers at run time, imports inside functions included."""
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
