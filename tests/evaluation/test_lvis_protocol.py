"""The LVIS protocol equals lvis-api 0.5.3's LVISEval: every summary number, every per-class AP."""

import numpy as np
import pytest

from o365lib.evaluation import evaluate
from o365lib.evaluation.columns import detection_columns
from o365lib.evaluation.lvis import LVIS_STAT_NAMES, cap_per_image, is_lvis
from tests.support.lvis_reference import lvis_eval, lvis_workload

LVIS_KEYS = {"AP": "AP", "AP50": "AP50", "AP75": "AP75", "APs": "APs", "APm": "APm", "APl": "APl", "APr": "APr",
             "APc": "APc", "APf": "APf", "AR@300": "AR@300", "ARs@300": "ARs@300", "ARm@300": "ARm@300",
             "ARl@300": "ARl@300"}


def reference_numbers(ev):
    summary = {k: (None if v < 0 else 100 * float(v)) for k, v in ev.results.items()}
    precision = ev.eval["precision"]
    per_class = {}
    for k, cat in enumerate(ev.params.cat_ids):
        p = precision[:, :, k, 0]
        per_class[str(cat)] = 100 * float(np.mean(p[p > -1])) if (p > -1).any() else None
    return summary, per_class


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_lvis_api(seed, tmp_path):
    gt, dets = lvis_workload(seed)
    assert is_lvis(gt)
    ev = lvis_eval(gt, dets, tmp_path=tmp_path)
    summary, per_class = reference_numbers(ev)
    ours = evaluate(gt, dets, protocol="auto", ranges=())
    assert ours["protocol"] == "lvis" and ours["max_dets"] == 300
    assert list(LVIS_KEYS) == list(LVIS_STAT_NAMES) == list(summary)
    for key in LVIS_STAT_NAMES:
        assert ours[key] == summary[key], key  # exact, not approximately
    assert ours["stats"] == [summary[k] for k in LVIS_STAT_NAMES]
    assert ours["per_class"] == per_class
    # the data exercises what it should
    assert any(v is None for v in per_class.values())  # classes without val ground truth
    assert ours["APr"] is not None and ours["APc"] is not None and ours["APf"] is not None
    assert ours["frequency_source"] == "categories"


def test_each_rule_changes_the_numbers(tmp_path):
    """Each LVIS rule matters on this data: the COCO protocol gives different numbers."""
    gt, dets = lvis_workload(0)
    lvis = evaluate(gt, dets, protocol="lvis", ranges=())
    coco = evaluate(gt, dets, protocol="coco", ranges=(), max_dets=300)
    assert lvis["AP"] != coco["AP"]
    # without the negative lists, detections of absent classes are dropped: AP can only rise or stay
    no_lists = {**gt, "images": [{**img, "neg_category_ids": [], "not_exhaustive_category_ids": []}
                                 for img in gt["images"]]}
    ref = lvis_eval(no_lists, dets, tmp_path=tmp_path)
    assert evaluate(no_lists, dets, protocol="lvis", ranges=())["AP"] == 100 * ref.results["AP"]


def test_cap_per_image_keeps_top_scores_with_input_order_on_ties():
    dets = detection_columns([{"image_id": i, "category_id": 1, "bbox": [0, 0, 1, 1], "score": s}
                              for i, s in [(1, 0.5), (1, 0.9), (2, 0.1), (1, 0.5), (1, 0.7)]])
    assert cap_per_image(dets, max_dets=2).tolist() == [1, 2, 4]
    assert cap_per_image(dets, max_dets=3).tolist() == [0, 1, 2, 4]


def test_fixed_ap_on_lvis_has_no_per_image_cap():
    gt, dets = lvis_workload(1, num_images=12)
    m = evaluate(gt, dets, protocol="lvis", ranges=(), fixed_ap=True, fixed_ap_k=100000)
    assert m["fixed_ap"]["num_detections"] > 300 * 2  # not capped per image before fixed AP
    assert 0 <= m["fixed_ap"]["mAP"] <= 100


def test_fixed_ap_has_frequency_groups():
    gt, dets = lvis_workload(2, num_images=12)
    m = evaluate(gt, dets, protocol="lvis", ranges=(), fixed_ap=True)
    freq = {c["id"]: c["frequency"] for c in gt["categories"]}
    rare = [v for c, v in m["fixed_ap"]["per_class"].items() if v is not None and freq[int(c)] == "r"]
    assert m["fixed_ap"]["APr"] == pytest.approx(np.mean(rare))
