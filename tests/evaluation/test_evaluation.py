"""Tests for o365lib.evaluation: parity with pycocotools, ranges, zero-AP counts, LVIS buckets."""

import contextlib
import io
import json

import numpy as np
import pytest

from o365lib.evaluation import (
    STAT_NAMES,
    ap_by_rank_range,
    compare_metrics,
    evaluate,
    per_class_table,
)
from tests.support.coco_workload import random_workload


def pycocotools_eval(gt, dets, max_dets=100):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(dets)))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_pycocotools(seed):
    gt, dets = random_workload(seed)
    ours = evaluate(gt, dets, ranges=("1-6", "7-12"))
    ref = pycocotools_eval(gt, dets)
    ref_stats = [None if v < 0 else 100 * v for v in ref.stats]
    for a, b in zip(ours["stats"], ref_stats):
        assert (a is None and b is None) or a == pytest.approx(b, abs=1e-9)
    precision = ref.eval["precision"]
    for k, cat in enumerate(ref.params.catIds):
        p = precision[:, :, k, 0, -1]
        expected = None if not (p > -1).any() else 100 * float(np.mean(p[p > -1]))
        got = ours["per_class"][str(cat)]
        assert (got is None and expected is None) or got == pytest.approx(expected, abs=1e-9)
    # the no-gt class is None, the never-detected class is 0
    assert ours["per_class"][str(gt["categories"][-1]["id"])] is None
    assert ours["per_class"][str(gt["categories"][-2]["id"])] == 0.0
    assert 0 < ours["mAP"] < 100


def test_max_dets_300_matches_pycocotools_arrays():
    gt, dets = random_workload(5, num_images=8, num_classes=4, dets_per_image=400)
    ours = evaluate(gt, dets, max_dets=300, ranges=())
    ref = pycocotools_eval(gt, dets, max_dets=300)
    p = ref.eval["precision"][:, :, :, 0, -1]
    assert ours["mAP"] == pytest.approx(100 * np.mean(p[p > -1]), abs=1e-9)
    assert ours["AR100"] == pytest.approx(100 * ref.stats[8], abs=1e-9)
    # COCO caps detections per image and class: 300 keeps more than 100
    assert evaluate(gt, dets, max_dets=100, ranges=())["AR100"] < ours["AR100"]


def perfect_case():
    """4 classes with ranks 1..4 by instance count; detections perfect for classes 10 and 20."""
    images = [{"id": i, "width": 100, "height": 100} for i in range(1, 5)]
    anns, dets = [], []
    counts = {10: 4, 20: 3, 30: 2, 40: 1}
    aid = 1
    for cat, n in counts.items():
        for i in range(n):
            box = [10.0 + cat, 10.0, 20.0, 30.0]
            anns.append({"id": aid, "image_id": i + 1, "category_id": cat, "bbox": box, "area": 600.0,
                         "iscrowd": 0})
            aid += 1
            if cat in (10, 20):
                dets.append({"image_id": i + 1, "category_id": cat, "bbox": box, "score": 0.9})
    cats = [{"id": c, "name": f"c{c}"} for c in (10, 20, 30, 40, 50)]  # 50: no gt anywhere
    return {"images": images, "annotations": anns, "categories": cats}, dets


def test_ranges_and_zero_ap_on_known_case(tmp_path):
    gt, dets = perfect_case()
    out = tmp_path / "m" / "metrics.json"
    m = evaluate(gt, dets, ranges=("1-2", "3-5", "1-5"), out_path=out)
    assert m["per_class"] == {"10": 100.0, "20": 100.0, "30": 0.0, "40": 0.0, "50": None}
    assert m["ranking_source"] == "gt"
    assert m["ranges"]["1-2"] == {"mAP": 100.0, "num_classes": 2, "num_evaluated": 2, "zero_ap": 0}
    assert m["ranges"]["3-5"] == {"mAP": 0.0, "num_classes": 3, "num_evaluated": 2, "zero_ap": 2}
    assert m["ranges"]["1-5"]["mAP"] == pytest.approx(50.0)
    assert m["mAP"] == pytest.approx(50.0)
    assert m["APs"] == pytest.approx(50.0) and m["APm"] is None and m["APl"] is None
    assert json.loads(out.read_text()) == json.loads(json.dumps(m))
    assert not list(out.parent.glob("*.tmp"))


def test_explicit_ranking_reorders_ranges():
    gt, dets = perfect_case()
    ranking = {40: 1, 30: 2, 20: 3, 10: 4, 50: 5}
    m = evaluate(gt, dets, ranking=ranking, ranges=("1-2", "3-4"))
    assert m["ranges"]["1-2"]["mAP"] == 0.0 and m["ranges"]["1-2"]["zero_ap"] == 2
    assert m["ranges"]["3-4"]["mAP"] == 100.0
    assert m["ranking_source"] == "given"


def test_empty_detections_give_zero():
    gt, _ = perfect_case()
    m = evaluate(gt, [], ranges=("1-4",))
    assert m["mAP"] == 0.0 and m["AR100"] == 0.0
    assert m["ranges"]["1-4"]["zero_ap"] == 4
    assert m["num_detections"] == 0


def train_set_with_image_counts(counts, categories):
    """A training COCO dict where category c appears in exactly counts[c] distinct images
    (twice in some images, so instance counts differ from image counts)."""
    anns, aid = [], 1
    for cat, n in counts.items():
        for i in range(n):
            for _ in range(1 + (i % 2)):
                anns.append({"id": aid, "image_id": i, "category_id": cat, "bbox": [0, 0, 5, 5],
                             "area": 25.0, "iscrowd": 0})
                aid += 1
    images = [{"id": i, "width": 100, "height": 100} for i in range(max(counts.values()))]
    return {"images": images, "annotations": anns, "categories": categories}


def test_lvis_buckets_from_train_images():
    gt, dets = perfect_case()
    # classes 10 and 20 are detected perfectly (AP 100), 30 and 40 not at all (AP 0), 50 has no gt.
    # training images: 10 -> 101 (frequent), 20 -> 11 (common), 30 -> 10 (rare), 40 -> 100 (common),
    # 50 -> 0 (no bucket)
    train = train_set_with_image_counts({10: 101, 20: 11, 30: 10, 40: 100}, gt["categories"])
    m = evaluate(gt, dets, train_gt=train, ranges=("1-5",))
    assert m["ranking_source"] == "train_gt"
    assert m["lvis"]["frequent"] == {"mAP": 100.0, "num_classes": 1, "num_evaluated": 1}
    assert m["lvis"]["common"] == {"mAP": 50.0, "num_classes": 2, "num_evaluated": 2}  # 20 and 40
    assert m["lvis"]["rare"] == {"mAP": 0.0, "num_classes": 1, "num_evaluated": 1}  # 30
    assert m["lvis"]["no_train_images"] == {"num_classes": 1, "num_evaluated": 0, "category_ids": [50]}


def test_lvis_bucket_boundaries():
    from o365lib.evaluation import LVIS_BUCKETS, lvis_bucket

    assert [lvis_bucket(n) for n in (0, 1, 10, 11, 100, 101, 5000)] == [
        None, "rare", "rare", "common", "common", "frequent", "frequent"]
    assert LVIS_BUCKETS == (("rare", 1, 10), ("common", 11, 100), ("frequent", 101, None))
    gt, dets = perfect_case()
    # the other side of each boundary: 10 -> 100 (common), 20 -> 1 (rare), 30 -> 11 (common), 40 -> 101
    train = train_set_with_image_counts({10: 100, 20: 1, 30: 11, 40: 101, 50: 0}, gt["categories"])
    m = evaluate(gt, dets, train_gt=train, ranking={10: 1, 20: 2, 30: 3, 40: 4, 50: 5}, ranges=())
    assert m["lvis"]["rare"] == {"mAP": 100.0, "num_classes": 1, "num_evaluated": 1}  # 20
    assert m["lvis"]["common"] == {"mAP": 50.0, "num_classes": 2, "num_evaluated": 2}  # 10, 30
    assert m["lvis"]["frequent"] == {"mAP": 0.0, "num_classes": 1, "num_evaluated": 1}  # 40
    assert m["lvis"]["no_train_images"]["num_classes"] == 1


def test_unknown_category_is_named():
    gt, dets = perfect_case()
    dets = dets + [{"image_id": 1, "category_id": 999, "bbox": [0, 0, 1, 1], "score": 0.5}]
    with pytest.raises(ValueError, match=r"index=7 field 'category_id' = 999"):
        evaluate(gt, dets, ranges=())
    with pytest.raises(ValueError, match=r"index=0 has no field 'score'"):
        evaluate(gt, [{"image_id": 1, "category_id": 10, "bbox": [0, 0, 1, 1]}], ranges=())
    with pytest.raises(ValueError, match=r"field 'image_id' = 77"):
        evaluate(gt, [{"image_id": 77, "category_id": 10, "bbox": [0, 0, 1, 1], "score": 1}], ranges=())


def test_evaluate_does_not_mutate_inputs():
    gt, dets = perfect_case()
    before = json.dumps([gt, dets], sort_keys=True)
    evaluate(gt, dets, ranges=("1-5",))
    assert json.dumps([gt, dets], sort_keys=True) == before


def test_ap_by_rank_range_accepts_int_keys():
    per_class = {1: 10.0, 2: None, 3: 0.0}
    r = ap_by_rank_range(per_class, {1: 1, 2: 2, 3: 3}, "2-3")
    assert r == {"mAP": 0.0, "num_classes": 2, "num_evaluated": 1, "zero_ap": 1, "category_ids": [2, 3]}


def test_per_class_table_and_compare():
    gt, dets = perfect_case()
    ranking = {10: 1, 20: 2, 30: 3, 40: 4, 50: 5}
    before = evaluate(gt, dets[:4], ranges=())  # only class 10 detected
    after = evaluate(gt, dets, ranges=())
    table = per_class_table(after, ranking, {c["id"]: c["name"] for c in gt["categories"]})
    assert list(table.columns) == ["category_id", "name", "rank", "ap"]
    assert table["category_id"].tolist() == [10, 20, 30, 40, 50]
    assert table["name"].tolist()[0] == "c10" and np.isnan(table["ap"].iloc[4])
    cmp = compare_metrics(before, after, ranking)
    assert (cmp["improved"], cmp["worse"], cmp["unchanged"]) == (1, 0, 3)
    assert cmp["mean_delta"] == pytest.approx(25.0)
    cmp_range = compare_metrics(after, before, ranking, spec="2-3")
    assert (cmp_range["improved"], cmp_range["worse"], cmp_range["unchanged"]) == (0, 1, 1)


def test_stat_names_name_what_pycocotools_computes():
    """Each name is checked against pycocotools' precision / recall arrays, not against its stats order."""
    gt, dets = random_workload(2)
    ours = evaluate(gt, dets, ranges=())
    ref = pycocotools_eval(gt, dets)
    precision, recall = ref.eval["precision"], ref.eval["recall"]  # [T, R, K, A, M], [T, K, A, M]

    def mean_valid(values):
        return 100 * float(np.mean(values[values > -1]))

    # IoU thresholds 0.5:0.05:0.95 (index 0: 0.5, 5: 0.75); areas all, small, medium, large; maxDets 1, 10, 100
    expected = {"mAP": mean_valid(precision[:, :, :, 0, 2]), "AP50": mean_valid(precision[0, :, :, 0, 2]),
                "AP75": mean_valid(precision[5, :, :, 0, 2]), "APm": mean_valid(precision[:, :, :, 2, 2]),
                "AR1": mean_valid(recall[:, :, 0, 0]), "AR10": mean_valid(recall[:, :, 0, 1]),
                "AR100": mean_valid(recall[:, :, 0, 2]), "ARl": mean_valid(recall[:, :, 3, 2])}
    assert set(expected) <= set(STAT_NAMES)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_default_ranges_too_large_is_clear():
    gt, dets = perfect_case()
    with pytest.raises(ValueError, match=r"ranking has 5 classes"):
        evaluate(gt, dets)


# ---------------------------------------------------------------- figures (o365lib.viz.eval_plots)

def test_eval_plots_build_from_evaluate_outputs(tmp_path):
    import plotly.graph_objects as go

    from o365lib.viz.eval_plots import (
        plot_ap_change,
        plot_class_distribution_compare,
        plot_loss_curve,
        plot_per_class_ap,
        plot_range_bars,
    )

    gt, dets = perfect_case()
    ranking = {10: 1, 20: 2, 30: 3, 40: 4, 50: 5}
    names = {c["id"]: c["name"] for c in gt["categories"]}
    before = evaluate(gt, dets[:4], ranges=("1-2", "3-5"))
    after = evaluate(gt, dets, ranges=("1-2", "3-5"))
    before_df, after_df = per_class_table(before, ranking, names), per_class_table(after, ranking, names)

    fig = plot_per_class_ap(after_df, counts={10: 4, 20: 3, 30: 2, 40: 1, 50: 0}, ranges=("1-2", "3-5"))
    assert isinstance(fig, go.Figure)
    assert list(fig.data[0].y[:4]) == [100.0, 100.0, 0.0, 0.0]
    assert fig.data[1].yaxis == "y2" and any("1-2: mAP 100.0" in a.text for a in fig.layout.annotations)

    change = plot_ap_change(before_df, after_df, title="expert")
    assert list(change.data[0].y) == [0.0, 100.0, 0.0, 0.0]
    assert list(change.data[0].marker.color) == ["#9e9e9e", "#2ca02c", "#9e9e9e", "#9e9e9e"]
    assert "1 of 4 classes improved" in change.layout.title.text

    bars = plot_range_bars({"baseline": before, "expert": after}, talk={"expert": {"overall": 30.7}})
    assert [t.name for t in bars.data] == ["baseline", "expert", "expert (talk)"]
    assert list(bars.data[1].x) == ["overall", "1-2", "3-5"] and bars.data[1].y[1] == 100.0
    assert bars.data[2].y[0] == 30.7 and bars.data[2].offsetgroup == "expert"

    dist = plot_class_distribution_compare({"uniform": {10: 4.0, 20: 0.0}}, {10: 1, 20: 2})
    assert dist.layout.yaxis.type == "log" and list(dist.data[0].y) == [4.0, None]

    path = tmp_path / "losses.json"
    path.write_text(json.dumps([{"iteration": 1, "loss": 2.0, "loss_cls": 1.5, "lr": 0.1},
                                {"iteration": 2, "loss": 1.0, "loss_cls": 0.5, "lr": 0.1}]))
    loss = plot_loss_curve(path, smooth=0.5)
    assert [t.name for t in loss.data] == ["loss", "loss (EMA 0.5)", "loss_cls", "loss_cls (EMA 0.5)"]
    assert list(loss.data[1].y) == [2.0, 1.5] and list(loss.data[0].x) == [1.0, 2.0]
    assert list(plot_loss_curve([3.0, 2.0]).data[0].y) == [3.0, 2.0]
