"""Rank-range table and example-class picking on a hand-made data set with known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from o365lib.book.studies.tail_tour import (
    class_appearance,
    extreme_classes,
    pick_example_classes,
    range_summary,
    tail_class_table,
)


def _dataset():
    """4 classes on 100x100 images: 1 frequent, 2 small & clustered, 3 large & alone, 4 medium."""
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in range(1, 8)]
    anns, aid = [], 0

    def add(image_id, cat, size, n=1):
        nonlocal aid
        for _ in range(n):
            aid += 1
            anns.append({"id": aid, "image_id": image_id, "category_id": cat, "bbox": [0, 0, size, size],
                         "area": size * size, "iscrowd": 0})

    for image_id in (1, 2, 3, 4):
        add(image_id, 1, 20, n=3)  # 12 instances of class 1
    add(5, 2, 5, n=4)              # class 2: 4 tiny boxes in one image
    add(6, 3, 80)                  # class 3: one large box
    add(7, 4, 30)
    add(7, 4, 30)                  # class 4: 2 medium boxes
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3, 4)]
    return {"images": images, "annotations": anns, "categories": cats}


def _stats():
    return pd.DataFrame({"category_id": [1, 2, 4, 3], "name": ["c1", "c2", "c4", "c3"], "rank": [1, 2, 3, 4],
                         "instances": [12, 4, 2, 1], "images": [4, 1, 1, 1]})


def test_range_summary_numbers():
    table = range_summary(_stats(), ranges=["1-1", "2-4"])
    assert table.loc["1-1"].to_dict() == {"classes": 1, "instances": 12, "share %": 63.16, "max per class": 12,
                                          "min per class": 12, "median per class": 12.0}
    assert table.loc["2-4", "instances"] == 7 and table.loc["2-4", "median per class"] == 2.0
    with pytest.raises(ValueError, match="missing columns"):
        range_summary(pd.DataFrame({"rank": [1]}), ranges=["1-1"])


def test_class_appearance():
    table = class_appearance(_dataset(), _stats()).set_index("category_id")
    assert table.loc[2, "median_rel_size"] == 0.05 and table.loc[3, "median_rel_size"] == 0.8
    assert table.loc[1, "objects_per_image"] == 3.0 and table.loc[2, "objects_per_image"] == 4.0


def test_pick_example_classes_hard_and_easy_tail():
    picked = pick_example_classes(_dataset(), _stats(), head="1-1", tail="2-4", per_group=1)
    assert picked["group"].tolist() == ["head", "tail: small, clustered", "tail: large, plain"]
    assert picked["category_id"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="per_group"):
        pick_example_classes(_dataset(), _stats(), per_group=0)


def test_picks_agree_with_the_synthetic_styles(tmp_path):
    """On the smoke synthetic data the picked tail classes are the ones generated small/large."""
    from o365lib.data import load_coco, tail_stats
    from o365lib.data.synthetic import make_dataset

    paths = make_dataset(tmp_path, profile="smoke", seed=0)
    train = load_coco(paths.train, image_root=paths.images)
    stats = tail_stats(train)
    picked = pick_example_classes(train, stats, per_group=2).merge(stats[["category_id", "style"]])
    assert picked["rank"].tolist()[:2] == [1, 2]
    assert set(picked[picked.group == "tail: small, clustered"]["style"]) == {"small_clustered"}
    assert set(picked[picked.group == "tail: large, plain"]["style"]) == {"large_plain"}
    assert (picked[picked.group != "head"]["rank"] >= 301).all()


def _per_class():
    return pd.DataFrame({"category_id": [1, 2, 4, 3, 9], "name": ["c1", "c2", "c4", "c3", "c9"],
                         "rank": [1, 2, 3, 4, None], "ap": [50.0, 0.0, 0.0, 70.0, float("nan")]})


def test_tail_class_table():
    table = tail_class_table(_per_class(), _dataset(), spec="2-4")
    assert table["category_id"].tolist() == [2, 4, 3]
    assert table["instances"].tolist() == [4, 2, 1] and table["images"].tolist() == [1, 1, 1]
    assert table["mean box area"].tolist() == [25.0, 900.0, 6400.0]
    assert table["objects per image"].tolist() == [4.0, 2.0, 1.0]
    assert "style" not in table
    with pytest.raises(ValueError, match="missing columns"):
        tail_class_table(pd.DataFrame({"rank": [1]}), _dataset())


def test_extreme_classes():
    table = tail_class_table(_per_class(), _dataset(), spec="1-4")
    picked = extreme_classes(table, per_group=2)
    assert picked["group"].tolist() == ["hardest", "hardest", "easiest", "easiest"]
    assert picked["category_id"].tolist() == [2, 4, 3, 1]  # equal AP 0: the smaller boxes are harder
    assert extreme_classes(table, per_group=3)["category_id"].tolist() == [2, 4, 1, 3]  # no class twice
    with pytest.raises(ValueError):
        extreme_classes(table, per_group=0)
