"""Box operations shared by :mod:`o365lib.modeling` and :mod:`o365lib.tta`.

- :func:`soft_nms`: per-class soft-NMS (gaussian / linear), equal to ensemble-boxes 1.0.9 on the
  same inputs (decayed scores returned); a numba kernel on CPU, vectorised torch elsewhere.
- :func:`box_iou_matrix`: pairwise IoU within groups of boxes, ensemble-boxes' arithmetic.
- :mod:`o365lib.ops.backend`: the numba / torch backend choice and the one-thread CPU helpers
  (:func:`one_cpu_thread`, :func:`serial_on_cpu`) used by the torch implementations.
"""

from o365lib.ops.backend import BACKENDS, HAVE_NUMBA, one_cpu_thread, resolve_backend, serial_on_cpu
from o365lib.ops.soft_nms import box_iou_matrix, soft_nms

__all__ = [
    "BACKENDS",
    "HAVE_NUMBA",
    "box_iou_matrix",
    "one_cpu_thread",
    "resolve_backend",
    "serial_on_cpu",
    "soft_nms",
]
