"""Class-range experts: their training sets, merging their detections, choosing their ranges.

The ByteDance talk fine-tunes the full 365-class model on the images of one class-rank range (e.g. the 65
rarest classes, ranks 301-365) and lets that "expert" answer for those classes only: tail mAP
18.4 -> 29.5, and two experts (301-365, 151-300) lift overall mAP 29.6 -> 30.7.

Training set (``expert_training_set``): the training images holding at least one annotation of
the range's classes. With ``other_classes="background"`` (default) the other classes' boxes are
removed, so for the expert those objects are background. That is harmless, because merging only
ever takes an expert's detections *of its own classes*, and it is what makes the expert an
expert: its classifier spends all its positives on the range and learns that the frequent
look-alikes are not range classes (fewer confusions in the tail). ``"keep"`` keeps every box (the
expert then also keeps practising the head classes, less forgetting, but weaker focus). Either
way image ids and the full category list are unchanged, so the expert keeps the baseline's
365-way classifier, loads the baseline checkpoint as is, and its results evaluate against the
same ground truth.

Merging (``merge_experts``) works on COCO result lists: see its docstring.

Range choice (``pick_expert_ranges``) goes beyond the talk, which fixed 301-365 and 151-300 by
hand: pick the disjoint contiguous rank ranges where the baseline loses the most AP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from o365lib.data import parse_class_range, ranks_to_category_ids
from o365lib.ops.pair_fusion import concat_rows, fuse_pair, select_rows
from o365lib.ops.top_k import top_k_per_group

__all__ = ["expert_training_set", "merge_experts", "pick_expert_ranges"]

OTHER_CLASSES = ("background", "keep")
STRATEGIES = ("replace", "fuse")
OVERLAPS = ("error", "first")


def _range_category_ids(ranks: Iterable[int] | str | int, ranking: Mapping[int, int]) -> list[int]:
    if isinstance(ranks, (str, int)):
        ranks = parse_class_range(ranks, len(ranking))
    return ranks_to_category_ids(ranks, {int(c): int(r) for c, r in ranking.items()})


def expert_training_set(train_dataset: Any, *, ranks: Iterable[int] | str | int, ranking: Mapping[int, int],
                        other_classes: str = "background") -> dict:
    """COCO dict of the training images that contain a class of ``ranks`` (a spec or a rank list).

    ``other_classes``: "background" drops the other classes' annotations, "keep" keeps them
    (see the module docstring). Images, annotations and categories keep their ids and order;
    the category list stays complete. Other top-level keys (info, licenses) are copied.
    """
    if other_classes not in OTHER_CLASSES:
        raise ValueError(f"other_classes must be one of {OTHER_CLASSES}, got {other_classes!r}")
    data = getattr(train_dataset, "dataset", train_dataset)
    wanted = set(_range_category_ids(ranks, ranking))
    keep_images = {a["image_id"] for a in data["annotations"] if int(a["category_id"]) in wanted}
    out = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    out["images"] = [img for img in data["images"] if img["id"] in keep_images]
    out["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep_images
                          and (other_classes == "keep" or int(a["category_id"]) in wanted)]
    out["categories"] = list(data["categories"])
    return out


# ---------------------------------------------------------------- merging

def _to_arrays(dets: Sequence[Mapping], source: str) -> dict[str, np.ndarray]:
    try:
        return {
            "image_id": np.array([d["image_id"] for d in dets], dtype=np.int64),
            "category_id": np.array([d["category_id"] for d in dets], dtype=np.int64),
            "bbox": np.array([d["bbox"] for d in dets], dtype=np.float64).reshape(-1, 4),
            "score": np.array([d["score"] for d in dets], dtype=np.float64),
        }
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: every result needs image_id, category_id, bbox [x,y,w,h], score ({err})") \
            from None


def _owned_classes(experts: Sequence, overlap: str) -> list[set[int]]:
    owned: list[set[int]] = []
    for index, expert in enumerate(experts):
        if not (isinstance(expert, (tuple, list)) and len(expert) == 2):
            raise ValueError(f"experts[{index}] must be a (category_ids, detections) pair")
        cats = {int(c) for c in expert[0]}
        for other, previous in enumerate(owned):
            shared = cats & {int(c) for c in experts[other][0]}
            if shared and overlap == "error":
                raise ValueError(
                    f"experts[{other}] and experts[{index}] both claim category ids {sorted(shared)}; "
                    "give them disjoint ranges or pass overlap='first'"
                )
            cats -= previous
        owned.append(cats)
    return owned


def merge_experts(general: Sequence[Mapping], experts: Sequence, *, strategy: str = "replace",
                  overlap: str = "error", iou_threshold: float = 0.55, max_dets: int = 100,
                  expert_weight: float = 1.0) -> list[dict]:
    """Merge a general model's COCO results with class-range experts' results.

    ``experts`` is a list of ``(category_ids, detections)``. For the classes an expert owns:

    - ``"replace"``: the output holds the expert's detections of those classes and none of the
      general model's (the talk's recipe).
    - ``"fuse"``: per image and class, expert and general boxes are paired greedily (expert boxes
      by descending score, each taking the free general box of highest IoU >= ``iou_threshold``).
      A pair becomes one box, the score-weighted mean of both boxes (weights w*s_e and s_g, w =
      ``expert_weight``), with score (w*s_e + s_g) / (1 + w). An unpaired box keeps its box and
      gets the same average with the other model's score taken as 0: w*s_e/(1+w) or s_g/(1+w).
      Scores thus stay in [0, 1] and a box both models agree on outranks one seen by one model.

    An expert's detections of classes it does not own are ignored; classes no expert owns come
    from ``general``. Experts' class sets must be disjoint; with ``overlap="first"`` a class
    claimed twice goes to the first expert listing it. Finally each image keeps its ``max_dets``
    best-scored detections. Output: COCO result dicts ordered by image id, then score.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {OVERLAPS}, got {overlap!r}")
    if not 0 <= iou_threshold <= 1 or max_dets < 1 or expert_weight < 0:
        raise ValueError("need 0 <= iou_threshold <= 1, max_dets >= 1, expert_weight >= 0")
    owned = _owned_classes(experts, overlap)
    all_owned = np.array(sorted(set().union(*owned)), dtype=np.int64)
    base = _to_arrays(general, "general")
    parts = [select_rows(base, ~np.isin(base["category_id"], all_owned))]
    for index, ((_, dets), cats) in enumerate(zip(experts, owned)):
        mine = _to_arrays(dets, f"experts[{index}] detections")
        mine = select_rows(mine, np.isin(mine["category_id"], np.array(sorted(cats), dtype=np.int64)))
        if strategy == "replace":
            parts.append(mine)
        else:
            theirs = select_rows(base, np.isin(base["category_id"], np.array(sorted(cats), dtype=np.int64)))
            parts.append(fuse_pair(theirs, mine, iou_threshold=iou_threshold, expert_weight=expert_weight))
    merged = concat_rows(parts)
    merged = select_rows(merged, top_k_per_group(merged["score"], merged["image_id"], int(max_dets)))
    return [{"image_id": int(i), "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
            for i, c, b, s in zip(merged["image_id"], merged["category_id"], merged["bbox"], merged["score"])]


# ---------------------------------------------------------------- choosing ranges

def pick_expert_ranges(per_class_ap: Mapping, ranking: Mapping[int, int], *, num_experts: int = 2,
                       min_size: int = 30, max_size: int = 150) -> list[str]:
    """Choose ``num_experts`` disjoint contiguous rank ranges where the model is weakest.

    A range R scores sum over its evaluated classes of (overall_mean - AP_c), i.e. its size
    times how far its mean AP falls below the overall mean (classes whose AP is None, no ground
    truth, count as neither). The ranges, each ``min_size`` to ``max_size`` ranks long, maximise
    the total score (exact dynamic programme over rank positions). Returned as specs such as
    ``["301-365", "180-260"]``, best-scoring range first. ``per_class_ap`` is keyed by category id
    (int or str), e.g. ``evaluate(...)["per_class"]``.
    """
    num_classes = len(ranking)
    if num_experts < 1 or min_size < 1 or max_size < min_size:
        raise ValueError(f"need num_experts >= 1 and 1 <= min_size <= max_size, got "
                         f"{num_experts}, {min_size}, {max_size}")
    if num_experts * min_size > num_classes:
        raise ValueError(f"{num_experts} ranges of >= {min_size} ranks do not fit in {num_classes} classes")
    by_rank = {int(r): int(c) for c, r in ranking.items()}
    ap = np.full(num_classes, np.nan)
    for r in range(1, num_classes + 1):
        cat = by_rank[r]
        value = per_class_ap.get(cat, per_class_ap.get(str(cat)))
        if value is not None:
            ap[r - 1] = float(value)
    if np.all(np.isnan(ap)):
        raise ValueError("pick_expert_ranges: no class has an AP")
    deficit = np.where(np.isnan(ap), 0.0, np.nanmean(ap) - ap)
    prefix = np.r_[0.0, np.cumsum(deficit)]
    # best[k, i]: best total with k ranges inside ranks 1..i; choice[k, i]: start of the k-th range
    # ending at i (0 = no range ends at i)
    best = np.full((num_experts + 1, num_classes + 1), -np.inf)
    best[0, :] = 0.0
    choice = np.zeros((num_experts + 1, num_classes + 1), dtype=np.int64)
    for k in range(1, num_experts + 1):
        for i in range(1, num_classes + 1):
            best[k, i], choice[k, i] = best[k, i - 1], 0
            for length in range(min_size, min(max_size, i) + 1):
                start = i - length + 1
                value = best[k - 1, start - 1] + prefix[i] - prefix[start - 1]
                if value > best[k, i] + 1e-12:
                    best[k, i], choice[k, i] = value, start
    ranges, k, i = [], num_experts, num_classes
    while k > 0:
        if choice[k, i] == 0:
            i -= 1
            continue
        start = int(choice[k, i])
        ranges.append((prefix[i] - prefix[start - 1], start, i))
        k, i = k - 1, start - 1
    ranges.sort(key=lambda t: (-t[0], t[1]))
    return [f"{start}-{end}" for _, start, end in ranges]
