"""What a reader sees: comparison tables and verdicts, seed statistics, the talk's numbers, the intro's report.

Modules load on first use: ``comparisons``, ``seed_stats``, ``talk``, ``report``.
"""

from __future__ import annotations

import importlib

MODULES = ("comparisons", "seed_stats", "talk", "report",)


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
