"""The book layer: chapter set-up, the artefacts chapters share, what they study, how it is shown.

Five sub-packages, whose imports run one way (each imports only the ones listed before it):

- ``config``: the profile schema (``config.schema``), loading profiles and chapter parameters
  (``config.profiles``), dataclass <-> mapping helpers (``config.mapping``);
- ``artefacts``: what chapters share in ``results/<profile>/``, each keyed by what determines it:
  data (``datasets``), pretrained backbones and detectors (``models``), predictions and metrics
  (``predictions``); ``resolver`` is the one place for "found? verified? else rank 0 makes, the
  others wait", and ``plan`` lists what chapters need before anything trains;
- ``run``: chapter set-up (``chapter``), records, papermill and the HTML build (``runner``,
  ``notebooks``), offline plotly;
- ``present``: tables and verdicts (``comparisons``), statistics over random seeds (``seed_stats``),
  the talk's numbers (``talk``), the intro's report (``report``);
- ``studies``: what each chapter computes (``remedies``, ``accuracy_tricks``, ``beyond``, ``tail_tour``).

Public API::

    load_profile(name_or_path, overrides=None) -> Profile (the typed, validated schema)
    setup_chapter(chapter, *, profile="default", namespace=None, **params) -> ChapterContext

Sub-packages load on first use (``o365lib.book.artefacts.models.ensure_baseline(ctx, seed)`` works
after ``import o365lib.book``). Command line: ``python -m o365lib.book --help``.
"""

from __future__ import annotations

import importlib

from o365lib.book.config.profiles import load_profile
from o365lib.book.run.chapter import ChapterContext, setup_chapter

__all__ = ["ChapterContext", "load_profile", "setup_chapter"]

#: The sub-packages, loaded on first attribute access.
SUBPACKAGES = ("config", "artefacts", "run", "present", "studies")


def __getattr__(name):
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
