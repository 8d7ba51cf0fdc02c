"""Bad input is refused with the file, the record index and the field (issues 22 and 23)."""

import json
import math

import pytest

from o365lib.data import DataValidationError
from o365lib.evaluation import evaluate

GT = {"images": [{"id": 1, "width": 50, "height": 50}, {"id": 2, "width": 50, "height": 50}],
      "annotations": [{"id": 1, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 30], "area": 600, "iscrowd": 0}],
      "categories": [{"id": 2, "name": "two"}]}
GOOD = {"image_id": 2, "category_id": 2, "bbox": [5.0, 5.0, 20.0, 30.0], "score": 0.5}


@pytest.mark.parametrize(("change", "expected"), [
    ({"bbox": [5, 5, math.nan, 30]}, r"index=1 field 'bbox' = \[5.0, 5.0, nan, 30.0\]: w is NaN"),
    ({"bbox": [math.inf, 5, 3, 30]}, r"index=1 field 'bbox' .*: x is infinite"),
    ({"bbox": [5, -math.inf, 3, 30]}, r"index=1 field 'bbox' .*: y is infinite"),
    ({"bbox": [5, 5, -1, 30]}, r"index=1 field 'bbox' .*: w is negative"),
    ({"bbox": [5, 5, 3, -0.5]}, r"index=1 field 'bbox' .*: h is negative"),
    ({"score": math.nan}, r"index=1 field 'score' is NaN"),
    ({"score": math.inf}, r"index=1 field 'score' is infinite"),
    ({"score": -math.inf}, r"index=1 field 'score' is infinite"),
    ({"score": -0.25}, r"index=1 field 'score' is negative \(-0.25"),
    ({"image_id": 3}, r"index=1 field 'image_id' = 3 is not an image of the ground truth"),
    ({"category_id": 9}, r"index=1 field 'category_id' = 9 is not a category of the ground truth"),
    ({"bbox": [1, 2, 3]}, r"index=1 field 'bbox' = \[1, 2, 3\] is not 4 numbers"),
])
@pytest.mark.parametrize("as_file", [False, True])
def test_bad_detection_is_named(change, expected, as_file, tmp_path):
    dets = [GOOD, {**GOOD, **change}, GOOD]
    if as_file:
        path = tmp_path / "dets.json"
        path.write_text(json.dumps(dets))  # json writes NaN/Infinity, which Python's json reads back
        dets = str(path)
    with pytest.raises(DataValidationError, match=expected) as info:
        evaluate(GT, dets, ranges=())
    if as_file:
        assert "dets.json" in str(info.value)


def test_zero_width_is_allowed():
    assert evaluate(GT, [{**GOOD, "bbox": [5, 5, 0, 30]}], ranges=())["AP"] == 0.0


def test_issue_23_example_is_refused():
    with pytest.raises(DataValidationError, match="w is NaN"):
        evaluate(GT, [{"image_id": 2, "category_id": 2, "bbox": [5, 5, float("nan"), 30], "score": 0.5}])


@pytest.mark.parametrize(("text", "expected"), [
    ("", "the file is empty"),
    ("   \n", "the file is empty"),
    ('{"annotations": []}', "the results are a JSON object, expected a JSON list"),
    ("42", "not a JSON list"),
    ("[1, 2]", "result index=0 is not a dict"),
    ('[{"image_id": 2, "category_id": 2, "bbox": [1, 1, 2, 2]}]', "result index=0 has no field 'score'"),
])
def test_bad_results_file(text, expected, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(DataValidationError, match=expected) as info:
        evaluate(GT, str(path), ranges=())
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("gt", "expected"), [
    ({"images": GT["images"], "annotations": []}, "has no 'categories' list"),
    ({"categories": GT["categories"], "annotations": []}, "has no 'images' list"),
    ({**GT, "categories": []}, "'categories' is an empty list"),
    ({**GT, "categories": {"2": "two"}}, "'categories' is a dict, expected a list"),
    ([GOOD], "is a JSON list, expected a COCO object"),
    ("", "the file is empty"),
])
def test_bad_ground_truth_file(gt, expected, tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(gt if isinstance(gt, str) else json.dumps(gt))
    with pytest.raises(DataValidationError, match=expected) as info:
        evaluate(str(path), [GOOD], ranges=())
    assert str(path) in str(info.value)


def test_typed_and_plain_json_paths_give_the_same_columns(tmp_path):
    """Blocks msgspec accepts are parsed typed; others (NaN literals, extra fields) by json: same columns."""
    from o365lib.evaluation.columns import _load_results, _typed_block

    records = [{"image_id": 2.0, "category_id": 2, "bbox": [1, 2.5, 3, 4], "score": 1, "segmentation": [[1, 2]]},
               {"image_id": 2, "category_id": 2, "bbox": [0.1, 0.2, 0.3, 0.4], "score": 0.25}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    body = json.dumps(records)[1:-1]
    fast = _typed_block(body)
    assert fast is not None
    plain = _load_results(path)
    for name in ("image_id", "category_id", "bbox", "score"):
        assert (getattr(fast, name) == getattr(plain, name)).all()
        assert getattr(fast, name).dtype == getattr(plain, name).dtype
    assert _typed_block('{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, NaN], "score": 1}') is None
    assert _typed_block('{"image_id": 1.5, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 1}') is None
