"""Tail statistics, the imbalance table, class-range subsets and example-image picking."""

from __future__ import annotations

import pytest

from o365lib.data import (
    CocoData,
    example_image_ids,
    imbalance_table,
    tail_stats,
)


def _dataset() -> dict:
    """Category 7 (rank 1): 5 instances in 3 images; 3 (rank 2): 2 in 2; 5 (rank 3): 1; 6: none."""
    anns = [(1, 7), (1, 7), (2, 7), (3, 7), (3, 7), (2, 3), (4, 3), (4, 5)]
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 50, "height": 50} for i in (1, 2, 3, 4, 5)],
        "annotations": [{"id": k + 1, "image_id": img, "category_id": cid, "bbox": [k, k, 4, 4]}
                        for k, (img, cid) in enumerate(anns)],
        "categories": [{"id": cid, "name": name} for cid, name in
                       [(3, "scallop"), (5, "okra"), (6, "pitaya"), (7, "person")]],
    }


def test_tail_stats_sorted_by_rank():
    df = tail_stats(_dataset())
    assert list(df.columns) == ["category_id", "name", "rank", "instances", "images"]
    assert df["category_id"].tolist() == [7, 3, 5, 6]
    assert df["rank"].tolist() == [1, 2, 3, 4]
    assert df["instances"].tolist() == [5, 2, 1, 0]
    assert df["images"].tolist() == [3, 2, 1, 0]
    assert df["name"].tolist() == ["person", "scallop", "okra", "pitaya"]


def test_tail_stats_with_a_given_ranking_and_style_column():
    data = _dataset()
    data["categories"][0]["style"] = "small_clustered"
    ranking = {7: 4, 3: 3, 5: 2, 6: 1}
    df = tail_stats(CocoData.from_dataset(data, image_root="."), ranking=ranking)
    assert df["category_id"].tolist() == [6, 5, 3, 7]
    assert df.loc[df.category_id == 3, "style"].item() == "small_clustered"
    with pytest.raises(ValueError, match="no rank"):
        tail_stats(data, ranking={7: 1})


def test_imbalance_table_has_the_talks_numbers_and_this_data():
    table = imbalance_table(_dataset(), name="toy")
    assert list(table.index) == ["Max #Instance", "Min #Instance", "Max / Min"]
    assert list(table.columns) == ["COCO", "Objects365", "toy"]
    assert table["COCO"].tolist() == [262465, 198, 1326]
    assert table["Objects365"].tolist() == [2120895, 28, 75746]
    assert table["toy"].tolist() == [5, 1, 5]  # the zero-instance class is left out of the minimum
    assert round(262465 / 198) == 1326 and round(2120895 / 28) == 75746


def test_imbalance_table_default_name_and_empty():
    assert "this data" in imbalance_table(_dataset()).columns
    empty = _dataset()
    empty["annotations"] = []
    with pytest.raises(ValueError, match="no annotations"):
        imbalance_table(empty)




def test_example_image_ids_prefers_most_instances_without_repeats():
    data = _dataset()
    assert example_image_ids(data, [7, 3], per_class=1) == [1, 2]  # image 1 (tie with 3, smaller id)
    assert example_image_ids(data, [7, 3], per_class=2) == [1, 3, 2, 4]
    assert example_image_ids(data, [3, 7], per_class=1) == [2, 1]
    assert example_image_ids(data, [6, 5], per_class=1) == [4]  # pitaya has no images
