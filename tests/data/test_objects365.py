"""Objects365 v1 and v2 as downloaded, on small releases made here: layouts, skips, drops, checks.

Each fixture has the problems of the real files: an image listed but missing, an image whose
real height differs from the JSON's, an exact duplicate box, a zero-area and an inverted box, a
box reaching outside its image, val listing categories in another order than train, class-name
typos, and (v2) ``isfake`` / ``isreflected`` fields plus the three images the release lists but
does not ship.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from PIL import Image

from o365lib.data import DataValidationError, DataWarning, DetectionDataset, load_coco
from o365lib.data.check import check_dataset
from o365lib.data.objects365 import (
    KNOWN_MISSING,
    class_name_issue,
    detect_layout,
    normalize_class_name,
    relative_image_name,
)

CATEGORIES = [{"id": 1, "name": "Person"}, {"id": 2, "name": "Bakset"}, {"id": 3, "name": "Formula 1 "}]
KNOWN = sorted(KNOWN_MISSING)


def _name(version: str, split: str, image_id: int) -> str:
    if version == "v1":
        return f"obj365_{split}_{image_id:012d}.jpg"
    return f"images/{'v1' if split == 'train' else 'v2'}/patch{image_id % 2}/objects365_v1_{image_id:08d}.jpg"


def _on_disk(version: str, name: str) -> str:
    return name if version == "v1" else "/".join(name.split("/")[-2:])


def _ann(aid: int, image_id: int, category_id: int, bbox: list, **extra) -> dict:
    return {"id": aid, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0, **extra}


def make_release(root: Path, version: str) -> dict:
    """Write a two-split release in the downloaded layout; return its json files and image folders."""
    prefix = "objects365" if version == "v1" else "zhiyuan_objv2"
    (root / "annotations").mkdir(parents=True)
    train_images = [{"id": i, "file_name": _name(version, "train", i), "width": 64, "height": 48}
                    for i in range(1, 7)]
    anns = [
        _ann(1, 1, 1, [1, 1, 10, 10]),
        _ann(2, 1, 1, [1, 1, 10, 10]),  # exact duplicate of 1
        _ann(3, 2, 2, [5, 5, 20, 10]),
        _ann(4, 2, 2, [5, 5, 0, 10]),  # zero-area
        _ann(5, 3, 3, [30, 20, -5, 10]),  # inverted
        _ann(6, 3, 1, [50, 40, 30, 30]),  # reaches outside 64x48: clipped
        _ann(7, 4, 2, [0, 0, 64, 48]),
        _ann(8, 6, 1, [2, 2, 8, 8]),
        _ann(9, 5, 3, [1, 1, 5, 5]),
    ]
    if version == "v2":
        for ann in anns:
            ann.update(isfake=int(ann["id"] == 3), isreflected=int(ann["id"] in (7, 8)))
        for k, key in enumerate(KNOWN):
            train_images.append({"id": 101 + k, "file_name": f"images/v1/{key}", "width": 64, "height": 48})
            anns.append(_ann(101 + k, 101 + k, 1, [1, 1, 5, 5], isfake=0, isreflected=0))
    train = {"images": train_images, "annotations": anns, "categories": CATEGORIES}
    val_images = [{"id": i, "file_name": _name(version, "val", i), "width": 64, "height": 48} for i in (1, 2)]
    val = {"images": val_images, "annotations": [_ann(1, 1, 3, [0, 0, 8, 8]), _ann(2, 2, 1, [4, 4, 8, 8])],
           "categories": [CATEGORIES[2], CATEGORIES[0], CATEGORIES[1]]}  # another order than train's
    files = {"train": root / "annotations" / f"{prefix}_train.json", "val": root / "annotations" / f"{prefix}_val.json"}
    roots = {"train": root / "train", "val": root / "val"}
    for split, data in (("train", train), ("val", val)):
        files[split].write_text(json.dumps(data))
        for img in data["images"]:
            if (split, img["id"]) == ("train", 5) or img["id"] > 100:
                continue  # missing (id 5) and the release's known missing images
            path = roots[split] / _on_disk(version, img["file_name"])
            path.parent.mkdir(parents=True, exist_ok=True)
            height = 40 if (split, img["id"]) == ("train", 6) else 48  # the JSON says 48
            Image.new("RGB", (64, height), (90, 60, 30)).save(path)
    return {"files": files, "roots": roots, "train": train}


@pytest.fixture(params=["v1", "v2"])
def release(request, tmp_path):
    made = make_release(tmp_path, request.param)
    made["version"] = request.param
    return made


def _load(release, split="train", **kwargs):
    options = {"box_policy": "drop", "check_images": "lazy", **kwargs}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_coco(release["files"][split], image_root=release["roots"][split], **options)
    return data, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def test_loads_with_drops_duplicates_and_skips_counted_and_warned(release):
    data, messages = _load(release)
    report = data.report
    assert data.layout == ("coco" if release["version"] == "v1" else "objects365_v2")
    assert report.dropped_ids == {"zero-area": [4], "inverted": [5]}
    assert report.duplicate_ids == [2] and report.num_images_with_duplicates == 1
    assert not report.duplicates_dropped and 2 in {a["id"] for a in data.anns_by_image[1]}
    assert report.num_clipped == 1 and data.anns_by_image[3][0]["bbox"] == [50.0, 40.0, 14.0, 8.0]
    assert sorted(data.images) == [1, 2, 3, 4, 5, 6]
    text = "\n".join(messages)
    assert "dropped 2 box(es) under box_policy='drop' (1 inverted, 1 zero-area" in text
    assert "1 exact duplicate annotation(s) in 1 image(s), kept" in text
    if release["version"] == "v2":
        assert report.skipped_images == [f"images/v1/{key}" for key in KNOWN]
        assert report.num_skipped_annotations == 3
        assert all(f"images/v1/{key}" in text for key in KNOWN)
        assert data.anns_by_image[2][0]["isfake"] == 1  # extra fields are kept as given
    else:
        assert report.skipped_images == [] and "skipped" not in text
    dropped, _ = _load(release, duplicates="drop")
    assert dropped.report.duplicates_dropped and [a["id"] for a in dropped.anns_by_image[1]] == [1]


def test_val_lists_categories_in_another_order_and_maps_by_id(release):
    train, _ = _load(release)
    val, _ = _load(release, split="val", check_images="full")
    assert [c["id"] for c in val.dataset["categories"]] == [3, 1, 2]
    assert val.label_map.to_label(3) == train.label_map.to_label(3) == 3
    assert val.categories[2]["name"] == "Bakset"  # names are kept exactly as given


def test_clip_policy_names_every_degenerate_box(release):
    with pytest.raises(DataValidationError) as info:
        _load(release, box_policy="clip")
    message = str(info.value)
    assert message.startswith(str(release["files"]["train"])) and "2 problems" in message
    assert "annotation id=4: field 'bbox' width and height must be > 0, got w=0 h=10 (zero-area" in message
    assert "annotation id=5: field 'bbox' width and height must be > 0, got w=-5 h=10 (inverted" in message
    assert "box_policy='drop' drops such boxes" in message


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_up_front_checks_fail_at_load_naming_json_image_and_field(release, mode):
    with pytest.raises(DataValidationError) as info:
        _load(release, check_images=mode)
    message = str(info.value)
    missing = _name(release["version"], "train", 5)
    assert message.startswith(str(release["files"]["train"]))
    assert f"image id=5: field 'file_name' {missing!r} not found" in message
    wrong = "image id=6: field 'height' says 64x48 but file"
    assert wrong in message  # quick reads every header too
    assert "objects365_v2_00908726" not in message  # known missing images were skipped, not reported


def test_dataset_resolves_v2_names_and_checks_each_image_at_first_read(release):
    data, _ = _load(release)
    dataset = DetectionDataset(data, cache_images=False)
    image, target = dataset[0]
    assert image.shape == (3, 48, 64) and target["image_id"] == 1
    assert dataset.image_path(0) == release["roots"]["train"] / _on_disk(release["version"], _name(
        release["version"], "train", 1))
    with pytest.raises(DataValidationError, match=r"image id=5: field 'file_name' .* not found"):
        dataset[4]
    with pytest.raises(DataValidationError) as info:
        dataset[5]
    assert str(info.value).startswith(str(release["files"]["train"]))
    assert "image id=6: field 'height' says 64x48" in str(info.value) and "is 64x40" in str(info.value)


def test_check_dataset_names_every_problem(release):
    corrupt = release["roots"]["train"] / _on_disk(release["version"], _name(release["version"], "train", 4))
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    report = check_dataset(release["files"], release["roots"], sample=100)
    train = report.splits["train"]
    assert train.release == release["version"] and train.num_images == 6 and train.num_boxes == 7
    assert (train.max_instances, train.min_instances) == (4, 1)  # after drops (duplicate kept): 4, 2, 1
    assert train.missing_images == [_name(release["version"], "train", 5)]
    assert len(report.errors) == 3 and train.decoded == 5
    errors = "\n".join(report.errors)
    assert "train: image id=5: field 'file_name'" in errors and "not found" in errors
    assert "train: image id=6: field 'height' says 64x48 but file" in errors
    assert "train: image id=4: field 'file_name'" in errors and "cannot be decoded" in errors
    text = report.text()
    for expected in [
        "1 zero-area box(es) dropped (box_policy='drop'): annotation id 4",
        "1 inverted box(es) dropped (box_policy='drop'): annotation id 5",
        "1 exact duplicate annotation(s) in 1 image(s), kept: annotation id 2",
        "1 box(es) clipped to their image: annotation id 6",
        "val lists its 3 categories in a different order from train",
        "category id=2 name 'Bakset' (known typo) kept as given; matches as 'basket'",
        "category id=3 name 'Formula 1 ' (stray spaces) kept as given; matches as 'formula 1'",
        "instances per class: max 4, min 1, max/min 4",
        "5 of 6 present",
        "FAILED: 3 error(s)",
    ]:
        assert expected in text, (expected, text)
    if release["version"] == "v2":
        assert "layout objects365_v2" in text
        assert "isfake: 1 of 7 annotations marked" in text and "isreflected: 2 of 7 annotations marked" in text
        assert all(f"images/v1/{key}" in text for key in KNOWN) and "skipped 3 image(s)" in text
    else:
        assert "isfake" not in text and "skipped" not in text
    assert report.splits["val"].errors == []


def test_check_dataset_reports_an_invalid_file_and_goes_on(tmp_path):
    made = make_release(tmp_path, "v1")
    report = check_dataset(made["files"], made["roots"], box_policy="clip", sample=0)
    assert report.splits["train"].num_images == 0 and report.splits["val"].num_images == 2
    assert any("annotation id=4: field 'bbox'" in e and "zero-area" in e for e in report.errors)
    assert any("annotation id=5: field 'bbox'" in e and "inverted" in e for e in report.errors)
    broken = tmp_path / "annotations" / "broken.json"
    broken.write_text("{")
    report = check_dataset({"train": broken}, {})
    assert report.errors and "malformed JSON at line 1" in report.errors[0]


def test_clean_release_passes(tmp_path):
    made = make_release(tmp_path, "v2")
    train = made["train"]
    train["images"] = [img for img in train["images"] if img["id"] in (1, 2, 3, 4)]
    train["annotations"] = [a for a in train["annotations"] if a["id"] in (1, 3, 6, 7)]
    made["files"]["train"].write_text(json.dumps(train))
    report = check_dataset(made["files"], made["roots"], sample=2)
    assert report.errors == []
    assert report.text().splitlines()[-1] == "OK: no errors in what was checked (4 image(s) decoded, 2 header only, 0 not opened)"
    assert report.splits["train"].decoded == 2 and report.splits["train"].headers_read == 2


def test_layout_and_names():
    assert relative_image_name("images/v1/patch8/objects365_v1_00420917.jpg", layout="objects365_v2") == \
        "patch8/objects365_v1_00420917.jpg"
    assert relative_image_name("images/v1/patch8/x.jpg", layout="coco") == "images/v1/patch8/x.jpg"
    assert relative_image_name("other/x.jpg", layout="objects365_v2") == "other/x.jpg"
    with pytest.raises(ValueError, match="layout"):
        relative_image_name("x.jpg", layout="v3")
    assert normalize_class_name("Bakset") == "basket" and normalize_class_name("Ballon") == "balloon"
    assert normalize_class_name("Tape Measur/ Ruler") == "tape measure/ruler"
    assert normalize_class_name(" Formula  1 ") == "formula 1" == normalize_class_name("formula 1")
    assert class_name_issue("Person") is None and class_name_issue("Moniter/TV") == "known typo"


def test_layout_is_coco_when_the_json_tree_is_kept(tmp_path):
    names = ["images/v1/patch0/a.jpg", "images/v1/patch1/b.jpg"]
    assert detect_layout(names, image_root=tmp_path) == "objects365_v2"
    (tmp_path / "images").mkdir()
    assert detect_layout(names, image_root=tmp_path) == "coco"
    assert detect_layout(["a.jpg", *names], image_root=tmp_path / "x") == "coco"
