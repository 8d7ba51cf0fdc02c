"""Sphinx extension: ship plotly.js with the book so figures draw with no network.

Chapters render plotly figures as ``text/html`` that calls ``Plotly.newPlot`` and expects a
page-level ``window.Plotly`` (see ``o365lib.book.run.plotly_offline``). This extension copies
``plotly.min.js`` from the installed plotly package into ``_static/`` and adds it to every HTML
page, loaded before the page body runs.

It also keeps every page free of CDN references: Jupyter Book always loads sphinx-thebe, which
writes ``https://unpkg.com/thebe...`` into each page although launch buttons are off. Scripts
and stylesheets that name a remote URL (and thebe's loader that needs one) are dropped from the
page context before rendering.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import plotly
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
REMOTE = re.compile(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}/")
#: Local scripts that only make sense with a remote companion.
NEEDS_REMOTE = ("sphinx-thebe.js",)

PLOTLY_JS = "plotly.min.js"


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` bundled with the installed plotly package."""
    path = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: reinstall plotly (pip install --force-reinstall plotly)")
    return path


def _add_script(app) -> None:
    if app.builder.format == "html":
        plotly_js_path()  # fail early, before any page is written
        app.add_js_file(PLOTLY_JS, priority=200)


def _copy_script(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plotly_js_path(), static / PLOTLY_JS)


def _is_remote(asset) -> bool:
    """Whether a page script/stylesheet entry points at, or embeds, a remote URL."""
    filename = str(getattr(asset, "filename", asset) or "")
    body = str(getattr(asset, "attributes", {}).get("body", ""))
    return bool(REMOTE.match(filename) or REMOTE.search(body)) or filename.endswith(NEEDS_REMOTE)


def _drop_remote_assets(app, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not assets:
            continue
        kept = [a for a in assets if not _is_remote(a)]
        if len(kept) != len(assets):
            LOGGER.verbose(f"{pagename}: dropped {len(assets) - len(kept)} remote {key}")
            assets[:] = kept


def setup(app):
    app.connect("builder-inited", _add_script)
    app.connect("html-page-context", _drop_remote_assets)
    app.connect("build-finished", _copy_script)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
