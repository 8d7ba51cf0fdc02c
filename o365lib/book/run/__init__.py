"""Running chapters: set-up, records, papermill, the HTML build, offline plotly.

Modules load on first use: ``chapter``, ``records``, ``notebooks``, ``runner``, ``plotly_offline``.
"""

from __future__ import annotations

import importlib

MODULES = ("chapter", "records", "notebooks", "runner", "timings", "plotly_offline")


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
