"""Test-time merging of detections: soft-NMS, weighted boxes fusion, TTA and ensembles.

- :func:`soft_nms`: per-class soft-NMS (gaussian / linear), vectorised over classes and images,
  equal to ensemble-boxes' on the same inputs (decayed scores returned).
- :func:`weighted_boxes_fusion` / :func:`batched_weighted_boxes_fusion`: WBF with
  ensemble-boxes' semantics, vectorised over labels and images; ``clip_scores`` fixes the
  'avg' + weights overflow above 1.
"""

from o365lib.tta.soft_nms import box_iou_matrix, soft_nms
from o365lib.tta.wbf import CONF_TYPES, batched_weighted_boxes_fusion, weighted_boxes_fusion

__all__ = [
    "CONF_TYPES",
    "batched_weighted_boxes_fusion",
    "box_iou_matrix",
    "soft_nms",
    "weighted_boxes_fusion",
]
