"""Box operations and box fusion shared by :mod:`o365lib.modeling`, :mod:`o365lib.tta`, the experts
and the evaluation.

- :func:`soft_nms`: per-class soft-NMS (gaussian / linear), equal to ensemble-boxes 1.0.9 on the
  same inputs (decayed scores returned); a numba kernel on CPU, vectorised torch elsewhere.
- :func:`weighted_boxes_fusion` / :func:`batched_weighted_boxes_fusion`: WBF with ensemble-boxes'
  semantics (:mod:`.wbf`; backends :mod:`.wbf_numba`, :mod:`.wbf_torch`).
- :mod:`.pair_fusion`: the expert merge's fusion of two models' same-class detections.
- :func:`top_k_per_group`: the K highest-scoring detections of each image (or class), NumPy only.
- :func:`box_iou_matrix`: pairwise IoU within groups of boxes, ensemble-boxes' arithmetic.
- :mod:`o365lib.ops.backend`: the numba / torch backend choice and the one-thread CPU helpers
  (:func:`one_cpu_thread`, :func:`serial_on_cpu`) used by the torch implementations.

Names are loaded on first use, so the NumPy-only modules (``top_k``, ``pair_fusion``) import
without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from o365lib.ops.backend import BACKENDS, HAVE_NUMBA, one_cpu_thread, resolve_backend, serial_on_cpu
    from o365lib.ops.soft_nms import box_iou_matrix, soft_nms
    from o365lib.ops.top_k import top_k_per_group
    from o365lib.ops.wbf import CONF_TYPES, batched_weighted_boxes_fusion, weighted_boxes_fusion

#: Public name -> the submodule that defines it.
_HOMES = {
    "BACKENDS": "backend",
    "CONF_TYPES": "wbf",
    "HAVE_NUMBA": "backend",
    "batched_weighted_boxes_fusion": "wbf",
    "box_iou_matrix": "soft_nms",
    "one_cpu_thread": "backend",
    "resolve_backend": "backend",
    "serial_on_cpu": "backend",
    "soft_nms": "soft_nms",
    "top_k_per_group": "top_k",
    "weighted_boxes_fusion": "wbf",
}

__all__ = [
    "BACKENDS",
    "CONF_TYPES",
    "HAVE_NUMBA",
    "batched_weighted_boxes_fusion",
    "box_iou_matrix",
    "one_cpu_thread",
    "resolve_backend",
    "serial_on_cpu",
    "soft_nms",
    "top_k_per_group",
    "weighted_boxes_fusion",
]


def __getattr__(name: str):
    """Load ``name``'s submodule and bind all its public names here (``soft_nms`` the function, not
    the submodule of the same name, which the import system would otherwise leave in its place)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'o365lib.ops' has no attribute {name!r}")
    home = _HOMES[name]
    module = importlib.import_module(f"o365lib.ops.{home}")
    globals().update({public: getattr(module, public) for public, where in _HOMES.items() if where == home})
    return globals()[name]
