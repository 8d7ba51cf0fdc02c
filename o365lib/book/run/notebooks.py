"""Chapter sources and their paired notebooks (jupytext percent ``.py`` <-> output-free ``.ipynb``).

The ``.py`` file is the reviewable source; the committed ``.ipynb`` is what users open or pass
to papermill, and it carries no outputs. :func:`sync_pairs` brings each pair in line (jupytext
``--sync``, which keeps cell ids stable, then strips outputs); :func:`check_pairs` lists every
way a pair differs, for CI. :func:`source_to_notebook` makes the notebook the runner executes,
in the build folder, so papermill never writes into a paired source.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
from jupytext.cli import jupytext as jupytext_cli

from o365lib.book.config.profiles import parameters_of_source

#: Chapter sources: ``book/NN_name.py``.
CHAPTER_SOURCE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.py$")
#: The pairing every chapter uses.
PAIR_FORMATS = "ipynb,py:percent"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def chapter_sources(book_dir: str | Path) -> list[Path]:
    """The chapter sources ``NN_*.py`` of ``book_dir``, sorted by file name."""
    book_dir = Path(book_dir)
    if not book_dir.is_dir():
        raise FileNotFoundError(f"book folder {book_dir} does not exist")
    return sorted(p for p in book_dir.iterdir() if CHAPTER_SOURCE.match(p.name))


def _cell_key(cell) -> tuple:
    """What must agree between the two files of a pair: type, source and tags of a cell."""
    tags = tuple(cell.get("metadata", {}).get("tags", []))
    return cell["cell_type"], cell["source"].strip("\n"), tags


def output_problems(notebook, *, name: str) -> list[str]:
    """Cells of ``notebook`` that carry outputs or execution counts."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell["cell_type"] != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"{name}: cell {index} has outputs (clear them: python -m o365lib.book sync)")
        if cell.get("execution_count") is not None:
            problems.append(f"{name}: cell {index} has an execution count")
    return problems


def check_pair(source: str | Path) -> list[str]:
    """Every difference between ``source`` (.py) and its paired .ipynb, as readable messages.

    Empty list: the pair agrees cell by cell (type, source, tags) and the notebook has no outputs.
    """
    source = Path(source)
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.is_file():
        return [f"{source}: paired notebook {ipynb.name} is missing (python -m o365lib.book sync)"]
    from_py = jupytext.read(source)
    committed = nbformat.read(ipynb, as_version=4)
    problems = output_problems(committed, name=str(ipynb))
    left, right = [_cell_key(c) for c in from_py.cells], [_cell_key(c) for c in committed.cells]
    if len(left) != len(right):
        problems.append(f"{source.name} has {len(left)} cells but {ipynb.name} has {len(right)}")
    for index, (a, b) in enumerate(zip(left, right)):
        if a != b:
            what = "type" if a[0] != b[0] else "tags" if a[2] != b[2] else "source"
            problems.append(f"{source.name} and {ipynb.name} differ at cell {index} ({what}): "
                            f"{a[1][:60]!r} vs {b[1][:60]!r}")
            break
    formats = committed.metadata.get("jupytext", {}).get("formats")
    if formats != PAIR_FORMATS:
        problems.append(f"{ipynb.name}: metadata jupytext.formats is {formats!r}, expected {PAIR_FORMATS!r}")
    return problems


def check_pairs(book_dir: str | Path) -> list[str]:
    """:func:`check_pair` over every chapter of ``book_dir``, plus notebooks that lost their .py."""
    book_dir = Path(book_dir)
    problems = []
    sources = chapter_sources(book_dir)
    for source in sources:
        problems += check_pair(source)
    stems = {s.stem for s in sources}
    for ipynb in sorted(book_dir.glob("[0-9][0-9]_*.ipynb")):
        if ipynb.stem not in stems:
            problems.append(f"{ipynb}: notebook without its paired source {ipynb.stem}.py")
    return problems


def strip_outputs(path: str | Path) -> bool:
    """Remove outputs and execution counts from a notebook file in place; True if it changed."""
    notebook = nbformat.read(path, as_version=4)
    changed = False
    for cell in notebook.cells:
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            cell["outputs"], cell["execution_count"] = [], None
            changed = True
    if changed:
        nbformat.write(notebook, path)
    return changed


def sync_pair(source: str | Path) -> Path:
    """Create or update the .ipynb paired with ``source``, then strip its outputs.

    An existing pair goes through ``jupytext --sync`` (the newer file wins, cell ids stay);
    a missing notebook is created from the .py with the pairing metadata.
    """
    source = Path(source)
    ipynb = source.with_suffix(".ipynb")
    if ipynb.is_file():
        jupytext_cli(["--quiet", "--sync", str(source)])
    else:
        jupytext_cli(["--quiet", "--set-formats", PAIR_FORMATS, str(source)])
    strip_outputs(ipynb)
    return ipynb


def sync_pairs(book_dir: str | Path) -> list[Path]:
    """:func:`sync_pair` for every chapter of ``book_dir``; returns the notebooks written."""
    return [sync_pair(source) for source in chapter_sources(book_dir)]


def source_to_notebook(source: str | Path, out_path: str | Path) -> Path:
    """Write the notebook of a chapter source to ``out_path`` (unpaired, python3 kernel, no outputs)."""
    notebook = jupytext.read(Path(source))
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata.setdefault("language_info", {"name": "python"})
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out_path)
    return out_path


def parameters_cell(notebook) -> dict:
    """The literals of a notebook's ``parameters``-tagged cell, as a dict (``{}`` if none).

    Only ``name = literal`` lines are accepted: a derived value in the parameters cell is an
    error, as papermill cannot override it cleanly (``config.profiles.parameters_of_source``).
    """
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return parameters_of_source(cell["source"], source="notebook")
    return {}
