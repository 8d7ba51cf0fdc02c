"""Benchmark o365lib.tta soft-NMS, WBF and NMS against ensemble-boxes 1.0.9.

Workload (deterministic): ``--models`` models x ``--images`` images x ``--boxes`` boxes per
model and image over ``--labels`` labels.  Each image has 2-20 objects with long-tailed
labels; each model emits jittered copies of the objects (60% with the object's label, the
rest with other long-tailed labels) plus 20% background boxes, scores from beta
distributions.  Boxes are normalised x1y1x2y2 in [0, 1] (ensemble-boxes' domain).

For soft-NMS and WBF: ensemble-boxes called once per image (its numba JIT warmed up first),
ours called once per image (``soft_nms`` / ``weighted_boxes_fusion``, the default backend:
numba on CPU, warmed up), ours batched (all images in one call, groups = image x label) with
the default backend and with the torch backend.  Per-call medians and totals, speed-up
ratios, and the number of images whose outputs differ (ours vs ensemble-boxes: kept rows for
soft-NMS, exact float32 rows for WBF; per-image vs batched).  NMS: ensemble-boxes vs
torchvision ``batched_nms`` per image.  Times are process CPU time on CPU (other tenants of a
shared machine do not count), wall time on GPU; the JSON also records the load average and
the process CPU time, and numba's first-call cost in fresh processes (cached, cold compile).
JSON goes to ``bench/results/fusion_<device>.json``.

    python bench/bench_fusion.py --images 100
    python bench/bench_fusion.py --device cuda
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from o365lib.ops import HAVE_NUMBA, soft_nms
from o365lib.ops.wbf import batched_weighted_boxes_fusion, weighted_boxes_fusion

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


def _per_call(fn, items):
    """Call ``fn`` on each item, timing every call: (outputs, total s, median ms per call)."""
    outs, times = [], []
    for item in items:
        t0 = _now()
        outs.append(fn(item))
        times.append(_now() - t0)
    return outs, float(np.sum(times)), 1e3 * float(np.median(times))


def _speed_record(
    eb_total, eb_median_ms, one_total, one_median_ms, batch_s, torch_batch_s, *, images: int
) -> dict:
    """ms per image of ensemble-boxes and ours (per-image calls, batched calls), and the ratios."""
    eb = eb_total / images
    return {
        "ensemble_boxes_ms_per_image": 1e3 * eb,
        "ensemble_boxes_median_ms_per_call": eb_median_ms,
        "ours_per_image_call_ms_per_image": 1e3 * one_total / images,
        "ours_median_ms_per_call": one_median_ms,
        "ours_batched_ms_per_image": 1e3 * batch_s / images,
        "ours_batched_torch_backend_ms_per_image": 1e3 * torch_batch_s / images,
        "speedup_per_image_call": eb_total / one_total,
        "speedup_per_image_call_median": eb_median_ms / one_median_ms,
        "speedup_batched": eb_total / batch_s,
        "speedup_batched_torch_backend": eb_total / torch_batch_s,
    }


def bench_soft_nms(images, *, device, labels):
    """One model per image: ensemble-boxes per image vs ours per image and batched (both backends)."""
    import ensemble_boxes as eb

    first = images[0][0]
    eb.soft_nms([first[0]], [first[1]], [first[2]], **_eb_soft())  # warm-up
    eb_out, eb_s, eb_med = _per_call(
        lambda m: eb.soft_nms([m[0][0]], [m[0][1]], [m[0][2]], **_eb_soft()), images
    )

    tensors = [tuple(torch.from_numpy(x).to(device) for x in m[0]) for m in images]
    soft_nms(*tensors[0], **SOFT)  # numba: loads the compiled kernel (or compiles it once)
    ours_out, one_s, one_med = _per_call(lambda t: soft_nms(*t, **SOFT), tensors)
    _sync(device)

    boxes, scores, labs, _, img = _flat(images, device, models=1)
    batched = {}
    for backend in ("auto", "torch"):
        soft_nms(boxes[:300], scores[:300], labs[:300], backend=backend, **SOFT)
        batched[backend] = _timed(lambda b=backend: soft_nms(boxes, scores, img * labels + labs, backend=b, **SOFT),
                                  device)  # fmt: skip
    b_np, s_np, l_np = boxes.cpu().numpy(), scores.cpu().numpy(), labs.cpu().numpy()
    img_np, offsets = img.cpu().numpy(), np.cumsum([0] + [len(m[0][1]) for m in images])
    vs_eb = vs_batched = 0
    for i, ((eb_b, eb_sc, eb_l), (k1, n1)) in enumerate(zip(eb_out, ours_out)):
        k = k1.cpu().numpy() + offsets[i]  # ensemble-boxes returns the kept boxes with original scores
        vs_eb += not _same(_rows(l_np[k], s_np[k], b_np[k]), _rows(eb_l, eb_sc, eb_b), score_tol=0, box_tol=0)
        for keep, new in (out for out, _ in batched.values()):
            mine = img_np[keep.cpu().numpy()] == i
            vs_batched += not (torch.equal(keep[torch.from_numpy(mine)].cpu() - offsets[i], k1.cpu())
                               and torch.allclose(new[torch.from_numpy(mine)].cpu(), n1.cpu(), rtol=0, atol=1e-7))  # fmt: skip
    return {
        **_speed_record(
            eb_s, eb_med, one_s, one_med, batched["auto"][1], batched["torch"][1], images=len(images)
        ),
        "images_with_different_kept_set": vs_eb,
        "images_where_batched_differs_from_per_image": vs_batched,
    }


def _eb_soft():
    return {
        "method": 2,
        "iou_thr": SOFT["iou_threshold"],
        "sigma": SOFT["sigma"],
        "thresh": SOFT["score_threshold"],
    }


def bench_wbf(images, *, device, models):
    """``models`` models per image: ensemble-boxes per image vs ours per image and batched."""
    import ensemble_boxes as eb

    def eb_call(m):
        return eb.weighted_boxes_fusion([x[0] for x in m[:models]], [x[1] for x in m[:models]],
                                        [x[2] for x in m[:models]], iou_thr=WBF["iou_threshold"],
                                        skip_box_thr=WBF["skip_box_threshold"], conf_type=WBF["conf_type"])  # fmt: skip

    eb_call(images[0])
    eb_out, eb_s, eb_med = _per_call(eb_call, images)

    tensors = [[tuple(torch.from_numpy(x).to(device) for x in mm) for mm in m[:models]] for m in images]

    def ours_call(m):
        return weighted_boxes_fusion([x[0] for x in m], [x[1] for x in m], [x[2] for x in m], **WBF)

    ours_call(tensors[0])
    ours_out, one_s, one_med = _per_call(ours_call, tensors)
    _sync(device)

    flat = _flat(images, device, models=models)
    batched = {}
    for backend in ("auto", "torch"):
        n = int((flat[4] == 0).sum())  # warm-up on the first image
        batched_weighted_boxes_fusion(*(x[:n] for x in flat[:3]), model_ids=flat[3][:n], num_models=models,
                                      backend=backend, **WBF)  # fmt: skip
        batched[backend] = _timed(
            lambda b=backend: batched_weighted_boxes_fusion(*flat[:3], model_ids=flat[3], image_ids=flat[4],
                                                            num_models=models, backend=b, **WBF),
            device,
        )  # fmt: skip
    vs_eb = vs_batched = 0
    for i, ((eb_b, eb_sc, eb_l), one) in enumerate(zip(eb_out, ours_out)):
        one = [x.cpu() for x in one]
        # exact: our WBF replays ensemble-boxes' float32 roundings (its float64 scores cast like ours)
        got, expected = (
            _rows(one[2], one[1], one[0]),
            _rows(eb_l, eb_sc.astype(np.float32), eb_b.astype(np.float32)),
        )
        vs_eb += not _same(got, expected, score_tol=0, box_tol=0)
        for (fb, fs, fl, fi), _ in batched.values():
            sel = fi == i
            vs_batched += not all(torch.equal(a[sel].cpu(), b) for a, b in zip((fb, fs, fl), one))
    return {
        **_speed_record(
            eb_s, eb_med, one_s, one_med, batched["auto"][1], batched["torch"][1], images=len(images)
        ),
        "images_with_different_output": vs_eb,
        "images_where_batched_differs_from_per_image": vs_batched,
        "fused_boxes": len(batched["auto"][0][1]),
    }


def numba_first_call_s() -> dict:
    """Seconds for import + first soft-NMS and WBF calls in a fresh process: with the on-disk
    numba cache (the normal case) and with an empty cache (a one-time compile)."""
    code = (
        "import time; t = time.perf_counter(); import torch; from o365lib.tta import soft_nms, "
        "weighted_boxes_fusion as w; t1 = time.perf_counter(); b = torch.rand(9, 4); b[:, 2:] += 1; "
        "s = torch.rand(9); l = torch.zeros(9, dtype=torch.long); soft_nms(b, s, l); "
        "t2 = time.perf_counter(); w([b / 2], [s], [l]); print(t1 - t, t2 - t1, time.perf_counter() - t2)"
    )
    out = {}
    root = Path(__file__).resolve().parents[1]
    for name, extra in (("cached", {}), ("cold_compile", {"NUMBA_CACHE_DIR": tempfile.mkdtemp()})):
        env = {**os.environ, **extra}
        res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                             check=True)  # fmt: skip
        imp, soft, wbf = (float(x) for x in res.stdout.split())
        out[name] = {"import_torch_and_o365lib_s": imp, "first_soft_nms_s": soft, "first_wbf_s": wbf}
        if extra:
            shutil.rmtree(extra["NUMBA_CACHE_DIR"], ignore_errors=True)
    return out


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
    parser.add_argument("--no-compile-check", action="store_true",
                        help="skip timing numba's first call in fresh processes (cached and cold cache)")  # fmt: skip
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
    cpu_before = time.process_time()
    t0 = time.perf_counter()
    images = make_workload(images=args.images, models=args.models, boxes=args.boxes, labels=args.labels)
    gen_s = time.perf_counter() - t0
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
            "numba": HAVE_NUMBA and importlib.metadata.version("numba"),
        },
    }
    out = args.out or Path(__file__).resolve().parent / "results" / f"fusion_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        report["environment"]["load_average_1min_before_after"] = [load_before[0], os.getloadavg()[0]]
        report["environment"]["process_cpu_s"] = time.process_time() - cpu_before
        out.write_text(json.dumps(report, indent=2))

    if "soft_nms" in only:
        report["soft_nms"] = bench_soft_nms(images, device=device, labels=args.labels)
        print("soft_nms", json.dumps(report["soft_nms"], indent=1), flush=True)
        save()
    if "wbf" in only:
        report["wbf"] = bench_wbf(images, device=device, models=args.models)
        print("wbf", json.dumps(report["wbf"], indent=1), flush=True)
        save()
    if "nms" in only:
        report["nms"] = bench_nms(images, device=device)
        print("nms", json.dumps(report["nms"], indent=1), flush=True)
        save()
    if HAVE_NUMBA and device.type == "cpu" and not args.no_compile_check:
        report["numba_first_call_s"] = numba_first_call_s()
        print("numba first call", json.dumps(report["numba_first_call_s"], indent=1), flush=True)
    save()
    print("wrote", out)
    return report


if __name__ == "__main__":
    main()
