"""Chapter set-up, parameter profiles, the book runner and report helpers.

Public API::

    load_profile(name_or_path, overrides=None) -> Profile (the typed, validated schema)
    setup_chapter(chapter, *, profile="default", namespace=None, **params) -> ChapterContext
    report.results_summary(profile_dir) -> DataFrame, report.markdown(...), report.markdown_table(...)

Sub-modules load on first use (``o365lib.book.models.ensure_baseline(ctx, seed)`` works after
``import o365lib.book``), so that importing this package stays cheap: train-or-load steps in
``datasets``, ``models``, ``predictions`` (keys in ``cache``), the talk's remedies in ``remedies`` and
``tricks``, chapter records in ``records``, tables and verdicts in ``compare`` and ``report``. Command line: ``python -m o365lib.book --help``.
"""

from __future__ import annotations

import importlib

from o365lib.book.chapter import ChapterContext, setup_chapter
from o365lib.book.profiles import load_profile

__all__ = ["ChapterContext", "load_profile", "setup_chapter"]

_LAZY = ("datasets", "models", "predictions", "records", "remedies", "tricks", "cache", "report", "runner",
         "notebooks", "talk", "compare", "plotly_offline", "profiles", "profile", "schema", "tail_tour", "chapter", "timings")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
