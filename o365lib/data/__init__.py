"""Data layer: COCO / Objects365 loading and validation, class ranks, tail statistics, the
training dataset, end-to-end data checks, synthetic data.

Categories are always matched by id, never by their position in a file's ``categories`` list.

- :mod:`~o365lib.data.coco` ``load_coco`` / ``CocoData`` (rules in :mod:`~o365lib.data.validate`,
  image-file checks in :mod:`~o365lib.data.images`, Objects365 releases in
  :mod:`~o365lib.data.objects365`);
- :mod:`~o365lib.data.ranking` and :mod:`~o365lib.data.stats`: class ranks, tail statistics,
  per-image class lists;
- :mod:`~o365lib.data.dataset` ``DetectionDataset`` (torch; imported on first use);
- :mod:`~o365lib.data.check` ``check_dataset``: validate a profile's files end to end;
- :mod:`~o365lib.data.synthetic`: the synthetic data set (imported on demand).
"""

from o365lib.data.coco import CocoData, load_coco
from o365lib.data.objects365 import normalize_class_name
from o365lib.data.ranking import (
    LabelMap,
    class_ranks,
    instance_counts,
    parse_class_range,
    ranked_category_ids,
    ranks_to_category_ids,
)
from o365lib.data.stats import (
    example_image_ids,
    image_category_ids,
    imbalance_table,
    tail_stats,
)
from o365lib.data.validate import DataValidationError, DataWarning, ValidationReport, validate_coco

_TORCH_NAMES = ("DetectionDataset", "collate_detection", "read_image")

__all__ = [
    "CocoData",
    "DataValidationError",
    "DataWarning",
    "DetectionDataset",
    "LabelMap",
    "ValidationReport",
    "class_ranks",
    "collate_detection",
    "example_image_ids",
    "image_category_ids",
    "imbalance_table",
    "instance_counts",
    "load_coco",
    "normalize_class_name",
    "parse_class_range",
    "ranked_category_ids",
    "ranks_to_category_ids",
    "read_image",
    "tail_stats",
    "validate_coco",
]


def __getattr__(name: str):
    """``DetectionDataset`` and friends load torch, so they are imported on first use."""
    if name in _TORCH_NAMES:
        from o365lib.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'o365lib.data' has no attribute {name!r}")
