"""The profile: its typed schema, loading and overrides, and each chapter's parameters.

Modules load on first use: ``schema``, ``mapping``, ``profiles``.
"""

from __future__ import annotations

import importlib

MODULES = ("schema", "mapping", "profiles",)


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
