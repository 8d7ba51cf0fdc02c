"""Loading and validating COCO JSON: every bad input names the file, the record and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from PIL import Image

from o365lib.data import CocoData, DataValidationError, LabelMap, load_coco, validate_coco


def _dataset() -> dict:
    """Two 100x80 images, three categories (ids not 1..3), four annotations."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
            {"id": 2, "file_name": "b.png", "width": 100, "height": 80},
        ],
        "categories": [
            {"id": 30, "name": "okra"},
            {"id": 10, "name": "person"},
            {"id": 20, "name": "donkey"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 10, "bbox": [10, 10, 20, 30], "area": 600, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 30, "bbox": [50, 5, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 10, "bbox": [0, 0, 100, 80], "area": 8000, "iscrowd": 0},
            {"id": 17, "image_id": 2, "category_id": 20, "bbox": [5, 5, 30, 30]},
        ],
    }


def _write(tmp_path: Path, data, name: str = "train.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=1))
    return path


def _error(tmp_path: Path, data, **kwargs) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(DataValidationError) as info:
        load_coco(path, **{"check_images": "off", **kwargs})
    message = str(info.value)
    assert str(path) in message, message
    return message


def test_load_indexes_by_id_and_fills_defaults(tmp_path):
    data = load_coco(_write(tmp_path, _dataset()), check_images="off")
    assert data.category_ids == [10, 20, 30]
    assert data.categories[30]["name"] == "okra"
    assert [a["id"] for a in data.anns_by_image[1]] == [1, 2]
    assert data.num_clipped == 0
    ann17 = data.anns_by_image[2][1]
    assert ann17["area"] == 900.0 and ann17["iscrowd"] == 0  # filled
    assert data.report.num_area_filled == 1
    assert data.label_map.to_label(10) == 1 and data.label_map.to_label(30) == 3
    assert data.image_root == tmp_path  # no images/ folder next to the JSON


def test_image_root_defaults_to_images_folder(tmp_path):
    (tmp_path / "images").mkdir()
    assert load_coco(_write(tmp_path, _dataset()), check_images="off").image_root == tmp_path / "images"


def test_shuffled_category_order_maps_by_id(tmp_path):
    train = _dataset()
    val = copy.deepcopy(train)
    val["categories"] = list(reversed(val["categories"]))
    a = load_coco(_write(tmp_path, train, "train.json"), check_images="off")
    b = load_coco(_write(tmp_path, val, "val.json"), check_images="off")
    assert a.label_map == b.label_map
    for cid in (10, 20, 30):
        assert a.label_map.to_label(cid) == b.label_map.to_label(cid)
        assert a.categories[cid]["name"] == b.categories[cid]["name"]
    # position-based mapping would have swapped okra and donkey
    assert [c["id"] for c in b.dataset["categories"]] == [20, 10, 30]


def test_input_dict_is_not_modified():
    raw = _dataset()
    raw["annotations"][0]["bbox"] = [90, 70, 20, 20]
    before = copy.deepcopy(raw)
    clean, report = validate_coco(raw, source="mem", box_policy="clip")
    assert raw == before
    assert clean["annotations"][0]["bbox"] == [90.0, 70.0, 10.0, 10.0]
    assert report.num_clipped == 1 and report.clipped_ids == [1]


def test_malformed_json_names_line_and_column(tmp_path):
    message = _error(tmp_path, '{"images": [\n  {"id": 1,,}\n]}')
    assert "malformed JSON at line 2 column" in message


def test_missing_file(tmp_path):
    with pytest.raises(DataValidationError, match="file not found"):
        load_coco(tmp_path / "nope.json")


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_missing_top_level_key(tmp_path, key):
    data = _dataset()
    del data[key]
    assert f"missing top-level key '{key}'" in _error(tmp_path, data)


@pytest.mark.parametrize(
    ("kind", "index", "key", "record"),
    [("images", 0, "width", "image id=1"), ("annotations", 3, "bbox", "annotation id=17"),
     ("annotations", 1, "category_id", "annotation id=2"), ("categories", 2, "name", "category id=20")],
)
def test_missing_record_key(tmp_path, kind, index, key, record):
    data = _dataset()
    del data[kind][index][key]
    message = _error(tmp_path, data)
    assert f"{record}: missing field {key}" in message


def test_record_without_id_named_by_position(tmp_path):
    data = _dataset()
    del data["annotations"][2]["id"]
    assert "annotation at position 2: missing field id" in _error(tmp_path, data)


@pytest.mark.parametrize("bbox", [[10, 10, 0, 5], [10, 10, 5, -3]])
def test_non_positive_box_size(tmp_path, bbox):
    data = _dataset()
    data["annotations"][3]["bbox"] = bbox
    message = _error(tmp_path, data)
    assert "annotation id=17: field 'bbox' width and height must be > 0" in message


def test_malformed_bbox(tmp_path):
    data = _dataset()
    data["annotations"][3]["bbox"] = [1, 2, 3]
    assert "annotation id=17: field 'bbox' must be [x, y, w, h]" in _error(tmp_path, data)


def test_box_outside_image_clip_counts(tmp_path):
    data = _dataset()
    data["annotations"][3]["bbox"] = [-5, 70, 30, 30]  # left and bottom edges outside 100x80
    loaded = load_coco(_write(tmp_path, data), box_policy="clip", check_images="off")
    ann = loaded.anns_by_image[2][1]
    assert ann["bbox"] == [0.0, 70.0, 25.0, 10.0]
    assert ann["area"] == 250.0
    assert loaded.num_clipped == 1


def test_box_outside_image_reject(tmp_path):
    data = _dataset()
    data["annotations"][3]["bbox"] = [90, 10, 20, 10]
    message = _error(tmp_path, data, box_policy="reject")
    assert "annotation id=17: field 'bbox' [90, 10, 20, 10] lies outside image id=2 (100x80)" in message


def test_box_entirely_outside_is_an_error_even_when_clipping(tmp_path):
    data = _dataset()
    data["annotations"][3]["bbox"] = [120, 10, 20, 10]
    assert "annotation id=17: field 'bbox'" in _error(tmp_path, data, box_policy="clip")


def test_unknown_category_and_image(tmp_path):
    data = _dataset()
    data["annotations"][3]["category_id"] = 99
    data["annotations"][1]["image_id"] = 7
    message = _error(tmp_path, data)
    assert "annotation id=17: field 'category_id' 99 is not a listed category id" in message
    assert "annotation id=2: field 'image_id' 7 is not a listed image id" in message
    assert "2 problems" in message


@pytest.mark.parametrize(("kind", "record"), [("images", "image id=1"), ("annotations", "annotation id=1"),
                                              ("categories", "category id=30")])
def test_duplicate_ids(tmp_path, kind, record):
    data = _dataset()
    data[kind].append(copy.deepcopy(data[kind][0]))
    assert f"{record}: field 'id' is a duplicate" in _error(tmp_path, data)


def test_bad_image_size(tmp_path):
    data = _dataset()
    data["images"][1]["height"] = 0
    assert "image id=2: field 'height' must be a positive number" in _error(tmp_path, data)


def test_many_problems_are_listed_with_a_count(tmp_path):
    data = _dataset()
    for k in range(20):
        data["annotations"].append({"id": 100 + k, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]})
    message = _error(tmp_path, data)
    assert message.count("not a listed category id") == 11  # headline + 10 listed
    assert "and 10 more" in message and "20 problems" in message


def _with_images(tmp_path: Path, present: list[str]) -> Path:
    (tmp_path / "images").mkdir()
    for name in present:
        Image.new("RGB", (100, 80)).save(tmp_path / "images" / name)
    return _write(tmp_path, _dataset())


@pytest.mark.parametrize("mode", ["quick", "eager", "full"])
def test_check_images_up_front_reports_all_missing(tmp_path, mode):
    path = _with_images(tmp_path, present=[])
    with pytest.raises(DataValidationError) as info:
        load_coco(path, check_images=mode)
    message = str(info.value)
    assert str(path) in message and "2 of 2 image files missing" in message
    assert "'a.png', 'b.png'" in message and "file_name" in message
    assert "image id=1: field 'file_name' 'a.png' not found" in message
    assert "image id=2: field 'file_name' 'b.png' not found" in message


def test_quick_is_the_default_and_fails_at_load_time(tmp_path):
    path = _with_images(tmp_path, present=["a.png"])
    with pytest.raises(DataValidationError, match=r"1 of 2 image files missing.*'b.png'"):
        load_coco(path)


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_quick_and_full_compare_the_real_size_with_the_json(tmp_path, mode):
    path = _with_images(tmp_path, present=["a.png", "b.png"])
    assert load_coco(path, check_images=mode).image_ids == [1, 2]
    Image.new("RGB", (100, 60)).save(tmp_path / "images" / "b.png")  # JSON says 100x80
    with pytest.raises(DataValidationError) as info:
        load_coco(path, check_images=mode)
    message = str(info.value)
    assert str(path) in message and "1 problem" in message
    assert "image id=2: field 'height' says 100x80 but file" in message and "is 100x60" in message
    (tmp_path / "images" / "a.png").write_bytes(b"not an image")
    with pytest.raises(DataValidationError, match=r"image id=1: field 'file_name' .*a\.png is not a readable image"):
        load_coco(path, check_images=mode)


def test_check_images_lazy_and_off(tmp_path):
    path = _with_images(tmp_path, present=["a.png"])
    for mode in ("lazy", "off"):
        data = load_coco(path, check_images=mode)
        assert data.image_path(1, must_exist=True) == tmp_path / "images" / "a.png"
    with pytest.raises(DataValidationError, match=r"image id=2: field 'file_name' 'b.png' not found"):
        data.image_path(2, must_exist=True)
    assert data.image_path(2) == tmp_path / "images" / "b.png"  # no check without must_exist


def test_bad_policy_arguments(tmp_path):
    path = _write(tmp_path, _dataset())
    with pytest.raises(ValueError, match="box_policy"):
        load_coco(path, box_policy="ignore")
    with pytest.raises(ValueError, match="check_images"):
        load_coco(path, check_images="sometimes")


def test_loader_writes_nothing(tmp_path):
    path = _write(tmp_path, _dataset())
    before = sorted(p.name for p in tmp_path.iterdir())
    load_coco(path, check_images="off")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_error_is_a_value_error():
    assert issubclass(DataValidationError, ValueError)
    err = DataValidationError("x.json", ["annotation id=3: field 'bbox' bad"])
    assert err.source == "x.json" and err.problems == ["annotation id=3: field 'bbox' bad"]


def test_from_dataset_in_memory():
    data = CocoData.from_dataset(_dataset(), image_root="/nowhere")
    assert isinstance(data.label_map, LabelMap) and data.path is None
    assert data.image_ids == [1, 2]
