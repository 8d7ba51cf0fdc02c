"""Tables for the tour of the long tail (chapter 01): class-rank ranges and example classes.

The ByteDance talk split Objects365's 365 classes by training-instance rank into 1-150, 151-300 and
301-365, and contrasted tail classes that stay at zero AP (okra, scallop: small objects in
dense clusters) with tail classes that are easy anyway (donkey, polar bear: large, plain).
:func:`range_summary` tabulates the ranges; :func:`class_appearance` measures what made the
hard ones hard (object size relative to the image, objects per image) for every class, and
:func:`pick_example_classes` picks head, hard-tail and easy-tail examples from those numbers,
so the same choice works on real Objects365 files, with no hand-picked ids.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from o365lib.data import parse_class_range

#: Columns :func:`class_appearance` adds to the per-class table.
APPEARANCE_COLUMNS = ("median_rel_size", "objects_per_image")


def _dataset(data: Any) -> dict:
    """The COCO dict of a CocoData or a dict."""
    dataset = getattr(data, "dataset", data)
    if not isinstance(dataset, Mapping) or "annotations" not in dataset or "images" not in dataset:
        raise TypeError("expected a COCO dict or a CocoData with .dataset")
    return dataset


def range_summary(stats: pd.DataFrame, *, ranges: Iterable[str]) -> pd.DataFrame:
    """Instances per class-rank range, from a :func:`o365lib.data.tail_stats` table.

    One row per range spec (``"301-365"``), columns ``classes``, ``instances``, ``share %`` (of
    all training instances), ``max per class``, ``min per class``, ``median per class``.
    """
    missing = {"rank", "instances"} - set(stats.columns)
    if missing:
        raise ValueError(f"range_summary needs a tail_stats table; missing columns {sorted(missing)}")
    total = int(stats["instances"].sum())
    rows = []
    for spec in ranges:
        ranks = set(parse_class_range(spec, len(stats)))
        part = stats[stats["rank"].isin(ranks)]["instances"]
        rows.append({"range": str(spec), "classes": len(part), "instances": int(part.sum()),
                     "share %": round(100.0 * part.sum() / total, 2) if total else 0.0,
                     "max per class": int(part.max()), "min per class": int(part.min()),
                     "median per class": float(part.median())})
    return pd.DataFrame(rows).set_index("range")


def class_appearance(data: Any, stats: pd.DataFrame) -> pd.DataFrame:
    """``stats`` with two columns about how each class looks in its images.

    ``median_rel_size``: median of sqrt(box area / image area) over the class's boxes (0.05 is
    a box 5% of the image side); ``objects_per_image``: instances / images containing the class
    (how clustered it is).
    """
    dataset = _dataset(data)
    image_area = {int(img["id"]): float(img["width"]) * float(img["height"]) for img in dataset["images"]}
    sizes: dict[int, list[float]] = defaultdict(list)
    for ann in dataset["annotations"]:
        w, h = float(ann["bbox"][2]), float(ann["bbox"][3])
        area = image_area.get(int(ann["image_id"]))
        if area:
            sizes[int(ann["category_id"])].append(math.sqrt(max(w * h, 0.0) / area))
    out = stats.copy()
    out["median_rel_size"] = [round(float(pd.Series(sizes[c]).median()), 4) if sizes[c] else float("nan")
                              for c in out["category_id"]]
    out["objects_per_image"] = (out["instances"] / out["images"].where(out["images"] > 0)).round(2)
    return out


def pick_example_classes(data: Any, stats: pd.DataFrame, *, head: str = "1-150", tail: str = "301-365",
                         per_group: int = 2) -> pd.DataFrame:
    """Example classes: the most frequent head classes, the hardest- and easiest-looking tail classes.

    Tail classes are scored by ``log(median_rel_size) - log(objects_per_image)``: small boxes in
    crowded images score low (the talk's okra, scallop), large lone objects high (donkey, polar
    bear). Returns the rows of :func:`class_appearance` with a ``group`` column
    (``"head"``, ``"tail: small, clustered"``, ``"tail: large, plain"``), in that order.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    table = class_appearance(data, stats)
    table = table[table["instances"] > 0]
    head_ranks = set(parse_class_range(head, len(stats)))
    tail_ranks = set(parse_class_range(tail, len(stats)))
    heads = table[table["rank"].isin(head_ranks)].nsmallest(per_group, "rank")
    tails = table[table["rank"].isin(tail_ranks)].copy()
    tails["score"] = tails["median_rel_size"].apply(math.log) - tails["objects_per_image"].apply(math.log)
    tails = tails.sort_values(["score", "rank"], kind="stable")
    hard = tails.head(per_group)
    easy = tails[~tails["category_id"].isin(hard["category_id"])].tail(per_group).iloc[::-1]
    groups = [("head", heads), ("tail: small, clustered", hard), ("tail: large, plain", easy)]
    parts = [part.drop(columns=["score"], errors="ignore").assign(group=name) for name, part in groups]
    columns = ["group", "category_id", "name", "rank", "instances", "images", *APPEARANCE_COLUMNS]
    return pd.concat(parts, ignore_index=True)[columns]


def tail_class_table(per_class: pd.DataFrame, data: Any, *, spec: str = "301-365") -> pd.DataFrame:
    """The classes of a rank range with their AP and how they look in the training data.

    ``per_class`` is :func:`o365lib.evaluation.per_class_table` (category_id, name, rank, ap),
    ``data`` the training split (CocoData or dict). Columns: category_id, name, rank, ap,
    instances, images, ``mean box area`` (pixels), ``objects per image``, and ``style`` when the
    categories carry one (the synthetic data). Sorted by rank.
    """
    missing = {"category_id", "rank", "ap"} - set(per_class.columns)
    if missing:
        raise ValueError(f"tail_class_table needs a per_class_table; missing columns {sorted(missing)}")
    dataset = _dataset(data)
    ranked = per_class.dropna(subset=["rank"])
    ranks = set(parse_class_range(spec, int(ranked["rank"].max()) if len(ranked) else 0))
    part = ranked[ranked["rank"].isin(ranks)].copy()
    areas: dict[int, list[float]] = defaultdict(list)
    images: dict[int, set[int]] = defaultdict(set)
    for ann in dataset["annotations"]:
        cid = int(ann["category_id"])
        areas[cid].append(float(ann["bbox"][2]) * float(ann["bbox"][3]))
        images[cid].add(int(ann["image_id"]))
    cats = {int(c["id"]): c for c in dataset["categories"]}
    part["instances"] = [len(areas[int(c)]) for c in part["category_id"]]
    part["images"] = [len(images[int(c)]) for c in part["category_id"]]
    part["mean box area"] = [round(sum(areas[int(c)]) / len(areas[int(c)]), 1) if areas[int(c)] else float("nan")
                             for c in part["category_id"]]
    part["objects per image"] = (part["instances"] / part["images"].where(part["images"] > 0)).round(2)
    if any("style" in c for c in cats.values()):
        part["style"] = [cats.get(int(c), {}).get("style", "") for c in part["category_id"]]
    part["rank"] = part["rank"].astype(int)
    return part.sort_values("rank", kind="stable").reset_index(drop=True)


def extreme_classes(table: pd.DataFrame, *, per_group: int = 2) -> pd.DataFrame:
    """The ``per_group`` lowest-AP ("hardest") then highest-AP ("easiest") classes of a table.

    ``table`` is a :func:`tail_class_table`; classes without an AP (no validation boxes) are
    left out. Ties: among equal APs the smaller mean box area counts as harder. A ``group``
    column comes first; a class is never in both groups.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    scored = table.dropna(subset=["ap"])
    order = scored.sort_values(["ap", "mean box area", "rank"], ascending=[True, True, True], kind="stable")
    hardest = order.head(per_group)
    rest = order[~order["category_id"].isin(hardest["category_id"])]
    easiest = rest.sort_values(["ap", "mean box area", "rank"], ascending=[False, False, True],
                               kind="stable").head(per_group)
    out = pd.concat([hardest.assign(group="hardest"), easiest.assign(group="easiest")], ignore_index=True)
    return out[["group", *[c for c in out.columns if c != "group"]]]
