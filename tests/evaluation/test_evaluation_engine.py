"""The columnar COCO engine (o365lib.evaluation.engine) against pycocotools, array for array, and
the columnar inputs (dict of arrays, [N, 7] array, .npz, results JSON read in blocks)."""

import contextlib
import io
import json

import numpy as np
import pytest

from o365lib.data import DataValidationError
from o365lib.evaluation import DetectionColumns, detection_columns, evaluate, load_results
from o365lib.evaluation import columns as columns_module
from o365lib.evaluation.columns import gt_columns
from o365lib.evaluation.engine import coco_eval_columns


def pycocotools_arrays(gt, dets, max_dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(dets)))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
    return ev.eval["precision"], ev.eval["recall"]


def hard_workload(seed, num_images=12):
    """Crowd boxes, areas exactly on the 32^2 / 96^2 boundaries, duplicate ground truth (IoU ties),
    an annotation with id 0, tied scores, zero-size detections, and more than 10 detections of one
    class in one image (so maxDets 1 / 10 / 100 all cut)."""
    rng = np.random.default_rng(seed)
    cats = [5, 7, 9]
    images, anns, dets = [], [], []
    ann_id = 0  # the first annotation has id 0
    for i in range(num_images):
        img = 40 + 3 * i
        images.append({"id": img, "width": 300, "height": 300})
        boxes = []
        for _ in range(int(rng.integers(0, 7))):
            c = int(rng.choice(cats))
            side = rng.choice([32.0, 96.0, rng.uniform(5, 150)])
            w, h = (side, side) if rng.random() < 0.5 else (float(rng.uniform(5, 150)), float(rng.uniform(5, 150)))
            x, y = float(rng.uniform(0, 150)), float(rng.uniform(0, 150))
            crowd = int(rng.random() < 0.15)
            copies = 2 if rng.random() < 0.15 else 1  # exact duplicates: equal IoU to any detection
            for _ in range(copies):
                anns.append({"id": ann_id, "image_id": img, "category_id": c, "bbox": [x, y, float(w), float(h)],
                             "area": float(w * h), "iscrowd": crowd})
                ann_id += 1
            boxes.append((c, x, y, float(w), float(h)))
        for _ in range(int(rng.integers(0, 40))):
            if boxes and rng.random() < 0.7:
                c, x, y, w, h = boxes[int(rng.integers(len(boxes)))]
                x, y = x + rng.normal(0, 0.08 * w), y + rng.normal(0, 0.08 * h)
                w, h = w * rng.uniform(0.85, 1.15), h * rng.uniform(0.85, 1.15)
            else:
                c = int(rng.choice(cats))
                x, y, w, h = rng.uniform(0, 200), rng.uniform(0, 200), rng.uniform(0, 120), rng.uniform(0, 120)
            if rng.random() < 0.03:
                w = 0.0
            dets.append({"image_id": img, "category_id": c, "bbox": [float(x), float(y), float(w), float(h)],
                         "score": float(np.round(rng.random(), 1))})
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}, dets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_dets", [(1, 10, 100), (1, 3, 5)])
def test_arrays_equal_pycocotools(seed, max_dets):
    gt, dets = hard_workload(seed)
    ours = coco_eval_columns(gt_columns(gt), detection_columns(dets), max_dets=max_dets)
    ref_precision, ref_recall = pycocotools_arrays(gt, dets, max_dets)
    assert ours["precision"].shape == ref_precision.shape
    np.testing.assert_array_equal(ours["precision"] == -1, ref_precision == -1)
    np.testing.assert_allclose(ours["precision"], ref_precision, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["recall"], ref_recall, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_uncapped_arrays_equal_pycocotools_with_a_huge_cap(seed):
    """max_dets=None (fixed AP's setting) is COCO with a cap no pair reaches."""
    gt, dets = hard_workload(seed)
    ours = coco_eval_columns(gt_columns(gt), detection_columns(dets), max_dets=None)
    ref_precision, ref_recall = pycocotools_arrays(gt, dets, [10 ** 6])
    np.testing.assert_allclose(ours["precision"], ref_precision, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["recall"], ref_recall, rtol=0, atol=1e-12)
    capped = coco_eval_columns(gt_columns(gt), detection_columns(dets), max_dets=[5])
    assert not np.array_equal(capped["recall"], ours["recall"])  # the workload has pairs above 5


def test_workload_exercises_the_edge_cases():
    gt, dets = hard_workload(0)
    areas = [a["area"] for a in gt["annotations"]]
    assert 32.0 ** 2 in areas and 96.0 ** 2 in areas
    assert any(a["iscrowd"] for a in gt["annotations"]) and gt["annotations"][0]["id"] == 0
    per_pair = {}
    for d in dets:
        per_pair[d["image_id"], d["category_id"]] = per_pair.get((d["image_id"], d["category_id"]), 0) + 1
    assert max(per_pair.values()) > 10


@pytest.mark.filterwarnings("ignore:Found annotation id 0")  # the workload has one on purpose
def test_engines_agree_on_evaluate():
    gt, dets = hard_workload(3, num_images=30)
    a = evaluate(gt, dets, ranges=("1-3",))
    b = evaluate(gt, dets, ranges=("1-3",), engine="faster_coco_eval")
    assert a["per_class"] == pytest.approx(b["per_class"], abs=1e-12)
    assert [x for x in a["stats"] if x is not None] == pytest.approx([x for x in b["stats"] if x is not None], abs=1e-12)


def test_columnar_inputs_give_the_same_metrics(tmp_path):
    gt, dets = hard_workload(1, num_images=20)
    expected = evaluate(gt, dets, ranges=())
    cols = {"image_id": np.array([d["image_id"] for d in dets]), "category_id": np.array([d["category_id"] for d in dets]),
            "bbox": np.array([d["bbox"] for d in dets]), "score": np.array([d["score"] for d in dets])}
    array7 = np.column_stack([cols["image_id"], cols["bbox"], cols["score"], cols["category_id"]])
    np.savez(tmp_path / "dets.npz", **cols)
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    for form in (cols, array7, tmp_path / "dets.npz", tmp_path / "dets.json", str(tmp_path / "dets.json")):
        got = evaluate(gt, form, ranges=())
        assert got["stats"] == expected["stats"] and got["per_class"] == expected["per_class"]


def test_load_results_in_small_blocks_is_exact(tmp_path, monkeypatch):
    dets = [{"image_id": i, "category_id": 1 + i % 3, "bbox": [i, 2.5, 3e-7, 1e6], "score": 1 / (i + 3),
             "note": "a }, { inside a string" if i % 5 == 0 else "x"} for i in range(400)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(dets, indent=None if False else 2))
    monkeypatch.setattr(columns_module, "_BLOCK_CHARS", 97)  # many blocks, most cut mid-record
    cols = load_results(path)
    assert cols.image_id.tolist() == list(range(400))
    assert cols.category_id.tolist() == [1 + i % 3 for i in range(400)]
    assert cols.score.tolist() == [1 / (i + 3) for i in range(400)]
    assert cols.bbox[:, 0].tolist() == list(range(400)) and cols.bbox[7].tolist() == [7, 2.5, 3e-7, 1e6]
    (tmp_path / "empty.json").write_text(" [ ] \n")
    assert len(load_results(tmp_path / "empty.json")) == 0


def test_bad_results_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(columns_module, "_BLOCK_CHARS", 50)
    good = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good] * 9 + [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 1}]))
    with pytest.raises(DataValidationError, match=r"bad.json.*index=9 field 'bbox' = \[0, 0, 1\] is not 4 numbers"):
        load_results(path)
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataValidationError, match="expected a JSON list"):
        load_results(path)
    with pytest.raises(DataValidationError, match=r"shape \(2, 6\)"):
        detection_columns(np.zeros((2, 6)))
    with pytest.raises(DataValidationError, match=r"index=1 field 'image_id' = 1.5 is not an integer"):
        detection_columns(np.array([[1, 0, 0, 1, 1, 0.5, 1], [1.5, 0, 0, 1, 1, 0.5, 1]]))
    with pytest.raises(DataValidationError, match=r"index=1 field 'category_id' = 2.5 is not an integer"):
        detection_columns([good, dict(good, category_id=2.5)])
    with pytest.raises(DataValidationError, match=r"index=1 field 'image_id' = '7' is not a number"):
        detection_columns([good, dict(good, image_id="7")])
    assert detection_columns([dict(good, image_id=7.0)]).image_id.tolist() == [7]
    with pytest.raises(DataValidationError, match=r"index=0 field 'score' is NaN"):
        detection_columns([dict(good, score=float("nan"))])
    with pytest.raises(DataValidationError, match=r"columns \['score'\] are missing"):
        detection_columns({"image_id": [1], "category_id": [1], "bbox": [[0, 0, 1, 1]]})


def test_take_and_len():
    cols = detection_columns([{"image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 2], "score": 0.1},
                              {"image_id": 4, "category_id": 2, "bbox": [1, 1, 1, 2], "score": 0.2}])
    assert isinstance(cols, DetectionColumns) and len(cols) == 2
    sub = cols.take(np.array([1]))
    assert sub.image_id.tolist() == [4] and sub.bbox.tolist() == [[1, 1, 1, 2]] and len(sub) == 1


@pytest.mark.parametrize(("seed", "max_dets"), [(0, 100), (1, 300), (2, 5)])
def test_ultrafast_engine_gives_the_same_arrays(seed, max_dets):
    from o365lib.evaluation import evaluate_arrays
    from tests.support.coco_workload import random_workload

    gt, dets = random_workload(seed)
    ours, ours_arrays = evaluate_arrays(gt, dets, ranges=(), max_dets=max_dets)
    fast, fast_arrays = evaluate_arrays(gt, dets, ranges=(), max_dets=max_dets, engine="ultrafast")
    assert np.array_equal(ours_arrays["precision"], fast_arrays["precision"])
    assert np.array_equal(ours_arrays["recall"], fast_arrays["recall"])
    assert ours == fast
    assert evaluate_arrays(gt, [], ranges=(), engine="ultrafast")[0]["AP"] == 0.0
