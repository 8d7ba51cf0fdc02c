"""What chapters share under ``results/<profile>/``: data, backbones, models, predictions, metrics.

Each artefact is keyed by everything that determines it; :mod:`.resolver` finds, verifies or
makes it (rank 0 makes, the others wait) and records what it cost.

Modules load on first use: ``resolver``, ``datasets``, ``models``, ``predictions``.
"""

from __future__ import annotations

import importlib

MODULES = ("keys", "resolver", "datasets", "backbones", "models", "coco_standin", "predictions", "plan")


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
