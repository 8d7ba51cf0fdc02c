"""Test-time merging of detections: soft-NMS, weighted boxes fusion, TTA and ensembles.

- :func:`soft_nms`: per-class soft-NMS (gaussian / linear), equal to ensemble-boxes' on the
  same inputs (decayed scores returned); defined in :mod:`o365lib.ops`, re-exported here.
- :func:`weighted_boxes_fusion` / :func:`batched_weighted_boxes_fusion`: WBF with
  ensemble-boxes' semantics, one image or many per call (numba kernel on CPU, vectorised
  torch elsewhere); ``clip_scores`` fixes the 'avg' + weights overflow above 1; defined in
  :mod:`o365lib.ops`, re-exported here.
- :func:`predict_tta`: multi-scale + flip inference of a torchvision-style detector, merged
  before NMS when the model offers ``predict_raw``.
- :func:`ensemble_results`: fuse several models' COCO results lists (WBF, soft-NMS or NMS).
"""

from o365lib.ops import (
    CONF_TYPES,
    batched_weighted_boxes_fusion,
    box_iou_matrix,
    soft_nms,
    weighted_boxes_fusion,
)
from o365lib.tta.augment import TTA_SCALE_PRESETS, flip_boxes, inference_scale, predict_tta, resolve_scales
from o365lib.tta.ensemble import (
    MERGE_METHODS,
    ensemble_results,
    fuse_detections,
    results_to_tensors,
    tensors_to_results,
)

__all__ = [
    "CONF_TYPES",
    "MERGE_METHODS",
    "TTA_SCALE_PRESETS",
    "batched_weighted_boxes_fusion",
    "box_iou_matrix",
    "ensemble_results",
    "flip_boxes",
    "fuse_detections",
    "inference_scale",
    "predict_tta",
    "resolve_scales",
    "results_to_tensors",
    "soft_nms",
    "tensors_to_results",
    "weighted_boxes_fusion",
]
