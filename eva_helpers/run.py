r"""Run a notebook with papermill, refusing misspelt or invalid parameters instead of warning about them.

    python -m eva_helpers.run notebooks/04_train_ocp.ipynb outputs/04_train_ocp.ipynb -p max_lr 0.1 \
        -f configs/cifar10_custom_resnet.yaml

`eva-run` is the same command. It takes papermill's own arguments. Every parameter name given with -p, -r, -f,
-y or -b is checked against the notebook's parameters cell (papermill's own inspection); an unknown one stops
the run with exit status 2, naming it and the nearest known name. Values are checked against eva_helpers'
recipe (types, ranges, choices) the same way. Then papermill executes the notebook.
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

try:
    import click
    import papermill
    from papermill.cli import _resolve_type
    from papermill.cli import papermill as papermill_cli
except ModuleNotFoundError as e:  # papermill comes with the notebooks extra, not with the package alone
    raise ModuleNotFoundError(
        f"python -m eva_helpers.run needs papermill ({e}); install it with: pip install 'eva-helpers[notebooks]' "
        "(or pip install -e '.[notebooks]' in a checkout)."
    ) from e

from .recipe import SPEC, check_param, read_config
from .validate import nearest_name

FILE_OPTIONS = ("-f", "--parameters_file")


def given_parameters(argv: list[str]) -> tuple[str, dict[str, Any], list[str]]:
    """The notebook path, the parameters papermill would inject (parsed with papermill's own options), and the
    names of recipe files (-f) passed over because another notebook takes them: a recipe file serves every notebook.
    """
    ctx = papermill_cli.make_context("eva_helpers.run", list(argv), resilient_parsing=True)
    p = ctx.params
    if not p.get("notebook_path"):
        raise click.UsageError("give the notebook to run and where to write the executed copy: NOTEBOOK OUTPUT")
    known = set(papermill.inspect_notebook(p["notebook_path"]))
    values: dict[str, Any] = {}
    elsewhere: set[str] = set()
    for path in p.get("parameters_file") or ():
        recipe = read_config(path, check_names=False)  # problems() names the unknown ones
        elsewhere |= {k for k in recipe if k not in known and k in SPEC}
        values.update({k: v for k, v in recipe.items() if k in known or k not in SPEC})
    for text in p.get("parameters_yaml") or ():
        values.update(yaml.safe_load(text) or {})
    for text in p.get("parameters_base64") or ():
        values.update(yaml.safe_load(base64.b64decode(text)) or {})
    for name, value in p.get("parameters") or ():
        values[name] = _resolve_type(value)
    for name, value in p.get("parameters_raw") or ():
        values[name] = value
    return p["notebook_path"], values, sorted(elsewhere - set(values))


def problems(*, notebook: str, values: dict[str, Any]) -> list[str]:
    """Every unknown name (with the nearest known one) and every invalid value, as messages."""
    known = papermill.inspect_notebook(notebook)
    found = []
    for name, value in values.items():
        if name not in known:
            near = nearest_name(name, known)
            hint = f"; did you mean {near!r}?" if near else ""
            found.append(
                f"unknown parameter {name!r} for {Path(notebook).name}{hint} Its parameters: {', '.join(known)}."
            )
        elif name in SPEC:
            try:
                check_param(name, value)
            except ValueError as e:
                found.append(str(e))
    return found


def main(argv: list[str] | None = None) -> int:
    """Check the parameters, then hand the same arguments to papermill."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    try:
        notebook, values, _ = given_parameters(argv)
        found = problems(notebook=notebook, values=values)
    except (click.UsageError, FileNotFoundError, ValueError, yaml.YAMLError) as e:  # ValueError: not a mapping
        print(f"eva_helpers.run: {e}", file=sys.stderr)
        return 2
    if found:
        for message in found:
            print(f"eva_helpers.run: {message}", file=sys.stderr)
        print("eva_helpers.run: nothing was run.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="eva-run-") as tmp:
        try:
            papermill_cli.main(args=_for_this_notebook(argv, notebook, Path(tmp)), prog_name="eva-run",
                               standalone_mode=False)  # fmt: skip
        except papermill.PapermillExecutionError as e:
            print(f"eva_helpers.run: the notebook stopped with an error: {e.ename}: {e.evalue}", file=sys.stderr)
            return 1
    return 0


def _for_this_notebook(argv: list[str], notebook: str, tmp: Path) -> list[str]:
    """argv with each -f recipe file replaced by a copy holding only the names this notebook takes."""
    known = set(papermill.inspect_notebook(notebook))
    out, files = [], 0
    args = iter(argv)
    for arg in args:
        if arg in FILE_OPTIONS:
            recipe = read_config(next(args), check_names=False)
            files += 1
            mine = tmp / f"recipe{files}.yaml"
            mine.write_text(yaml.safe_dump({k: v for k, v in recipe.items() if k in known}))
            out += [arg, str(mine)]
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
