"""Box operations and box fusion shared by :mod:`o365lib.modeling`, :mod:`o365lib.tta` and the experts.

- :func:`soft_nms`: per-class soft-NMS (gaussian / linear), equal to ensemble-boxes 1.0.9 on the
  same inputs (decayed scores returned); a numba kernel on CPU, vectorised torch elsewhere.
- :func:`weighted_boxes_fusion` / :func:`batched_weighted_boxes_fusion`: WBF with ensemble-boxes'
  semantics (:mod:`.wbf`; backends :mod:`.wbf_numba`, :mod:`.wbf_torch`).
- :mod:`.pair_fusion`: the expert merge's fusion of two models' same-class detections.
- :func:`box_iou_matrix`: pairwise IoU within groups of boxes, ensemble-boxes' arithmetic.
- :mod:`o365lib.ops.backend`: the numba / torch backend choice and the one-thread CPU helpers
  (:func:`one_cpu_thread`, :func:`serial_on_cpu`) used by the torch implementations.
"""

from o365lib.ops.backend import BACKENDS, HAVE_NUMBA, one_cpu_thread, resolve_backend, serial_on_cpu
from o365lib.ops.soft_nms import box_iou_matrix, soft_nms
from o365lib.ops.wbf import CONF_TYPES, batched_weighted_boxes_fusion, weighted_boxes_fusion

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
    "weighted_boxes_fusion",
]
