"""``evaluate``: COCO box AP overall, per class, per class-rank range, per LVIS bucket, and fixed AP.

One standard COCO evaluation gives the accumulated ``precision [T, R, K, A, M]`` and ``recall``
arrays; everything else is read off them (:mod:`o365lib.evaluation.summary`). The default engine
is :mod:`o365lib.evaluation.engine`, which works on columns of numpy arrays, so that 8M
detections (Objects365 v2 val at 100 per image) never become 8M Python dicts; it is pinned to
pycocotools in the tests. ``engine="ultrafast"`` hands the same columns to ultrafast-pycocotools'
Rust matching (same numbers, about 2x faster end to end on 500k detections, COCO protocol only);
``engine="faster_coco_eval"`` runs faster-coco-eval 1.8 (same numbers, one dict per detection), as
a cross-check.

``protocol="coco"`` is COCO's standard mode, right for exhaustively labelled Objects365 (an LVIS
mode that drops the detections of classes absent from an image would leave false positives
uncounted). ``protocol="lvis"`` is lvis-api's federated protocol (:mod:`o365lib.evaluation.lvis`),
``"auto"`` picks it when the images carry LVIS's negative / not-exhaustive category lists.

The 12 summary numbers are recomputed from the arrays with the last ``maxDets`` setting, so
``max_dets=300`` (the LVIS convention) is honoured everywhere (pycocotools' own summary
hard-codes 100 for the first number). Every AP is on the 0-100 scale; a value the COCO summary
marks ``-1`` (no ground truth, e.g. no small objects) is ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from o365lib.evaluation.columns import DetectionColumns
from o365lib.evaluation.engine import coco_eval_columns
from o365lib.evaluation.fixed_ap import fixed_ap_metrics
from o365lib.evaluation.inputs import as_dataset, load_inputs, range_table, resolve_ranking
from o365lib.evaluation.lvis import (
    LVIS_MAX_DETS,
    LVIS_STAT_NAMES,
    category_frequency,
    frequency_stats,
    is_lvis,
    lvis_inputs,
    lvis_stats,
)
from o365lib.evaluation.summary import (
    STAT_NAMES,
    image_counts,
    lvis_bucket,
    lvis_buckets,
    pct,
    per_class_ap,
    summary_stats,
)
from o365lib.io import write_json

ENGINES = ("numpy", "faster_coco_eval", "ultrafast")
PROTOCOLS = ("coco", "lvis", "auto")


def _max_dets_list(max_dets: int) -> list[int]:
    return [1, 10, int(max_dets)] if max_dets > 10 else sorted({1, int(max_dets)})


def run_coco_eval(gt: dict, detections: Any, *, max_dets: int = 100) -> dict:
    """Standard-mode COCO bbox evaluation with faster-coco-eval; returns its accumulated arrays.

    ``detections``: COCO result dicts or ``DetectionColumns`` (turned into dicts here: this is the
    reference path, it needs one dict per detection). Returns ``{"precision": [T,R,K,A,M],
    "recall": [T,K,A,M], "category_ids": [K], "iou_thrs": [T], "max_dets": [M]}``, the layout of
    :func:`o365lib.evaluation.engine.coco_eval_columns`. Inputs are not modified.
    """
    import gc

    from faster_coco_eval import COCO, COCOeval_faster

    quiet = lambda *a, **k: None
    if isinstance(detections, DetectionColumns):
        detections = [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in zip(
            detections.image_id.tolist(), detections.category_id.tolist(), detections.bbox.tolist(),
            detections.score.tolist())]
    was_enabled = gc.isenabled()
    gc.disable()  # hundreds of thousands of acyclic dicts: the collector would rescan them over and over
    try:
        gt = dict(gt)
        gt["annotations"] = [dict(a) for a in gt.get("annotations", [])]  # the evaluator writes into them
        dets = []
        for index, d in enumerate(detections, start=1):  # the fields loadRes would add
            x, y, w, h = d["bbox"]
            dets.append({"image_id": d["image_id"], "category_id": d["category_id"], "bbox": [x, y, w, h],
                         "score": d["score"], "area": w * h, "id": index, "iscrowd": 0})
        coco_gt = COCO(gt, print_function=quiet)
        coco_dt = COCO({"images": gt.get("images", []), "categories": gt.get("categories", []),
                        "annotations": dets}, print_function=quiet)
        ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=quiet, separate_eval=False)
        ev.params.maxDets = _max_dets_list(max_dets)
        ev.evaluate()  # with separate_eval=False this also accumulates (one C++ pass)
        return {"precision": np.asarray(ev.eval["precision"]), "recall": np.asarray(ev.eval["recall"]),
                "category_ids": [int(c) for c in ev.params.catIds], "iou_thrs": np.asarray(ev.params.iouThrs),
                "max_dets": list(ev.params.maxDets)}
    finally:
        if was_enabled:
            gc.enable()


def resolve_protocol(protocol: str, gt_data: Mapping) -> str:
    """"coco" or "lvis" ("auto": "lvis" when the ground truth carries LVIS's per-image lists)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "auto":
        return "lvis" if is_lvis(gt_data) else "coco"
    return protocol


def frequency_groups(gt_data: Mapping, train_counts: Mapping[int, int] | None) -> tuple[dict | None, str | None]:
    """Category id -> "r"/"c"/"f" and its source: the categories' ``frequency`` field (LVIS), else the
    training-image counts (rare 1-10, common 11-100, frequent > 100), else (None, None)."""
    field = category_frequency(gt_data)
    if field is not None:
        return field, "categories"
    if train_counts is not None:
        codes = {c: lvis_bucket(int(n)) for c, n in train_counts.items()}
        return {c: b[0] for c, b in codes.items() if b is not None}, "train_gt"
    return None, None


def run_ultrafast_eval(gt: dict, detections: DetectionColumns, *, max_dets: int = 100) -> dict:
    """Standard-mode COCO bbox evaluation by ultrafast-pycocotools (Rust, bit-identical to pycocotools).

    The detections go in as pycocotools' ``[N, 7]`` array, so no dict per detection is made. Same
    return layout as :func:`run_coco_eval`. Measured 3.2x faster than the numpy engine's matching
    and accumulation on 500k detections (bench/README.md); needs ``pip install ultrafast-pycocotools``.
    """
    import contextlib
    import io

    from ultrafast_pycocotools import COCO, COCOeval

    array = np.column_stack([detections.image_id, detections.bbox, detections.score, detections.category_id])
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO({**gt, "annotations": [dict(a) for a in gt.get("annotations", [])]})
        ev = COCOeval(coco_gt, coco_gt.loadRes(array.astype(np.float64)), "bbox")
        ev.params.maxDets = _max_dets_list(max_dets)
        ev.evaluate()
        ev.accumulate()
    return {"precision": np.asarray(ev.eval["precision"]), "recall": np.asarray(ev.eval["recall"]),
            "category_ids": [int(c) for c in ev.params.catIds], "iou_thrs": np.asarray(ev.params.iouThrs),
            "max_dets": list(ev.params.maxDets)}


def evaluate(
    gt: Any,
    detections: Any,
    *,
    ranking: Mapping[int, int] | None = None,
    train_gt: Any = None,
    ranges: Sequence[Any] = ("1-150", "151-300", "301-365"),
    max_dets: int | None = None,
    fixed_ap: bool = False,
    fixed_ap_k: int | None = None,
    engine: str = "numpy",
    protocol: str = "coco",
    out_path: str | os.PathLike | None = None,
) -> dict:
    """Evaluate COCO results against ground truth; return (and optionally save) a JSON-able dict.

    Args:
        gt: evaluation ground truth (path, COCO dict or ``CocoData``).
        detections: a list of COCO result dicts, a results JSON path (read in blocks), a ``.npz``
            path or dict of arrays (``image_id``, ``category_id``, ``bbox`` [N,4], ``score``), or an
            ``[N, 7]`` array ``(image_id, x, y, w, h, score, category_id)``. Empty gives zero AP.
        The keyword arguments and the returned dict are those of :func:`evaluate_arrays`.
    """
    return evaluate_arrays(gt, detections, ranking=ranking, train_gt=train_gt, ranges=ranges, max_dets=max_dets,
                           fixed_ap=fixed_ap, fixed_ap_k=fixed_ap_k, engine=engine, protocol=protocol,
                           out_path=out_path)[0]


def evaluate_arrays(
    gt: Any,
    detections: Any,
    *,
    ranking: Mapping[int, int] | None = None,
    train_gt: Any = None,
    ranges: Sequence[Any] = ("1-150", "151-300", "301-365"),
    max_dets: int | None = None,
    fixed_ap: bool = False,
    fixed_ap_k: int | None = None,
    engine: str = "numpy",
    protocol: str = "coco",
    outcomes: bool = False,
    out_path: str | os.PathLike | None = None,
) -> tuple[dict, dict]:
    """``evaluate``'s metrics dict and the accumulated arrays it was read from.

    Args:
        ranking: category id -> rank (1 = most training instances). Default: computed from
            ``train_gt``, else from ``gt`` itself (``"ranking_source"`` in the output says which).
        train_gt: training set (path / dict / ``CocoData``); enables the LVIS buckets by
            training-image count (rare 1-10, common 11-100, frequent > 100; classes without
            training images are counted under ``"no_train_images"``).
        ranges: class-rank range specs (``"301-365"``...) to report mean AP and zero-AP counts for.
        max_dets: COCO: the evaluator's ``maxDets`` per image *and class* (default 100); LVIS: the
            per-image cap across classes (default 300).
        fixed_ap: also compute fixed AP (:mod:`o365lib.evaluation.fixed_ap`) under ``"fixed_ap"``.
        fixed_ap_k: its per-class K; None = the rule scaled from LVIS v1 val (reported).
        engine: "numpy" (columns, default), "ultrafast" (ultrafast-pycocotools' Rust matching on the same
            columns, COCO protocol only, same numbers) or "faster_coco_eval" (reference, one dict per box).
        protocol: "coco" (default), "lvis" or "auto" (see the module docstring).
        outcomes: keep the per-detection outcomes in the arrays (for a bootstrap over images).
        out_path: if given, the dict is written there as JSON (atomically).

    Returns ``(metrics, arrays)``. ``metrics`` has, on the 0-100 scale (None = undefined): "AP"
    (also as "mAP"), "AP50", "AP75", "APs", "APm", "APl"; COCO: "AR1", "AR10", "AR100" (AR at
    ``max_dets``), "ARs", "ARm", "ARl"; LVIS: "AR@300", "ARs@300", "ARm@300", "ARl@300"; "APr",
    "APc", "APf" when frequencies are known (``"frequency_source"``: the categories' ``frequency``
    field or ``train_gt``); "stats" (the protocol's summary numbers in order), "per_class"
    {str(cat_id): AP or None}, "ranges" {spec: {"mAP", "num_classes", "num_evaluated",
    "zero_ap"}}, "lvis" (only with ``train_gt``), "fixed_ap" (only with ``fixed_ap=True``),
    "protocol", "ranking_source", "max_dets", "num_images", "num_detections".
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    gt_data, gt_cols, dets = load_inputs(gt, detections)
    protocol = resolve_protocol(protocol, gt_data)
    max_dets = int(max_dets) if max_dets is not None else (LVIS_MAX_DETS if protocol == "lvis" else 100)
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    if protocol == "lvis" and engine != "numpy":
        raise ValueError("protocol='lvis' runs on engine='numpy' only")
    train_data = as_dataset(train_gt) if train_gt is not None else None
    train_counts = image_counts(train_data) if train_data is not None else None
    frequency, frequency_source = frequency_groups(gt_data, train_counts)

    free = None
    if protocol == "lvis":
        eval_gt, eval_dets, free = lvis_inputs(gt_data, gt_cols, dets, max_dets=max_dets)
        arrays = coco_eval_columns(eval_gt, eval_dets, max_dets=None, unmatched_ignored=free, outcomes=outcomes)
        stats = [pct(v) for v in lvis_stats(arrays["precision"], arrays["recall"], iou_thrs=arrays["iou_thrs"],
                                            category_ids=arrays["category_ids"], frequency=frequency)]
        names = LVIS_STAT_NAMES
    else:
        eval_gt, eval_dets = gt_cols, dets
        if engine == "numpy" or outcomes or not len(dets):  # outcomes (the bootstrap) come from the numpy engine
            arrays = coco_eval_columns(gt_cols, dets, max_dets=_max_dets_list(max_dets), outcomes=outcomes)
        elif engine == "ultrafast":
            arrays = run_ultrafast_eval(gt_data, dets, max_dets=max_dets)
        else:
            arrays = run_coco_eval(gt_data, dets, max_dets=max_dets)
        stats = [pct(v) for v in summary_stats(arrays["precision"], arrays["recall"], iou_thrs=arrays["iou_thrs"])]
        names = STAT_NAMES
    per_class = {c: pct(v) for c, v in per_class_ap(arrays["precision"], arrays["category_ids"]).items()}
    ranking, ranking_source = resolve_ranking(ranking, train_data=train_data, gt_data=gt_data)

    metrics: dict[str, Any] = dict(zip(names, stats))
    metrics["AP" if protocol == "coco" else "mAP"] = stats[0]
    if protocol == "coco" and frequency is not None:
        metrics.update(zip(("APr", "APc", "APf"), [pct(v) for v in frequency_stats(
            arrays["precision"], arrays["category_ids"], frequency)]))
    metrics["stats"] = stats
    metrics["per_class"] = {str(c): v for c, v in per_class.items()}
    metrics["ranges"] = range_table(per_class, ranking, ranges, caller="evaluate")
    if train_counts is not None:
        metrics["lvis"] = lvis_buckets(per_class, train_counts)
    if fixed_ap:
        fixed_gt, fixed_dets, fixed_free = (eval_gt, eval_dets, free) if protocol == "coco" else \
            lvis_inputs(gt_data, gt_cols, dets, max_dets=max(len(dets), 1))  # fixed AP: no per-image cap
        metrics["fixed_ap"] = fixed_ap_metrics(fixed_gt, fixed_dets, k=fixed_ap_k, ranking=ranking, ranges=ranges,
                                               train_image_counts=train_counts, unmatched_ignored=fixed_free)
        if frequency is not None:  # mean fixed AP of each frequency group's classes with ground truth
            for code in ("r", "c", "f"):
                values = [v for c, v in metrics["fixed_ap"]["per_class"].items()
                          if v is not None and frequency.get(int(c)) == code]
                metrics["fixed_ap"][f"AP{code}"] = float(np.mean(values)) if values else None
    elif fixed_ap_k is not None:
        raise ValueError("evaluate(fixed_ap_k=...) needs fixed_ap=True")
    metrics.update(protocol=protocol, frequency_source=frequency_source, ranking_source=ranking_source,
                   max_dets=max_dets, num_images=len(gt_cols.image_ids), num_detections=len(dets))
    if out_path is not None:
        write_json(out_path, metrics)
    return metrics, arrays
