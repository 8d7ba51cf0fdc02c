"""Benchmark: ``o365-eval``'s engine against the real peers, side by side, COCO and LVIS protocols.

Peers (each case in its own process; the parent samples its resident memory every 0.2 s and
kills it above ``--mem-limit-gib``; the child reports its peak ``VmHWM`` and wall time from the
file paths to the summary numbers, result JSON parsing included):

- COCO protocol, 5000 images x 100 detections, 365 long-tailed classes (``make_arrays`` of
  bench_eval_scale.py): ``ours`` (``evaluate``), ``ours_ultrafast_engine`` (``evaluate(...,
  engine="ultrafast")``: our reading and checks, ultrafast's matching), ``ultrafast``
  (ultrafast-pycocotools COCOeval on the files),
  ``faster_coco_eval`` (COCOeval_faster, standard mode), ``pycocotools``;
- LVIS protocol on an LVIS-val-shaped workload (``--lvis-images`` 20,000 images, 1203 classes with
  r/c/f frequencies, ~12 ground-truth boxes, 8 negative and some not-exhaustive classes per image,
  300 detections per image = 6M): ``ours`` (``protocol="lvis"``), ``ultrafast_lvis``
  (``lvis_style=True``, official protocol), ``faster_coco_eval_lvis`` (``lvis_style=True``,
  maxDets [300]); ``lvis_api`` (lvis-api 0.5.3, the reference) runs on the slice of the first
  ``--lvis-slice-images`` images only, with every other LVIS case, for the exactness check.

Every peer's numbers are read off its own accumulated precision/recall arrays with one reduction
(the COCO or LVIS summary: mean of the valid entries), and compared with ours: max |difference|
of the summary numbers and of all per-class APs (0-100 scale). The load average is recorded
before and after (the machine is shared). Results: ``bench/results/eval_peers_cpu.json``.

    python bench/bench_eval_peers.py                               # everything (about 30 min)
    python bench/bench_eval_peers.py --cases coco --coco-images 500   # quick
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench_eval_scale import GIB, _status_bytes, make_arrays, write_gt, write_results

LVIS_CLASSES = 1203
COCO_CASES = ("ours", "ours_ultrafast_engine", "ultrafast", "faster_coco_eval", "pycocotools")
LVIS_CASES = ("ours", "ultrafast_lvis", "faster_coco_eval_lvis")


def make_lvis(num_images: int, *, seed: int = 0) -> tuple[dict, dict]:
    """LVIS-shaped ground truth (dict) and detections (arrays, 300 per image)."""
    rng = np.random.default_rng(seed)
    cat_ids = np.arange(1, LVIS_CLASSES + 1)
    weights = 1.0 / cat_ids ** 1.1
    weights /= weights.sum()
    freq = np.where(cat_ids <= 405, "f", np.where(cat_ids <= 866, "c", "r"))
    n_gt = np.maximum(1, rng.poisson(12, size=num_images))
    g_img = np.repeat(np.arange(1, num_images + 1), n_gt)
    g_cls = rng.choice(cat_ids, size=g_img.size, p=weights)
    g_wh = np.exp(rng.uniform(np.log(6), np.log(400), size=(g_img.size, 2)))
    g_xy = rng.uniform(0, 1, size=(g_img.size, 2)) * (np.array([640.0, 480.0]) - g_wh).clip(1)
    g_box = np.round(np.hstack([g_xy, g_wh]), 2)
    anns = [{"id": i + 1, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3]}
            for i, (im, c, b) in enumerate(zip(g_img.tolist(), g_cls.tolist(), g_box.tolist()))]
    first = np.r_[0, np.cumsum(n_gt)[:-1]]
    images = []
    for i in range(num_images):
        present = set(g_cls[first[i]:first[i] + n_gt[i]].tolist())
        neg = sorted({int(c) for c in rng.choice(cat_ids, size=8, p=weights)} - present)
        not_exhaustive = sorted(c for c in present if rng.random() < 0.1)
        images.append({"id": i + 1, "width": 640, "height": 480, "neg_category_ids": neg,
                       "not_exhaustive_category_ids": not_exhaustive})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": int(c), "name": f"class_{int(c)}", "frequency": str(f)} for c, f in zip(cat_ids, freq)]}

    per = 300
    d_img = np.repeat(np.arange(1, num_images + 1), per)
    src = first[d_img - 1] + (rng.random(d_img.size) * n_gt[d_img - 1]).astype(np.int64)
    near = rng.random(d_img.size) < 0.4
    jitter = rng.normal(0, 0.1, size=(d_img.size, 4))
    rand_wh = np.exp(rng.uniform(np.log(6), np.log(400), size=(d_img.size, 2)))
    wh = np.where(near[:, None], g_box[src, 2:] * np.exp(jitter[:, 2:]), rand_wh)
    xy = np.where(near[:, None], g_box[src, :2] + jitter[:, :2] * g_box[src, 2:],
                  rng.uniform(0, 1, size=(d_img.size, 2)) * (np.array([640.0, 480.0]) - wh).clip(1))
    wrong = rng.random(d_img.size) < 0.3
    cls = np.where(near & ~wrong, g_cls[src], rng.choice(cat_ids, size=d_img.size, p=weights))
    score = np.round(rng.random(d_img.size) * np.where(near, 1.0, 0.3), 4)
    dets = {"image_id": d_img, "category_id": cls, "bbox": np.round(np.hstack([xy, wh]), 2), "score": score}
    return gt, dets


def prepare(workdir: Path, args) -> None:
    """Write the workload files once (reused while the manifest matches)."""
    manifest = {"coco_images": args.coco_images, "lvis_images": args.lvis_images,
                "lvis_slice_images": args.lvis_slice_images, "seed": args.seed, "version": 1}
    path = workdir / "manifest.json"
    if path.exists() and json.loads(path.read_text()) == manifest:
        return
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gt, dets = make_arrays(args.coco_images, 100, args.seed)
    write_gt(workdir / "coco_gt.json", gt, args.coco_images)
    write_results(workdir / "coco_results.json", dets)
    lvis_gt, lvis_dets = make_lvis(args.lvis_images, seed=args.seed)
    for prefix, n in (("lvis", args.lvis_images), ("lvis_slice", args.lvis_slice_images)):
        part = dict(lvis_gt, images=lvis_gt["images"][:n], annotations=[a for a in lvis_gt["annotations"]
                                                                        if a["image_id"] <= n])
        (workdir / f"{prefix}_gt.json").write_text(json.dumps(part))
        keep = lvis_dets["image_id"] <= n
        write_results(workdir / f"{prefix}_results.json", {k: v[keep] for k, v in lvis_dets.items()})
    path.write_text(json.dumps(manifest))
    print(f"workloads written to {workdir} in {time.perf_counter() - t0:.0f}s", flush=True)


# ------------------------------------------------------------------------------------------ child

def _reduce(precision: np.ndarray, recall: np.ndarray, category_ids, *, lvis_frequency=None) -> dict:
    """Summary numbers and per-class AP (0-100) read off accumulated arrays, one rule for everyone."""
    from o365lib.evaluation import per_class_ap, summary_stats
    from o365lib.evaluation.engine import IOU_THRESHOLDS
    from o365lib.evaluation.lvis import lvis_stats

    if lvis_frequency is not None:
        stats = lvis_stats(precision, recall, iou_thrs=IOU_THRESHOLDS, category_ids=category_ids,
                           frequency=lvis_frequency)
    else:
        stats = summary_stats(precision, recall, iou_thrs=IOU_THRESHOLDS)
    per_class = per_class_ap(precision, category_ids)
    return {"stats": [None if s < 0 else 100 * s for s in stats],
            "per_class": {str(c): None if v is None else 100 * v for c, v in per_class.items()}}


def run_case(protocol: str, case: str, gt_path: Path, res_path: Path) -> dict:
    """One evaluation, timed from the file paths to the numbers."""
    t0 = time.perf_counter()
    quiet = contextlib.redirect_stdout(io.StringIO())
    frequency = None
    if protocol == "lvis":
        frequency = {c["id"]: c["frequency"] for c in json.loads(gt_path.read_text())["categories"]}
        t0 = time.perf_counter()  # reading the frequencies for the reduction is not the peer's time
    if case in ("ours", "ours_ultrafast_engine"):
        from o365lib.evaluation import evaluate_arrays

        engine = "ultrafast" if case == "ours_ultrafast_engine" else "numpy"
        _, arrays = evaluate_arrays(str(gt_path), str(res_path), protocol=protocol, ranges=(), engine=engine)
        precision, recall, cats = arrays["precision"], arrays["recall"], arrays["category_ids"]
    elif case in ("ultrafast", "ultrafast_lvis"):
        from ultrafast_pycocotools import COCO, COCOeval

        with quiet:
            coco_gt = COCO(str(gt_path))
            coco_dt = coco_gt.loadRes(str(res_path))
            ev = COCOeval(coco_gt, coco_dt, "bbox", lvis_style=case == "ultrafast_lvis")
            ev.evaluate(), ev.accumulate(), ev.summarize()
        precision, recall, cats = np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"]), ev.params.catIds
    elif case in ("faster_coco_eval", "faster_coco_eval_lvis", "pycocotools"):
        if case == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        with quiet:
            coco_gt = COCO(str(gt_path))
            coco_dt = coco_gt.loadRes(str(res_path))
            kwargs = {"lvis_style": True} if case == "faster_coco_eval_lvis" else {}
            ev = COCOeval(coco_gt, coco_dt, "bbox", **kwargs)
            if case == "faster_coco_eval_lvis":
                ev.params.maxDets = [300]
            ev.evaluate(), ev.accumulate(), ev.summarize()
        precision, recall, cats = np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"]), ev.params.catIds
    elif case == "lvis_api":
        sys.path.insert(0, str(HERE.parent))
        from tests.support.lvis_reference import install_numpy_float_alias

        install_numpy_float_alias()
        import logging

        from lvis import LVIS, LVISEval, LVISResults

        logging.getLogger("lvis").setLevel(logging.ERROR)
        with quiet:
            lvis_gt = LVIS(str(gt_path))
            ev = LVISEval(lvis_gt, LVISResults(lvis_gt, str(res_path)), iou_type="bbox")
            ev.run()
        precision, recall = ev.eval["precision"][..., None], ev.eval["recall"][..., None]
        cats = ev.params.cat_ids
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - t0
    record = _reduce(precision, recall, cats, lvis_frequency=frequency)
    record.update(seconds=seconds, peak_rss_gib_self=_status_bytes(os.getpid(), "VmHWM:") / GIB)
    return record


# ----------------------------------------------------------------------------------------- parent

def spawn(protocol: str, case: str, gt_path: Path, res_path: Path, out: Path, *, mem_limit_gib: float,
          timeout_s: float) -> dict:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", protocol, case, str(gt_path), str(res_path), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    peak, stopped = 0, None
    while proc.poll() is None:
        peak = max(peak, _status_bytes(proc.pid))
        elapsed = time.perf_counter() - t0
        if peak > mem_limit_gib * GIB or elapsed > timeout_s:
            stopped = (f"stopped at {peak / GIB:.2f} GiB resident after {elapsed:.0f} s "
                       f"(limits {mem_limit_gib} GiB, {timeout_s:.0f} s)")
            proc.kill()
            proc.wait()
            break
        time.sleep(0.2)
    if stopped or proc.returncode != 0 or not out.exists():
        record = {"completed": False, "reason": stopped or f"exit code {proc.returncode}",
                  "wall_seconds": time.perf_counter() - t0}
    else:
        record = json.loads(out.read_text()) | {"completed": True}
    record["peak_rss_gib_sampled"] = peak / GIB
    record["peak_rss_gib"] = max(peak / GIB, record.get("peak_rss_gib_self", 0))
    record["loadavg_after"] = os.getloadavg()
    print(f"{protocol:5s} {case:24s} " + (f"{record['seconds']:8.2f} s  peak {record['peak_rss_gib']:.2f} GiB"
                                         if record["completed"] else record["reason"]), flush=True)
    return record


def max_diff(a: dict, b: dict) -> dict:
    """Max |a - b| over the summary numbers and the per-class APs; undefined (None) must agree."""
    pairs = list(zip(a["stats"], b["stats"])) + [(a["per_class"][k], b["per_class"].get(k)) for k in a["per_class"]]
    same_undefined = all((x is None) == (y is None) for x, y in pairs)
    diffs = [abs(x - y) for x, y in pairs if x is not None and y is not None]
    stats = [abs(x - y) for x, y in zip(a["stats"], b["stats"]) if x is not None and y is not None]
    return {"stats": max(stats, default=0.0), "all": max(diffs, default=0.0), "same_undefined": same_undefined}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        protocol, case, gt_path, res_path, out = sys.argv[2:7]
        record = run_case(protocol, case, Path(gt_path), Path(res_path))
        Path(out).write_text(json.dumps(record))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/o365_bench_eval_peers"))
    parser.add_argument("--cases", default="coco,lvis_slice,lvis", help="workloads to run, in order")
    parser.add_argument("--coco-images", type=int, default=5000)
    parser.add_argument("--lvis-images", type=int, default=20000)
    parser.add_argument("--lvis-slice-images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mem-limit-gib", type=float, default=12.0)
    parser.add_argument("--timeout", type=float, default=1500.0, help="per case, seconds")
    parser.add_argument("--skip", default="", help="comma-separated protocol:case to leave out")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "eval_peers_cpu.json")
    args = parser.parse_args()
    prepare(args.workdir, args)
    skip = set(filter(None, args.skip.split(",")))
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update(benchmark="o365-eval's engine vs pycocotools, faster-coco-eval, ultrafast-pycocotools, lvis-api",
                  coco_images=args.coco_images, lvis_images=args.lvis_images,
                  lvis_slice_images=args.lvis_slice_images, seed=args.seed, python=platform.python_version(),
                  cpu_count=os.cpu_count(), versions=_versions())
    for workload in args.cases.split(","):
        protocol = "coco" if workload == "coco" else "lvis"
        cases = COCO_CASES if workload == "coco" else LVIS_CASES + (("lvis_api",) if workload == "lvis_slice" else ())
        gt_path, res_path = args.workdir / f"{workload}_gt.json", args.workdir / f"{workload}_results.json"
        block = {"loadavg_before": os.getloadavg(), "num_detections": None, "cases": {}}
        for case in cases:
            if f"{workload}:{case}" in skip:
                continue
            block["cases"][case] = spawn(protocol, case, gt_path, res_path, args.workdir / f"{workload}_{case}.json",
                                         mem_limit_gib=args.mem_limit_gib, timeout_s=args.timeout)
        ours = block["cases"].get("ours", {})
        for case, record in block["cases"].items():
            if case != "ours" and record.get("completed") and ours.get("completed"):
                record["max_abs_diff_vs_ours"] = max_diff(ours, record)
                record["ours_speedup"] = record["seconds"] / ours["seconds"]
        for record in block["cases"].values():
            record.pop("per_class", None)
        block["loadavg_after"] = os.getloadavg()
        result[workload] = block
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("numpy", "pycocotools", "faster-coco-eval", "ultrafast-pycocotools", "lvis"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    main()
