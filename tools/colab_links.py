"""Write the repository URL from pyproject.toml into every notebook's Colab install cell and "Open in Colab" badge,
and into the README's badges; with --check, only say whether they agree (CI does this through a test).

    python tools/colab_links.py            # after changing [project.urls] Repository for a fork
    python tools/colab_links.py --check    # exit 1 if anything is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import tomllib

ROOT = Path(__file__).resolve().parents[1]
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
INSTALL_MARK = "# On Colab: install this project first"


def repository() -> str:
    """The repository URL, from its one home: pyproject.toml's [project.urls] Repository."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    url = urls["Repository"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"[project.urls] Repository = {url!r} must be https://github.com/OWNER/NAME for Colab links.")
    return url


def badge(url: str, notebook: str) -> str:
    """The Markdown badge that opens notebooks/<notebook> from the repository's main branch in Colab."""
    path = url.removeprefix("https://github.com/")
    return f"{BADGE}(https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook})"


def install_cell(url: str) -> str:
    """The install cell: on Colab, the package and its core dependencies only (Colab's torch, ipykernel and
    pandas already satisfy them, so pip leaves them alone); anywhere else, nothing."""
    return (f"{INSTALL_MARK} (nothing happens anywhere else).\n"
            "import sys\n\n"
            'if "google.colab" in sys.modules:\n'
            f'    %pip install -q "eva-helpers @ git+{url}"')  # fmt: skip


def updated(check: bool) -> list[str]:
    """Bring every notebook and the README up to date (or, with check, only list what is stale)."""
    url, stale = repository(), []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, 4)
        title = nb.cells[0]
        lines = [line for line in title.source.splitlines() if not line.startswith(BADGE)]
        want_title = "\n".join([lines[0], "", badge(url, path.name), *lines[1:]]).replace("\n\n\n", "\n\n")
        cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(INSTALL_MARK))
        if title.source != want_title or cell.source != install_cell(url):
            stale.append(str(path.relative_to(ROOT)))
            title.source, cell.source = want_title, install_cell(url)
            if not check:
                nbformat.write(nb, path)
    readme = ROOT / "README.md"
    text = readme.read_text()
    want = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*?/notebooks/([\w.]+)\)",
                  lambda m: badge(url, m.group(1)), text)  # fmt: skip
    if want != text:
        stale.append("README.md")
        if not check:
            readme.write_text(want)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Update the links, or with --check report the stale files and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = updated(check=args.check)
    for name in stale:
        print(("out of date: " if args.check else "updated: ") + name)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
