"""What each chapter computes from the artefacts, returned as rows and tables.

Modules load on first use: ``remedies``, ``accuracy_tricks``, ``beyond``, ``tail_tour``.
"""

from __future__ import annotations

import importlib

MODULES = ("remedies", "accuracy_tricks", "beyond", "loss_budget", "tail_tour",)


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
