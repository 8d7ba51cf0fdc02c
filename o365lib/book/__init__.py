"""Chapter set-up, parameter profiles, the book runner and report helpers.

Public API::

    load_profile(name_or_path) -> dict
    merge_parameters(profile, chapter_params=None, overrides=None) -> dict
    setup_chapter(chapter, *, profile="default", **params) -> ChapterContext
    report.results_summary(profile_dir) -> DataFrame, report.markdown(...), report.markdown_table(...)

Sub-modules ``steps`` (train-or-load glue), ``report``, ``runner``, ``notebooks`` load on first
use (``o365lib.book.steps.ensure_dataset(ctx)`` works after ``import o365lib.book``), so that
importing this package stays cheap. Command line: ``python -m o365lib.book --help``.
"""

from __future__ import annotations

import importlib

from o365lib.book.chapter import ChapterContext, setup_chapter
from o365lib.book.profiles import load_profile, merge_parameters

__all__ = ["ChapterContext", "load_profile", "merge_parameters", "setup_chapter"]

_LAZY = ("steps", "report", "runner", "notebooks", "seed", "compare", "plotly_offline", "profiles", "tail_tour",
         "chapter")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
