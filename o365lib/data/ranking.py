"""Class ranking by training-instance count, class-rank ranges and the category-id <-> label map.

The talk analyses Objects365 by *class rank*: classes sorted by their number of training
instances, rank 1 being the most frequent. Ranges such as ``"301-365"`` (the 65 rarest
classes) select the classes an expert model is trained on or a tail metric is averaged over.

Everything here works on category **ids**, never on positions in the ``categories`` list:
Objects365 V1 train and val list their categories in different orders, so a position-based
mapping silently scrambles the classes.
"""

from __future__ import annotations

import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "LabelMap",
    "class_ranks",
    "instance_counts",
    "parse_class_range",
    "ranked_category_ids",
    "ranks_to_category_ids",
]


class LabelMap:
    """Bijection between a data set's category ids and contiguous model labels ``1..K``.

    Label 0 is reserved for the background, as in torchvision detectors. Labels follow the
    *sorted* category ids, so two files that list the same categories in different orders get
    the same map.
    """

    def __init__(self, category_ids: Iterable[int]):
        ids = [int(c) for c in category_ids]
        if len(set(ids)) != len(ids):
            dupes = sorted(c for c, n in Counter(ids).items() if n > 1)
            raise ValueError(f"LabelMap: duplicate category ids {dupes[:10]}")
        self._ids: list[int] = sorted(ids)
        self._label_of: dict[int, int] = {c: i + 1 for i, c in enumerate(self._ids)}

    @property
    def category_ids(self) -> list[int]:
        """The category ids, sorted; ``category_ids[label - 1]`` has that label."""
        return list(self._ids)

    @property
    def num_classes(self) -> int:
        """Number of foreground classes K (labels run 1..K)."""
        return len(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMap) and other._ids == self._ids

    def __hash__(self) -> int:
        return hash(tuple(self._ids))

    def __repr__(self) -> str:
        return f"LabelMap(num_classes={self.num_classes})"

    def to_label(self, category_id: int) -> int:
        """Model label (1..K) of a category id; KeyError naming the id if it is unknown."""
        try:
            return self._label_of[int(category_id)]
        except KeyError:
            raise KeyError(f"category id {category_id} is not in this LabelMap") from None

    def to_category(self, label: int) -> int:
        """Category id of a model label (1..K); KeyError for 0 (background) or out-of-range labels."""
        label = int(label)
        if not 1 <= label <= len(self._ids):
            raise KeyError(f"label {label} is outside 1..{len(self._ids)} (0 is the background)")
        return self._ids[label - 1]

    def to_labels(self, category_ids: Iterable[int]) -> list[int]:
        """Vectorised :meth:`to_label`."""
        return [self.to_label(c) for c in category_ids]

    def to_categories(self, labels: Iterable[int]) -> list[int]:
        """Vectorised :meth:`to_category`."""
        return [self.to_category(label) for label in labels]


def _as_dataset(data: Any) -> dict:
    """Accept a COCO dict or anything with a ``.dataset`` COCO dict (``CocoData``)."""
    dataset = getattr(data, "dataset", data)
    if not isinstance(dataset, Mapping) or "categories" not in dataset or "annotations" not in dataset:
        raise TypeError("expected a COCO dict (with 'categories' and 'annotations') or a CocoData")
    return dataset  # type: ignore[return-value]


def instance_counts(dataset_or_cocodata: Any) -> dict[int, int]:
    """Number of annotations per category id; every listed category appears (possibly with 0)."""
    dataset = _as_dataset(dataset_or_cocodata)
    counts = {int(c["id"]): 0 for c in dataset["categories"]}
    for ann in dataset["annotations"]:
        cid = int(ann["category_id"])
        if cid not in counts:
            raise ValueError(f"annotation id={ann.get('id')}: category_id {cid} is not a listed category")
        counts[cid] += 1
    return counts


def class_ranks(dataset_or_cocodata: Any) -> dict[int, int]:
    """Rank of each category by training-instance count: ``{category_id: rank}``.

    Rank 1 is the most frequent class. Ties are broken by the smaller category id, so the
    ranking is deterministic; classes with zero instances therefore rank last.
    Pass the *training* split: ranks are a property of the training distribution.
    """
    return {cid: rank for rank, cid in enumerate(ranked_category_ids(dataset_or_cocodata), start=1)}


def ranked_category_ids(dataset_or_cocodata: Any) -> list[int]:
    """Category ids ordered by rank (most training instances first, ties by smaller id)."""
    counts = instance_counts(dataset_or_cocodata)
    return sorted(counts, key=lambda cid: (-counts[cid], cid))


#: Dashes that look like "-" but are not (text pasted from a paper or a word processor).
_TYPOGRAPHIC_DASHES = {"\u2013": "en dash", "\u2014": "em dash", "\u2212": "minus sign", "\u2010": "hyphen"}
_PART = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")


def parse_class_range(spec: str | int, num_classes: int) -> list[int]:
    """Turn a class-rank range spec into the sorted list of 1-based ranks it selects.

    Accepted: ``"301-365"``, ``"1-150,301-365"`` (union of parts), a single rank ``301`` or
    ``"301"`` (papermill turns ``-p classes 301`` into an int), ``"all"``; whitespace is ignored.
    Rejected with a ValueError quoting the spec: anything else (``"abc"``), rank 0, reversed
    ranges (``"300-200"``), ranks beyond ``num_classes``, an empty selection, and booleans.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"invalid class range {spec!r}: num_classes must be a positive int, got {num_classes!r}")
    if isinstance(spec, bool) or not isinstance(spec, (str, numbers.Integral)):  # one error type for all
        raise ValueError(  # noqa: TRY004
            f"invalid class range {spec!r}: expected a string such as '301-365' or an int rank, "
            f"got {type(spec).__name__}"
        )
    text = spec.strip() if isinstance(spec, str) else str(int(spec))
    if text.lower() == "all":
        return list(range(1, num_classes + 1))
    if not text:
        raise ValueError(f"invalid class range {spec!r}: empty")
    ranks: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = _PART.match(part)
        if match is None and any(dash in part for dash in _TYPOGRAPHIC_DASHES):
            raise ValueError(
                f"invalid class range {spec!r}: {part!r} contains a typographic dash "
                f"({', '.join(f'{d!r} {n}' for d, n in _TYPOGRAPHIC_DASHES.items() if d in part)}); "
                "write the range with a plain hyphen-minus, e.g. '301-365'"
            )
        if match is None:
            raise ValueError(
                f"invalid class range {spec!r}: {part!r} is not a rank or a range 'a-b' "
                f"(use e.g. '301-365', '1-150,301-365', 301 or 'all')"
            )
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if lo < 1:
            raise ValueError(f"invalid class range {spec!r}: ranks start at 1, got {lo}")
        if hi < lo:
            raise ValueError(f"invalid class range {spec!r}: range {lo}-{hi} is reversed")
        if hi > num_classes:
            raise ValueError(f"invalid class range {spec!r}: rank {hi} exceeds the {num_classes} classes")
        ranks.update(range(lo, hi + 1))
    if not ranks:  # pragma: no cover - every accepted part adds at least one rank
        raise ValueError(f"invalid class range {spec!r}: selects no classes")
    return sorted(ranks)


def ranks_to_category_ids(ranks: Iterable[int], ranking: Mapping[int, int]) -> list[int]:
    """Category ids holding the given ranks, in the order of ``ranks``.

    ``ranking`` is a ``{category_id: rank}`` dict from :func:`class_ranks`. A rank that no
    category holds raises ValueError.
    """
    by_rank = {int(rank): int(cid) for cid, rank in ranking.items()}
    out = []
    for rank in ranks:
        if int(rank) not in by_rank:
            raise ValueError(f"rank {rank} is not held by any category (ranks 1..{len(by_rank)})")
        out.append(by_rank[int(rank)])
    return out
