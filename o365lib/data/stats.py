"""Long-tail statistics of a COCO data set.

``tail_stats`` is the per-class table behind the talk's "class instance distribution" plot,
``imbalance_table`` its COCO-vs-Objects365 max/min table with the data set in use added,
``image_category_ids`` gives the per-image class lists that the long-tail samplers work on.
Training sets of a class-rank range (experts) are cut by ``o365lib.experts.expert_training_set``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from o365lib.data.ranking import (
    _as_dataset,
    class_ranks,
    instance_counts,
)

__all__ = ["TALK_IMBALANCE", "example_image_ids", "image_category_ids", "imbalance_table",
           "tail_stats"]

# The talk's table (Objects365 V1 train vs COCO train): max/min training instances per class.
TALK_IMBALANCE: dict[str, dict[str, int]] = {
    "COCO": {"Max #Instance": 262465, "Min #Instance": 198, "Max / Min": 1326},
    "Objects365": {"Max #Instance": 2120895, "Min #Instance": 28, "Max / Min": 75746},
}


def tail_stats(dataset: Any, *, ranking: Mapping[int, int] | None = None) -> pd.DataFrame:
    """Per-class statistics sorted by rank.

    Columns: ``category_id``, ``name``, ``rank``, ``instances`` (annotations), ``images``
    (images containing the class), plus ``style`` when the categories carry one (the
    synthetic data set does). ``ranking`` defaults to the ranking of ``dataset`` itself; pass
    the training ranking to describe a val split in training-rank order.
    """
    data = _as_dataset(dataset)
    counts = instance_counts(data)
    images: dict[int, set[int]] = {cid: set() for cid in counts}
    for ann in data["annotations"]:
        images[int(ann["category_id"])].add(int(ann["image_id"]))
    ranking = dict(ranking) if ranking is not None else class_ranks(data)
    missing = [cid for cid in counts if cid not in ranking]
    if missing:
        raise ValueError(f"ranking has no rank for category ids {sorted(missing)[:10]}")
    has_style = any("style" in c for c in data["categories"])
    rows = []
    for cat in data["categories"]:
        cid = int(cat["id"])
        row = {"category_id": cid, "name": cat["name"], "rank": int(ranking[cid]),
               "instances": counts[cid], "images": len(images[cid])}
        if has_style:
            row["style"] = cat.get("style", "")
        rows.append(row)
    return pd.DataFrame(rows).sort_values("rank", kind="stable").reset_index(drop=True)


def imbalance_table(dataset: Any, name: str = "this data") -> pd.DataFrame:
    """The talk's class-imbalance table with ``dataset`` as a third column.

    Rows ``"Max #Instance"``, ``"Min #Instance"``, ``"Max / Min"`` (rounded); columns
    ``"COCO"``, ``"Objects365"`` (the numbers of the ByteDance talk, Lu et al. 2019) and ``name``.
    The minimum is taken over classes with at least one instance (a class with none would make
    the ratio infinite).
    """
    counts = [n for n in instance_counts(dataset).values() if n > 0]
    if not counts:
        raise ValueError("imbalance_table: the data set has no annotations")
    hi, lo = max(counts), min(counts)
    columns = dict(TALK_IMBALANCE)
    columns[name] = {"Max #Instance": hi, "Min #Instance": lo, "Max / Min": round(hi / lo)}
    return pd.DataFrame(columns).loc[["Max #Instance", "Min #Instance", "Max / Min"]]




def example_image_ids(dataset: Any, category_ids: Iterable[int], *, per_class: int = 1) -> list[int]:
    """Pick ``per_class`` example images for each category (for head/tail example plots).

    Images are chosen deterministically: for each class, those with the most instances of
    it first (ties by smaller image id); an image already picked is not repeated. Classes
    with no images are skipped.
    """
    data = _as_dataset(dataset)
    per_image: dict[int, dict[int, int]] = {}
    for ann in data["annotations"]:
        cnt = per_image.setdefault(int(ann["category_id"]), {})
        cnt[int(ann["image_id"])] = cnt.get(int(ann["image_id"]), 0) + 1
    picked: list[int] = []
    for cid in category_ids:
        cnt = per_image.get(int(cid), {})
        candidates = sorted(cnt, key=lambda iid: (-cnt[iid], iid))
        chosen = [iid for iid in candidates if iid not in picked][:per_class]
        picked.extend(chosen)
    return picked


def image_category_ids(data: Any) -> list[list[int]]:
    """Per image, in ``dataset["images"]`` order, the category id of each of its annotations.

    One entry per annotation (repeats kept), so instance-counting samplers see instance counts;
    set-based ones de-duplicate. ``data`` is a COCO dict or a ``CocoData`` (its ``anns_by_image``
    index is used when present).
    """
    dataset = getattr(data, "dataset", data)
    anns_by_image = getattr(data, "anns_by_image", None)
    if anns_by_image is not None:
        return [[int(ann["category_id"]) for ann in anns_by_image.get(img["id"], [])] for img in dataset["images"]]
    by_image: dict[Any, list[int]] = {img["id"]: [] for img in dataset["images"]}
    for ann in dataset.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(int(ann["category_id"]))
    return [by_image[img["id"]] for img in dataset["images"]]
