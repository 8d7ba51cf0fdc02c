"""Benchmark o365lib.tta soft-NMS, WBF and NMS against ensemble-boxes 1.0.9.

Workload (deterministic): ``--models`` models x ``--images`` images x ``--boxes`` boxes per
model and image over ``--labels`` labels.  Each image has 2-20 objects with long-tailed
labels; each model emits jittered copies of the objects (60% with the object's label, the
rest with other long-tailed labels) plus 20% background boxes, scores from beta
distributions.  Boxes are normalised x1y1x2y2 in [0, 1] (ensemble-boxes' domain).

For each method: ensemble-boxes per image (numba JIT warmed up first, excluded), ours per
image (same call pattern) and ours batched (all images in one call, groups = image x label),
the number of images whose outputs differ, ms/image and speed-up ratios.  NMS: ensemble-boxes
vs torchvision ``batched_nms`` per image (one ``batched_nms`` over all images is far slower on
CPU: above 4000 boxes it loops over the image x label groups in Python).  Times are process
CPU time on CPU (other tenants of a shared machine do not count; our soft-NMS/WBF run on one
intra-op thread), wall time on GPU.  JSON goes to
``bench/results/fusion_<device>.json``.

    python bench/bench_fusion.py --images 100
    python bench/bench_fusion.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from o365lib.ops import soft_nms
from o365lib.tta.wbf import batched_weighted_boxes_fusion, weighted_boxes_fusion

SOFT = {"method": "gaussian", "iou_threshold": 0.5, "sigma": 0.5, "score_threshold": 0.001}
WBF = {"iou_threshold": 0.55, "skip_box_threshold": 0.0, "conf_type": "avg"}
NMS_IOU = 0.5


def make_workload(*, images: int, models: int, boxes: int, labels: int, seed: int = 0) -> list:
    """Per image, per model: (boxes [n,4] float32 normalised, scores [n] float32, labels [n] int64)."""
    rank_p = 1.0 / np.arange(1, labels + 1) ** 1.1
    rank_p /= rank_p.sum()
    out = []
    for i in range(images):
        rng = np.random.default_rng([seed, i])
        n_obj = int(rng.integers(2, 21))
        centre = rng.uniform(0.1, 0.9, (n_obj, 2))
        size = np.exp(rng.uniform(np.log(0.03), np.log(0.6), (n_obj, 2)))
        obj_labels = rng.choice(labels, size=n_obj, p=rank_p)
        per_model = []
        for _ in range(models):
            n_fg = int(boxes * 0.8)
            obj = rng.integers(0, n_obj, n_fg)
            c = centre[obj] + rng.normal(0, 0.08, (n_fg, 2)) * size[obj]
            wh = size[obj] * np.exp(rng.normal(0, 0.12, (n_fg, 2)))
            same = rng.random(n_fg) < 0.6
            lab = np.where(same, obj_labels[obj], rng.choice(labels, size=n_fg, p=rank_p))
            sc = np.where(same, rng.beta(3, 2, n_fg), rng.beta(1.2, 6, n_fg))
            n_bg = boxes - n_fg
            c = np.concatenate([c, rng.uniform(0.05, 0.95, (n_bg, 2))])
            wh = np.concatenate([wh, np.exp(rng.uniform(np.log(0.02), np.log(0.5), (n_bg, 2)))])
            lab = np.concatenate([lab, rng.choice(labels, size=n_bg, p=rank_p)])
            sc = np.concatenate([sc, rng.beta(1, 10, n_bg)])
            b = np.concatenate([c - wh / 2, c + wh / 2], axis=1).clip(0, 1)
            b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 0.005)
            b = b.clip(0, 1)
            order = np.argsort(-sc, kind="stable")
            per_model.append(
                (b[order].astype(np.float32), sc[order].astype(np.float32), lab[order].astype(np.int64))
            )
        out.append(per_model)
    return out


def _rows(labels, scores, boxes) -> np.ndarray:
    r = np.concatenate([np.asarray(labels, np.float64)[:, None], np.asarray(scores, np.float64)[:, None],
                        np.asarray(boxes, np.float64).reshape(-1, 4)], axis=1)  # fmt: skip
    return r[np.lexsort(r.T[::-1])]


def _same(a: np.ndarray, b: np.ndarray, *, score_tol: float, box_tol: float) -> bool:
    return (a.shape == b.shape and np.array_equal(a[:, 0], b[:, 0])
            and bool(np.all(np.abs(a[:, 1] - b[:, 1]) <= score_tol))
            and bool(np.all(np.abs(a[:, 2:] - b[:, 2:]) <= box_tol)))  # fmt: skip


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# process CPU time on CPU runs (a shared machine's other tenants do not count), wall time on GPU
_CLOCK = {"now": time.perf_counter}


def _now() -> float:
    return _CLOCK["now"]()


def _timed(fn, device):
    _sync(device)
    t0 = _now()
    out = fn()
    _sync(device)
    return out, _now() - t0


def _flat(images, device, models):
    """All images' boxes of the first ``models`` models as flat tensors with image and model ids."""
    parts = [(b, s, lab, m, i) for i, per_model in enumerate(images)
             for m, (b, s, lab) in enumerate(per_model[:models])]  # fmt: skip
    t = lambda arrs, dt: torch.from_numpy(np.concatenate(arrs)).to(device=device, dtype=dt)
    return (t([p[0] for p in parts], torch.float32), t([p[1] for p in parts], torch.float32),
            t([p[2] for p in parts], torch.int64),
            t([np.full(len(p[1]), p[3]) for p in parts], torch.int64),
            t([np.full(len(p[1]), p[4]) for p in parts], torch.int64))  # fmt: skip


def bench_soft_nms(images, *, device, per_image_n, labels):
    import ensemble_boxes as eb

    first = images[0][0]
    eb.soft_nms([first[0]], [first[1]], [first[2]], **_eb_soft())  # warm-up
    t0 = _now()
    eb_out = [eb.soft_nms([m[0][0]], [m[0][1]], [m[0][2]], **_eb_soft()) for m in images]
    eb_s = _now() - t0

    tensors = [tuple(torch.from_numpy(x).to(device) for x in m[0]) for m in images[:per_image_n]]
    soft_nms(*tensors[0], **SOFT)
    _, ours_one_s = _timed(lambda: [soft_nms(b, s, lab, **SOFT) for b, s, lab in tensors], device)

    boxes, scores, labs, _, img = _flat(images, device, models=1)
    soft_nms(boxes[:300], scores[:300], labs[:300], **SOFT)
    (keep, _new), ours_batch_s = _timed(lambda: soft_nms(boxes, scores, img * labels + labs, **SOFT), device)
    keep, img_k = keep.cpu().numpy(), img.cpu().numpy()[keep.cpu().numpy()]
    b_np, s_np, l_np = boxes.cpu().numpy(), scores.cpu().numpy(), labs.cpu().numpy()
    mismatches = 0
    for i, (eb_b, eb_sc, eb_l) in enumerate(eb_out):
        k = keep[img_k == i]  # ensemble-boxes returns the kept boxes with their original scores
        ok = _same(_rows(l_np[k], s_np[k], b_np[k]), _rows(eb_l, eb_sc, eb_b), score_tol=1e-6, box_tol=1e-6)
        mismatches += not ok
    return {
        **_speed_record(eb_s, ours_one_s, ours_batch_s, images=len(images), one_call_images=len(tensors)),
        "images_with_different_kept_set": mismatches,
        "per_image_call_images": len(tensors),
    }


def _speed_record(
    eb_s: float, ours_one_s: float, ours_batch_s: float, *, images: int, one_call_images: int
) -> dict:
    """ms per image of ensemble-boxes and of ours (per-image calls, one batched call), and the ratios."""
    eb, one, batch = eb_s / images, ours_one_s / one_call_images, ours_batch_s / images
    return {
        "ensemble_boxes_ms_per_image": 1e3 * eb,
        "ours_per_image_call_ms_per_image": 1e3 * one,
        "ours_batched_ms_per_image": 1e3 * batch,
        "speedup_per_image_call": eb / one,
        "speedup_batched": eb / batch,
    }


def _eb_soft():
    return {
        "method": 2,
        "iou_thr": SOFT["iou_threshold"],
        "sigma": SOFT["sigma"],
        "thresh": SOFT["score_threshold"],
    }


def bench_wbf(images, *, device, per_image_n, models):
    import ensemble_boxes as eb

    def eb_call(m):
        return eb.weighted_boxes_fusion([x[0] for x in m[:models]], [x[1] for x in m[:models]],
                                        [x[2] for x in m[:models]], iou_thr=WBF["iou_threshold"],
                                        skip_box_thr=WBF["skip_box_threshold"], conf_type=WBF["conf_type"])  # fmt: skip

    eb_call(images[0])
    t0 = _now()
    eb_out = [eb_call(m) for m in images]
    eb_s = _now() - t0

    tensors = [
        [tuple(torch.from_numpy(x).to(device) for x in mm) for mm in m[:models]] for m in images[:per_image_n]
    ]

    def ours_call(m):
        return weighted_boxes_fusion([x[0] for x in m], [x[1] for x in m], [x[2] for x in m], **WBF)

    ours_call(tensors[0])
    _, ours_one_s = _timed(lambda: [ours_call(m) for m in tensors], device)

    boxes, scores, labs, model_ids, img = _flat(images, device, models=models)
    (fb, fs, fl, fi), ours_batch_s = _timed(
        lambda: batched_weighted_boxes_fusion(
            boxes, scores, labs, model_ids=model_ids, image_ids=img, num_models=models, **WBF
        ),
        device,
    )
    fb, fs, fl, fi = (x.cpu().numpy() for x in (fb, fs, fl, fi))
    mismatches = 0
    for i, (eb_b, eb_sc, eb_l) in enumerate(eb_out):
        sel = fi == i
        ok = _same(_rows(fl[sel], fs[sel], fb[sel]), _rows(eb_l, eb_sc, eb_b), score_tol=1e-5, box_tol=1e-4)
        mismatches += not ok
    return {
        **_speed_record(eb_s, ours_one_s, ours_batch_s, images=len(images), one_call_images=len(tensors)),
        "images_with_different_output": mismatches,
        "per_image_call_images": len(tensors),
        "fused_boxes": len(fs),
    }


def bench_nms(images, *, device):
    import ensemble_boxes as eb
    from torchvision.ops import batched_nms

    first = images[0][0]
    eb.nms([first[0]], [first[1]], [first[2]], iou_thr=NMS_IOU)  # numba JIT warm-up
    t0 = _now()
    eb_out = [eb.nms([m[0][0]], [m[0][1]], [m[0][2]], iou_thr=NMS_IOU) for m in images]
    eb_s = _now() - t0
    tensors = [tuple(torch.from_numpy(x).to(device) for x in m[0]) for m in images]
    batched_nms(*tensors[0], NMS_IOU)
    keeps, tv_s = _timed(lambda: [batched_nms(b, s, lab, NMS_IOU) for b, s, lab in tensors], device)
    mismatches = 0
    for (b, s, lab), k, (eb_b, eb_sc, eb_l) in zip(tensors, keeps, eb_out):
        expected = _rows(eb_l, eb_sc, eb_b)
        k = k.cpu()
        got = _rows(lab.cpu()[k], s.cpu()[k], b.cpu()[k])
        mismatches += not _same(got, expected, score_tol=1e-6, box_tol=1e-6)
    n = len(images)
    return {
        "ensemble_boxes_ms_per_image": 1e3 * eb_s / n,
        "torchvision_per_image_call_ms_per_image": 1e3 * tv_s / n,
        "speedup_per_image_call": eb_s / tv_s,
        "images_with_different_kept_set": mismatches,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--boxes", type=int, default=300)
    parser.add_argument("--labels", type=int, default=365)
    parser.add_argument("--per-image-images", type=int, default=200,
                        help="images timed with one call per image (ours); the batched call uses all")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--only", choices=["soft_nms", "wbf", "nms"], action="append")
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="cpu: process CPU time (default on CPU); wall: perf_counter (default on GPU)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/fusion_<device>.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = args.clock or ("cpu" if device.type == "cpu" else "wall")
    _CLOCK["now"] = time.process_time if clock == "cpu" else time.perf_counter
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    images = make_workload(images=args.images, models=args.models, boxes=args.boxes, labels=args.labels)
    gen_s = time.perf_counter() - t0
    per_image_n = min(args.images, args.per_image_images)
    only = args.only or ["soft_nms", "wbf", "nms"]
    report = {
        "workload": {
            "images": args.images,
            "models": args.models,
            "boxes_per_model_image": args.boxes,
            "labels": args.labels,
            "generation_s": gen_s,
            "soft_nms_and_nms_use_models": 1,
            "wbf_uses_models": args.models,
        },
        "clock": clock,
        "settings": {"soft_nms": SOFT, "wbf": WBF, "nms_iou": NMS_IOU},
        "environment": {
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        },
    }
    out = args.out or Path(__file__).resolve().parent / "results" / f"fusion_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        report["environment"]["load_average_1min_before_after"] = [load_before[0], os.getloadavg()[0]]
        out.write_text(json.dumps(report, indent=2))

    if "soft_nms" in only:
        report["soft_nms"] = bench_soft_nms(
            images, device=device, per_image_n=per_image_n, labels=args.labels
        )
        print("soft_nms", json.dumps(report["soft_nms"], indent=1), flush=True)
        save()
    if "wbf" in only:
        report["wbf"] = bench_wbf(images, device=device, per_image_n=per_image_n, models=args.models)
        print("wbf", json.dumps(report["wbf"], indent=1), flush=True)
        save()
    if "nms" in only:
        report["nms"] = bench_nms(images, device=device)
        print("nms", json.dumps(report["nms"], indent=1), flush=True)
        save()
    save()
    print("wrote", out)
    return report


if __name__ == "__main__":
    main()
