"""Fixed AP (Dave et al. 2021) against a small, plainly written AP computed here from scratch."""

import numpy as np
import pytest

from o365lib.evaluation import default_fixed_ap_k, evaluate, fixed_ap, top_k_per_class
from o365lib.evaluation.columns import detection_columns


def iou_xywh(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = min(ax2, bx2) - max(a[0], b[0])
    h = min(ay2, by2) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def plain_ap(gts, dets):
    """AP (0-100) of one class: greedy matching by score, IoU .50:.05:.95, 101-point interpolation.

    ``gts``: list of (image_id, box); ``dets``: list of (image_id, box, score). No crowd boxes,
    no area ranges, no per-image cap. None when there is no ground truth.
    """
    if not gts:
        return None
    dets = sorted(dets, key=lambda d: -d[2])  # stable: ties keep input order
    aps = []
    for step in range(10):
        thr = 0.5 + 0.05 * step
        taken = set()
        hits = []
        for image, box, _ in dets:
            best, best_iou = None, thr
            for g, (g_image, g_box) in enumerate(gts):
                if g_image != image or g in taken:
                    continue
                iou = iou_xywh(box, g_box)
                if iou >= best_iou - 1e-12:
                    best, best_iou = g, iou
            if best is not None:
                taken.add(best)
            hits.append(best is not None)
        tp = fp = 0
        curve = []
        for hit in hits:
            tp, fp = tp + hit, fp + (not hit)
            curve.append((tp / len(gts), tp / (tp + fp)))
        points = []
        for r in range(101):
            above = [p for rec, p in curve if rec >= r / 100 - 1e-12]
            points.append(max(above) if above else 0.0)
        aps.append(sum(points) / 101)
    return 100 * sum(aps) / len(aps)


def plain_fixed_ap(gt, dets, k):
    out = {}
    for cat in [c["id"] for c in gt["categories"]]:
        gts = [(a["image_id"], a["bbox"]) for a in gt["annotations"] if a["category_id"] == cat]
        mine = sorted([(d["image_id"], d["bbox"], d["score"]) for d in dets if d["category_id"] == cat],
                      key=lambda d: -d[2])[:k]
        out[str(cat)] = plain_ap(gts, mine)
    return out


def workload(seed, *, crowded_image_dets=500):
    """3 classes over 6 images; image 1 holds 60 objects of class 1 and ``crowded_image_dets``
    detections of class 1 (far beyond COCO's 100 per image); class 3 has ground truth only."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "width": 400, "height": 400} for i in range(1, 7)]
    anns, dets = [], []

    def add_gt(image, cat, box):
        anns.append({"id": len(anns) + 1, "image_id": image, "category_id": cat, "bbox": box,
                     "area": box[2] * box[3], "iscrowd": 0})

    for j in range(60):
        add_gt(1, 1, [float(20 * (j % 10) + 1), float(40 * (j // 10) + 1), 15.0, 30.0])
    for image in range(2, 7):
        for _ in range(int(rng.integers(1, 5))):
            cat = int(rng.integers(1, 4))
            add_gt(image, cat, [float(rng.uniform(0, 300)), float(rng.uniform(0, 300)),
                                float(rng.uniform(10, 90)), float(rng.uniform(10, 90))])
    for _ in range(crowded_image_dets):
        j = int(rng.integers(0, 60))
        x, y = 20 * (j % 10) + 1, 40 * (j // 10) + 1
        dets.append({"image_id": 1, "category_id": 1, "score": float(np.round(rng.random(), 2)),
                     "bbox": [x + float(rng.normal(0, 2)), y + float(rng.normal(0, 3)), 15.0, 30.0]})
    for a in anns[60:]:
        if a["category_id"] == 3:
            continue
        for _ in range(3):
            x, y, w, h = a["bbox"]
            dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": float(rng.random()),
                         "bbox": [x + float(rng.normal(0, 0.1 * w)), y + float(rng.normal(0, 0.1 * h)), w, h]})
    for _ in range(40):
        dets.append({"image_id": int(rng.integers(1, 7)), "category_id": int(rng.integers(1, 3)),
                     "score": float(rng.random()), "bbox": [float(rng.uniform(0, 300)), float(rng.uniform(0, 300)),
                                                            30.0, 30.0]})
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [5000, 250, 30])
def test_fixed_ap_matches_plain_implementation(seed, k):
    gt, dets = workload(seed)
    ours = fixed_ap(gt, dets, k=k, ranges=("1-3",))
    expected = plain_fixed_ap(gt, dets, k)
    assert ours["per_class"].keys() == expected.keys()
    for cat, value in expected.items():
        assert (ours["per_class"][cat] is None) == (value is None)
        if value is not None:
            assert ours["per_class"][cat] == pytest.approx(value, abs=1e-9), cat
    assert ours["per_class"]["3"] == 0.0  # ground truth, no detections
    present = [v for v in expected.values() if v is not None]
    assert ours["mAP"] == pytest.approx(sum(present) / len(present), abs=1e-9)
    assert ours["ranges"]["1-3"]["mAP"] == pytest.approx(ours["mAP"])
    assert ours["k"] == k and ours["k_rule"] == "given"


def test_no_per_image_cap():
    """500 detections of one class in one image: all stay in fixed AP, COCO keeps 100."""
    gt, dets = workload(0)
    n_class1 = sum(d["category_id"] == 1 for d in dets)
    out = fixed_ap(gt, dets, k=n_class1, ranges=())
    assert out["num_detections_kept"] == len(dets) and out["classes_truncated"] == 0
    assert out["per_class"]["1"] == pytest.approx(plain_fixed_ap(gt, dets, n_class1)["1"], abs=1e-9)
    capped = evaluate(gt, dets, ranges=(), max_dets=100)
    assert out["per_class"]["1"] != pytest.approx(capped["per_class"]["1"], abs=1e-6)


def test_perfect_detections_cut_by_k():
    """60 objects, 60 perfect detections; k=30 keeps the 30 best, recall 0.5, precision 1."""
    gt, _ = workload(0, crowded_image_dets=0)
    gt["annotations"] = gt["annotations"][:60]
    dets = [{"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 1.0 - a["id"] / 100}
            for a in gt["annotations"]]
    full = fixed_ap(gt, dets, k=60, ranges=())
    half = fixed_ap(gt, dets, k=30, ranges=())
    assert full["per_class"]["1"] == pytest.approx(100.0)
    recall_points = int(np.sum(np.linspace(0, 1, 101) <= 0.5))  # 51 of the 101 recall thresholds
    assert half["per_class"]["1"] == pytest.approx(100.0 * recall_points / 101)
    assert half["classes_truncated"] == 1 and half["num_detections_kept"] == 30


def test_top_k_per_class_keeps_best_per_class_over_all_images():
    dets = detection_columns([
        {"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.3},
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.9},
        {"image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1], "score": 0.1},
        {"image_id": 3, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5},
        {"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5},  # tie: input order
    ])
    assert top_k_per_class(dets, k=2).tolist() == [1, 2, 3]
    assert top_k_per_class(dets, k=3).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="k >= 1"):
        top_k_per_class(dets, k=0)


def test_k_rule_and_evaluate_block():
    assert default_fixed_ap_k(19809) == 10000
    assert default_fixed_ap_k(80000) == 40386  # ceil(10000 * 80000 / 19809) = ceil(40385.7)
    assert default_fixed_ap_k(500) == 1000  # the floor
    gt, dets = workload(1)
    m = evaluate(gt, dets, ranges=("1-3",), fixed_ap=True)
    assert m["fixed_ap"]["k"] == 1000 and "ceil(10000 * 6 images / 19809)" in m["fixed_ap"]["k_rule"]
    assert m["fixed_ap"]["per_class"] == fixed_ap(gt, dets, ranges=())["per_class"]
    assert "fixed_ap" not in evaluate(gt, dets, ranges=())
    with pytest.raises(ValueError, match="needs fixed_ap=True"):
        evaluate(gt, dets, ranges=(), fixed_ap_k=10)
