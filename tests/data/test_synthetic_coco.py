"""The synthetic stand-in for COCO: classes disjoint from the 365, deterministic, written whole or not at all."""

from __future__ import annotations

import json

import pytest

from o365lib.data.synthetic_coco import (
    FIRST_ID,
    CocoStandinSpec,
    coco_standin_is_current,
    make_coco_standin,
    plan_coco_standin,
    standin_categories,
    standin_counts,
)
from o365lib.data.synthetic_plan import build_categories

SMALL = CocoStandinSpec(num_classes=6, most=12, fewest=3, val_per_class=2, min_objects=2, max_objects=5)


def test_classes_are_disjoint_from_the_detection_classes_by_name_shape_and_id():
    detection, _ = build_categories(0)
    cats = standin_categories(CocoStandinSpec())
    assert len(cats) == 80 and len({c["name"] for c in cats}) == 80
    assert {c["name"] for c in cats}.isdisjoint({c["name"] for c in detection})
    assert {c["shape"] for c in cats}.isdisjoint({c["shape"] for c in detection})
    assert min(c["id"] for c in cats) == FIRST_ID and max(c["id"] for c in detection) < FIRST_ID


def test_counts_decay_from_most_to_fewest_and_every_class_has_val_instances():
    counts = standin_counts(CocoStandinSpec())
    train = sorted(counts["train"].values(), reverse=True)
    assert train[0] == 500 and train[-1] == 50 and len(train) == 80
    assert set(counts["val"].values()) == {10}
    plan = plan_coco_standin(SMALL)
    for split, wanted in standin_counts(SMALL).items():
        got: dict = {}
        for ann in plan[split]["annotations"]:
            got[ann["category_id"]] = got.get(ann["category_id"], 0) + 1
        assert got == wanted, split
    # the two splits share no image id, so one image folder holds both
    assert not {i["id"] for i in plan["train"]["images"]} & {i["id"] for i in plan["val"]["images"]}


def test_spec_rejects_impossible_values():
    with pytest.raises(ValueError, match="num_classes"):
        CocoStandinSpec(num_classes=0)
    with pytest.raises(ValueError, match="fewest"):
        CocoStandinSpec(most=3, fewest=5)
    with pytest.raises(ValueError, match="size_scale"):
        CocoStandinSpec(size_scale=0.0)


def test_size_scale_draws_larger_objects_like_the_detection_set():
    def mean_side(spec):
        boxes = [a["bbox"] for a in plan_coco_standin(spec)["train"]["annotations"]]
        return sum(max(b[2], b[3]) for b in boxes) / len(boxes)

    wide = CocoStandinSpec(num_classes=6, most=12, fewest=3, val_per_class=2, min_objects=2, max_objects=5,
                           size_scale=1.5)
    assert mean_side(wide) > 1.2 * mean_side(SMALL)


def test_make_writes_a_complete_folder_reused_and_byte_identical(tmp_path):
    first = make_coco_standin(tmp_path / "a", SMALL)
    assert coco_standin_is_current(first, SMALL) and not coco_standin_is_current(first, CocoStandinSpec())
    train = json.loads((first / "train.json").read_text())
    assert len(list((first / "images").iterdir())) == len(train["images"]) + len(
        json.loads((first / "val.json").read_text())["images"])
    stamp = (first / "manifest.json").stat().st_mtime_ns
    make_coco_standin(first, SMALL)  # current: reused, not rewritten
    assert (first / "manifest.json").stat().st_mtime_ns == stamp
    second = make_coco_standin(tmp_path / "b", SMALL)
    for name in ("train.json", "val.json", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    image = min((first / "images").iterdir()).name
    assert (first / "images" / image).read_bytes() == (second / "images" / image).read_bytes()
    # a damaged image makes the folder stale: it is made again
    (first / "images" / image).write_bytes(b"")
    assert not coco_standin_is_current(first, SMALL)
    make_coco_standin(first, SMALL)
    assert coco_standin_is_current(first, SMALL)


def test_a_foreign_folder_is_refused_and_kept(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        make_coco_standin(foreign, SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"
