"""Benchmark: o365lib.evaluation.evaluate vs pycocotools COCOeval on a long-tailed 365-class workload.

``evaluate`` runs its default columnar engine (numpy arrays, no dict per detection); the same call
with ``engine="faster_coco_eval"`` is timed too, as the maintained C++ reference.

Both get the same ground truth and detections (generated deterministically here: Zipf-like class
frequencies over 365 classes, ~8 objects and exactly ``--dets`` detections per image, 60% of them
jittered copies of ground-truth boxes, some with the wrong class). The script checks that the 12
summary numbers and every per-class AP agree (prints the max absolute difference, on the 0-100
scale) and prints the speed ratio. pycocotools' time covers COCO index + loadRes + evaluate +
accumulate + summarize; ours covers the whole ``evaluate`` call (input validation, copies, per-class
and per-range AP included). ``evaluate`` pauses Python's garbage collector while it builds its
indexes, a large part of its lead; ``--pycocotools-gc-paused`` also times pycocotools that way.
Results go to bench/results/eval_cpu.json.

    python bench/bench_eval.py                 # 5000 images x 100 detections
    python bench/bench_eval.py --images 500    # quick run
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from o365lib.evaluation import evaluate

NUM_CLASSES = 365


def make_workload(num_images: int, dets_per_image: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """Deterministic long-tailed ground truth and detections (COCO dicts)."""
    rng = np.random.default_rng(seed)
    cat_ids = np.arange(1, NUM_CLASSES + 1) * 2  # ids 2, 4, ... (not list positions)
    weights = 1.0 / np.arange(1, NUM_CLASSES + 1) ** 1.2
    weights /= weights.sum()
    images, anns, dets = [], [], []
    for img_id in range(1, num_images + 1):
        width, height = 800, 600
        images.append({"id": img_id, "width": width, "height": height, "file_name": f"{img_id:06d}.jpg"})
        n = int(rng.integers(1, 16))
        cls = rng.choice(cat_ids, size=n, p=weights)
        wh = np.exp(rng.uniform(np.log(8), np.log(400), size=(n, 2)))
        xy = rng.uniform(0, 1, size=(n, 2)) * ([width, height] - wh).clip(1)
        for c, (x, y), (w, h) in zip(cls, xy, wh):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": int(c),
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h),
                    "iscrowd": 0,
                }
            )
        near = rng.random(dets_per_image) < 0.6
        src = rng.integers(0, n, size=dets_per_image)
        jitter = rng.normal(0, 0.1, size=(dets_per_image, 4))
        d_wh = np.where(
            near[:, None],
            wh[src] * np.exp(jitter[:, 2:]),
            np.exp(rng.uniform(np.log(8), np.log(400), size=(dets_per_image, 2))),
        )
        d_xy = np.where(
            near[:, None],
            xy[src] + jitter[:, :2] * wh[src],
            rng.uniform(0, 1, size=(dets_per_image, 2)) * ([width, height] - d_wh).clip(1),
        )
        wrong = rng.random(dets_per_image) < 0.25
        d_cls = np.where(near & ~wrong, cls[src], rng.choice(cat_ids, size=dets_per_image, p=weights))
        scores = np.round(rng.random(dets_per_image) * np.where(near, 1.0, 0.5), 4)
        for c, (x, y), (w, h), s in zip(d_cls, d_xy, d_wh, scores):
            dets.append(
                {
                    "image_id": img_id,
                    "category_id": int(c),
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "score": float(s),
                }
            )
    categories = [{"id": int(c), "name": f"class_{int(c)}"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": categories}, dets


def run_pycocotools(gt: dict, dets: list[dict], max_dets: int):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pycocotools-gc-paused",
        action="store_true",
        help="also time pycocotools with Python's garbage collector paused, as evaluate() does",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval_cpu.json"))
    args = parser.parse_args()

    t0 = time.perf_counter()
    gt, dets = make_workload(args.images, args.dets, args.seed)
    print(
        f"workload: {args.images} images, {len(gt['annotations'])} gt boxes, {len(dets)} detections, "
        f"{NUM_CLASSES} classes (built in {time.perf_counter() - t0:.1f}s)"
    )
    gt_ref, dets_ref = copy.deepcopy(gt), copy.deepcopy(dets)  # pycocotools writes into its inputs

    t0 = time.perf_counter()
    ours = evaluate(gt, dets, max_dets=100)
    t_ours = time.perf_counter() - t0
    print(f"o365lib.evaluation.evaluate: {t_ours:.2f}s")

    t0 = time.perf_counter()
    fce = evaluate(gt, dets, max_dets=100, engine="faster_coco_eval")
    t_fce = time.perf_counter() - t0
    print(f"evaluate(engine='faster_coco_eval'): {t_fce:.2f}s")
    assert fce["stats"] == ours["stats"], "the two engines disagree"

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ref = run_pycocotools(gt_ref, dets_ref, 100)
    t_ref = time.perf_counter() - t0
    print(f"pycocotools COCOeval:        {t_ref:.2f}s")

    ref_stats = [None if v < 0 else 100 * float(v) for v in ref.stats]
    stat_diff = max(abs(a - b) for a, b in zip(ours["stats"], ref_stats) if a is not None and b is not None)
    assert all((a is None) == (b is None) for a, b in zip(ours["stats"], ref_stats)), "undefined stats differ"
    precision = ref.eval["precision"]
    class_diff = 0.0
    for k, cat in enumerate(ref.params.catIds):
        p = precision[:, :, k, 0, -1]
        expected = 100 * float(np.mean(p[p > -1])) if (p > -1).any() else None
        got = ours["per_class"][str(cat)]
        assert (got is None) == (expected is None), f"class {cat}: {got} vs {expected}"
        if got is not None:
            class_diff = max(class_diff, abs(got - expected))
    assert stat_diff <= 1e-9 and class_diff <= 1e-9, (stat_diff, class_diff)
    ratio = t_ref / t_ours
    print(f"max |diff| summary stats: {stat_diff:.3g}; per-class AP: {class_diff:.3g} (0-100 scale)")
    print(
        f"mAP {ours['mAP']:.3f}; ranges "
        + ", ".join(f"{k}: {v['mAP']:.2f}" for k, v in ours["ranges"].items())
    )
    print(f"speed-up vs pycocotools: {ratio:.2f}x")

    t_ref_nogc = None
    if args.pycocotools_gc_paused:
        import gc

        gt_ref, dets_ref = copy.deepcopy(gt), copy.deepcopy(dets)
        gc.disable()
        t0 = time.perf_counter()
        run_pycocotools(gt_ref, dets_ref, 100)
        t_ref_nogc = time.perf_counter() - t0
        gc.enable()
        print(f"pycocotools, GC paused:      {t_ref_nogc:.2f}s -> speed-up {t_ref_nogc / t_ours:.2f}x")

    import faster_coco_eval

    result = {
        "benchmark": "COCO bbox evaluation, o365lib.evaluation.evaluate vs pycocotools",
        "images": args.images,
        "detections": len(dets),
        "gt_boxes": len(gt["annotations"]),
        "classes": NUM_CLASSES,
        "seed": args.seed,
        "seconds_o365lib": round(t_ours, 3),
        "seconds_o365lib_faster_coco_eval_engine": round(t_fce, 3),
        "seconds_pycocotools": round(t_ref, 3),
        "speedup": round(ratio, 2),
        "seconds_pycocotools_gc_paused": None if t_ref_nogc is None else round(t_ref_nogc, 3),
        "speedup_vs_gc_paused_pycocotools": None if t_ref_nogc is None else round(t_ref_nogc / t_ours, 2),
        "max_abs_diff_stats": stat_diff,
        "max_abs_diff_per_class": class_diff,
        "mAP": ours["mAP"],
        "faster_coco_eval": faster_coco_eval.__version__,
        "loadavg_before_pycocotools": load_before,
        "loadavg_after": os.getloadavg(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
