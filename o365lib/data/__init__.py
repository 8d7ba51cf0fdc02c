"""Data layer: COCO / Objects365 loading and validation, class ranks, tail statistics, synthetic data.

Categories are always matched by id, never by their position in a file's ``categories`` list.
The synthetic data set lives in :mod:`o365lib.data.synthetic` (imported on demand).
"""

from o365lib.data.coco import CocoData, DataValidationError, ValidationReport, load_coco, validate_coco
from o365lib.data.ranking import (
    LabelMap,
    class_ranks,
    instance_counts,
    parse_class_range,
    ranked_category_ids,
    ranks_to_category_ids,
)
from o365lib.data.stats import example_image_ids, imbalance_table, subset_by_ranks, tail_stats

__all__ = [
    "CocoData",
    "DataValidationError",
    "LabelMap",
    "ValidationReport",
    "class_ranks",
    "example_image_ids",
    "imbalance_table",
    "instance_counts",
    "load_coco",
    "parse_class_range",
    "ranked_category_ids",
    "ranks_to_category_ids",
    "subset_by_ranks",
    "tail_stats",
    "validate_coco",
]
