"""Class ranks, rank-range specs and the category-id <-> label map."""

from __future__ import annotations

import numpy as np
import pytest

from o365lib.data import (
    CocoData,
    LabelMap,
    class_ranks,
    instance_counts,
    parse_class_range,
    ranked_category_ids,
    ranks_to_category_ids,
)


def _dataset(counts: dict[int, int]) -> dict:
    """One image per annotation; ``counts`` maps category id -> number of annotations."""
    images, anns = [], []
    for cid, n in counts.items():
        for _ in range(n):
            k = len(anns) + 1
            images.append({"id": k, "file_name": f"{k}.png", "width": 10, "height": 10})
            anns.append({"id": k, "image_id": k, "category_id": cid, "bbox": [0, 0, 5, 5]})
    cats = [{"id": cid, "name": f"c{cid}"} for cid in counts]
    return {"images": images, "annotations": anns, "categories": cats}


def test_label_map_uses_sorted_ids():
    lm = LabelMap([40, 7, 12])
    assert lm.num_classes == 3 and len(lm) == 3
    assert lm.category_ids == [7, 12, 40]
    assert [lm.to_label(c) for c in (7, 12, 40)] == [1, 2, 3]
    assert lm.to_categories([3, 1]) == [40, 7] and lm.to_labels([12]) == [2]
    assert LabelMap([12, 40, 7]) == lm and hash(LabelMap([12, 40, 7])) == hash(lm)
    with pytest.raises(KeyError, match="category id 5"):
        lm.to_label(5)
    with pytest.raises(KeyError, match="0 is the background"):
        lm.to_category(0)
    with pytest.raises(KeyError):
        lm.to_category(4)
    with pytest.raises(ValueError, match="duplicate"):
        LabelMap([1, 1, 2])


def test_class_ranks_by_count_ties_by_smaller_id_zero_last():
    data = _dataset({5: 2, 9: 7, 3: 2, 8: 0, 1: 0, 4: 3})
    assert ranked_category_ids(data) == [9, 4, 3, 5, 1, 8]
    assert class_ranks(data) == {9: 1, 4: 2, 3: 3, 5: 4, 1: 5, 8: 6}
    assert instance_counts(data) == {5: 2, 9: 7, 3: 2, 8: 0, 1: 0, 4: 3}


def test_class_ranks_accepts_cocodata():
    raw = _dataset({2: 1, 1: 3})
    assert class_ranks(CocoData.from_dataset(raw, image_root=".")) == {1: 1, 2: 2}


def test_class_ranks_rejects_unlisted_category():
    data = _dataset({1: 1})
    data["annotations"][0]["category_id"] = 2
    with pytest.raises(ValueError, match="annotation id=1: category_id 2"):
        class_ranks(data)
    with pytest.raises(TypeError):
        class_ranks([1, 2])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("301-365", list(range(301, 366))),
        ("1-150,301-365", list(range(1, 151)) + list(range(301, 366))),
        (301, [301]),
        ("301", [301]),
        ("all", list(range(1, 366))),
        (" ALL ", list(range(1, 366))),
        (" 1 - 3 , 10 ", [1, 2, 3, 10]),
        ("5-7,6-8", [5, 6, 7, 8]),
        ("365", [365]),
        (np.int64(7), [7]),
    ],
)
def test_parse_class_range_accepts(spec, expected):
    assert parse_class_range(spec, 365) == expected


def test_parse_class_range_tail_has_65_ranks():
    assert len(parse_class_range("301-365", 365)) == 65


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("abc", "is not a rank or a range"),
        ("0-5", "ranks start at 1"),
        (0, "ranks start at 1"),
        ("300-200", "reversed"),
        ("300-366", "exceeds the 365 classes"),
        (400, "exceeds the 365 classes"),
        ("", "empty"),
        ("  ", "empty"),
        ("1-5,", "is not a rank or a range"),
        ("-5", "is not a rank or a range"),
        (-3, "is not a rank or a range"),
        ("3.5", "is not a rank or a range"),
        (True, "got bool"),
        (3.0, "got float"),
        (None, "got NoneType"),
    ],
)
def test_parse_class_range_rejects_quoting_the_spec(spec, reason):
    with pytest.raises(ValueError) as info:
        parse_class_range(spec, 365)
    message = str(info.value)
    assert message.startswith(f"invalid class range {spec!r}:"), message
    assert reason in message


def test_parse_class_range_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        parse_class_range("1-3", 0)


def test_ranks_to_category_ids_keeps_rank_order():
    ranking = {50: 2, 7: 1, 9: 3}
    assert ranks_to_category_ids([3, 1], ranking) == [9, 7]
    assert ranks_to_category_ids(parse_class_range("all", 3), ranking) == [7, 50, 9]
    with pytest.raises(ValueError, match="rank 4"):
        ranks_to_category_ids([4], ranking)


@pytest.mark.parametrize(("spec", "name"), [("301–365", "en dash"), ("301—365", "em dash"), ("301−365", "minus sign")])
def test_typographic_dashes_are_named(spec, name):
    with pytest.raises(ValueError, match=f"typographic dash .*{name}.*plain hyphen-minus"):
        parse_class_range(spec, 365)
