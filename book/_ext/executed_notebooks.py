"""Sphinx extension: render executed copies of the chapters when a run has produced them.

The committed notebooks in ``book/`` carry no outputs (they are what users open and what
reviewers diff). The runner writes executed copies to ``_build/executed/<profile>/``. When
Sphinx reads a notebook page, this extension substitutes the executed copy of the same name if
one exists and still matches the committed cells; otherwise the committed notebook is rendered
as it is. So ``jupyter-book build book`` builds on a fresh clone (no outputs, no warnings) and
shows the results after a run.

Which executed copies: ``$O365BOOK_EXECUTED_DIR`` (set by the runner), else
``_build/executed/$O365BOOK_PROFILE``, else ``_build/executed/<o365book_profile>`` from
``_config.yml`` (default ``default``), relative to the project root.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def executed_dir(app) -> Path:
    """The folder of executed notebooks this build renders."""
    explicit = os.environ.get("O365BOOK_EXECUTED_DIR")
    if explicit:
        return Path(explicit)
    profile = os.environ.get("O365BOOK_PROFILE") or app.config.o365book_profile
    return PROJECT_ROOT / "_build" / "executed" / profile


def _cells(notebook) -> list[tuple]:
    """Cell types and sources, without papermill's injected-parameters cell."""
    return [(c.cell_type, c.source.strip("\n")) for c in notebook.cells
            if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def _swap_source(app, docname: str, source: list) -> None:
    path = app.env.doc2path(docname)
    if not str(path).endswith(".ipynb"):
        return
    candidate = executed_dir(app) / f"{Path(docname).name}.ipynb"
    failed = executed_dir(app) / "failed" / f"{Path(docname).name}.ipynb"
    app.env.note_dependency(str(candidate))  # a later run re-reads the page
    app.env.note_dependency(str(failed))
    if not candidate.is_file():
        if failed.is_file():
            source[0] = nbformat.writes(_with_failure_notice(nbformat.reads(source[0], as_version=4), good=False))
        return
    committed = nbformat.reads(source[0], as_version=4)
    executed = nbformat.reads(candidate.read_text(encoding="utf8"), as_version=4)
    if _cells(executed) != _cells(committed):
        LOGGER.warning(f"{candidate} does not match the committed {docname}.ipynb (re-run the chapter); "
                       "rendering the committed notebook without outputs",
                       type="o365book", subtype="stale_notebook", location=docname)
        return
    notebook = _hide_default_parameters(executed)
    if failed.is_file():
        notebook = _with_failure_notice(notebook, good=True)
    source[0] = nbformat.writes(notebook)


def _with_failure_notice(notebook, *, good: bool):
    """A warning after the title: the latest run of this chapter failed (``failed/`` holds its notebook)."""
    text = ("The latest run of this chapter **failed**; "
            + ("the results below are from the last run that succeeded." if good else
               "no run has succeeded yet, so the page shows no results.")
            + " Re-run it with `python -m o365lib.book run --chapters <number>`.")
    cell = nbformat.v4.new_markdown_cell(f":::{{warning}}\n{text}\n:::")
    notebook.cells.insert(1 if notebook.cells and notebook.cells[0].cell_type == "markdown" else 0, cell)
    return notebook


def _hide_default_parameters(notebook):
    """Show the parameters a chapter ran with once: papermill's injected cell stays, the committed
    defaults cell (tag ``parameters``) is removed from the page when an injected one follows it."""
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in notebook.cells]
    if any("injected-parameters" in t for t in tags):
        for cell, cell_tags in zip(notebook.cells, tags):
            if "parameters" in cell_tags:
                cell.setdefault("metadata", {})["tags"] = sorted(cell_tags | {"remove-cell"})
    return notebook


def setup(app):
    app.add_config_value("o365book_profile", "default", "env")
    app.connect("source-read", _swap_source)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
