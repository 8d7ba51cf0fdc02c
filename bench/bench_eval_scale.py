"""Benchmark: COCO evaluation at Objects365 v2 val scale (80,000 images x 100 detections = 8M).

Generated data shaped like Objects365: 365 classes with long-tailed frequencies (weight ~ rank^-1.2,
so the largest class holds ~22% of the boxes and the smallest ~1,000x fewer), ~15 ground-truth
boxes per image (Poisson, at least 1), 100 detections per image (60% jittered copies of a ground
truth box, a quarter of those with the wrong class, the rest random), scores with 4 decimals
(ties). Written once into ``--workdir`` as the files a real run leaves: ``gt.json`` and
``results.json`` (COCO results, ~0.7 GB), plus ``results.npz`` (the same results as columns) and
a slice of the first ``--slice-images`` images.

Each case runs in its own subprocess; the parent samples its resident memory every 0.2 s (and
kills it above ``--mem-limit-gib``), the child reports its own peak (``VmHWM``) and time:

- ``ours``: ``evaluate(gt.json, results.json)`` (results streamed in blocks), and from ``.npz``;
- ``ours_fixed_ap``: the same with ``fixed_ap=True, fixed_ap_k=10000``;
- ``faster_coco_eval``: ``COCO(gt.json).loadRes(results.json)`` + ``COCOeval_faster`` (standard);
- on the slice: ours, faster-coco-eval and pycocotools, whose numbers are compared (max |diff| of
  the 12 stats and all per-class APs); pycocotools' full-scale time and memory are extrapolated
  linearly from the slice (it is not run on 8M detections).

    python bench/bench_eval_scale.py                        # full: about 15 min on 2 cores
    python bench/bench_eval_scale.py --images 8000 --slice-images 1000   # quick
Results go to bench/results/eval_scale_cpu.json.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_CLASSES = 365
GIB = 1024 ** 3


def make_arrays(num_images: int, dets_per_image: int, seed: int) -> tuple[dict, dict]:
    """Ground truth and detections as arrays (vectorized; no dict per box)."""
    rng = np.random.default_rng(seed)
    cat_ids = np.arange(1, NUM_CLASSES + 1) * 2
    weights = 1.0 / np.arange(1, NUM_CLASSES + 1) ** 1.2
    weights /= weights.sum()
    width, height = 800.0, 600.0
    n_gt = np.maximum(1, rng.poisson(15, size=num_images))
    g_img = np.repeat(np.arange(1, num_images + 1), n_gt)
    g_cls = rng.choice(cat_ids, size=g_img.size, p=weights)
    g_wh = np.exp(rng.uniform(np.log(8), np.log(400), size=(g_img.size, 2)))
    g_xy = rng.uniform(0, 1, size=(g_img.size, 2)) * (np.array([width, height]) - g_wh).clip(1)
    gt = {"image_id": g_img, "category_id": g_cls, "bbox": np.round(np.hstack([g_xy, g_wh]), 2)}

    d_img = np.repeat(np.arange(1, num_images + 1), dets_per_image)
    first = np.r_[0, np.cumsum(n_gt)[:-1]]
    src = first[d_img - 1] + (rng.random(d_img.size) * n_gt[d_img - 1]).astype(np.int64)
    near = rng.random(d_img.size) < 0.6
    jitter = rng.normal(0, 0.1, size=(d_img.size, 4))
    rand_wh = np.exp(rng.uniform(np.log(8), np.log(400), size=(d_img.size, 2)))
    wh = np.where(near[:, None], gt["bbox"][src, 2:] * np.exp(jitter[:, 2:]), rand_wh)
    xy = np.where(near[:, None], gt["bbox"][src, :2] + jitter[:, :2] * gt["bbox"][src, 2:],
                  rng.uniform(0, 1, size=(d_img.size, 2)) * (np.array([width, height]) - wh).clip(1))
    wrong = rng.random(d_img.size) < 0.25
    cls = np.where(near & ~wrong, g_cls[src], rng.choice(cat_ids, size=d_img.size, p=weights))
    score = np.round(rng.random(d_img.size) * np.where(near, 1.0, 0.5), 4)
    dets = {"image_id": d_img, "category_id": cls, "bbox": np.round(np.hstack([xy, wh]), 2), "score": score}
    return gt, dets


def write_gt(path: Path, gt: dict, num_images: int) -> None:
    bbox = gt["bbox"].tolist()
    anns = [{"id": i + 1, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
            for i, (im, c, b) in enumerate(zip(gt["image_id"].tolist(), gt["category_id"].tolist(), bbox))]
    images = [{"id": i, "width": 800, "height": 600, "file_name": f"{i:06d}.jpg"} for i in range(1, num_images + 1)]
    cats = [{"id": int(c), "name": f"class_{int(c)}"} for c in np.arange(1, NUM_CLASSES + 1) * 2]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def write_results(path: Path, dets: dict, *, chunk: int = 500_000) -> None:
    """COCO results JSON written from arrays in chunks (the text a detector run leaves behind)."""
    fmt = '{"image_id": %d, "category_id": %d, "bbox": [%.2f, %.2f, %.2f, %.2f], "score": %.4f}'
    n = len(dets["score"])
    with open(path, "w") as f:
        f.write("[")
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            rows = zip(dets["image_id"][start:stop].tolist(), dets["category_id"][start:stop].tolist(),
                       *dets["bbox"][start:stop].T.tolist(), dets["score"][start:stop].tolist())
            f.write((", " if start else "") + ", ".join(fmt % row for row in rows))
        f.write("]")


def prepare(workdir: Path, args) -> dict:
    """Write the workload files once (reused when the manifest matches)."""
    manifest = {"images": args.images, "dets": args.dets, "seed": args.seed, "slice_images": args.slice_images,
                "version": 1}
    mpath = workdir / "manifest.json"
    if mpath.exists() and json.loads(mpath.read_text()) == manifest:
        return manifest
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gt, dets = make_arrays(args.images, args.dets, args.seed)
    for prefix, n_img in (("", args.images), ("slice_", args.slice_images)):
        g = {k: v[gt["image_id"] <= n_img] for k, v in gt.items()}
        d = {k: v[dets["image_id"] <= n_img] for k, v in dets.items()}
        write_gt(workdir / f"{prefix}gt.json", g, n_img)
        write_results(workdir / f"{prefix}results.json", d)
        np.savez(workdir / f"{prefix}results.npz", **d)
    mpath.write_text(json.dumps(manifest))
    print(f"workload written to {workdir} in {time.perf_counter() - t0:.0f}s", flush=True)
    return manifest


# ------------------------------------------------------------------------------------------ child

def run_case(case: str, workdir: Path, out: Path) -> None:
    """Run one case in this (child) process and write its timing, peak memory and numbers."""
    prefix = "slice_" if case.startswith("slice_") else ""
    name = case.removeprefix("slice_")
    gt_path, res_json = workdir / f"{prefix}gt.json", workdir / f"{prefix}results.json"
    t0 = time.perf_counter()
    record: dict = {}
    if name in ("ours", "ours_npz", "ours_fixed_ap"):
        from o365lib.evaluation import evaluate

        source = workdir / f"{prefix}results.npz" if name == "ours_npz" else res_json
        fixed = name == "ours_fixed_ap"
        m = evaluate(gt_path, source, ranges=("1-150", "151-300", "301-365"), fixed_ap=fixed,
                     fixed_ap_k=10000 if fixed else None)
        record.update(stats=m["stats"], per_class=m["per_class"], ranges=m["ranges"], num_detections=m["num_detections"])
        if fixed:
            record["fixed_ap"] = {k: v for k, v in m["fixed_ap"].items() if k != "per_class"}
    elif name in ("faster_coco_eval", "pycocotools"):
        if name == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(str(gt_path))
            coco_dt = coco_gt.loadRes(str(res_json))
            ev = COCOeval(coco_gt, coco_dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        from o365lib.evaluation import per_class_ap  # the same reduction as evaluate's, for exact comparison

        aps = per_class_ap(np.asarray(ev.eval["precision"]), ev.params.catIds)
        per_class = {str(c): None if v is None else 100 * v for c, v in aps.items()}
        record.update(stats=[None if s < 0 else 100 * float(s) for s in ev.stats[:12]], per_class=per_class,
                      num_detections=len(coco_dt.anns))
    else:
        raise SystemExit(f"unknown case {case}")
    record["seconds"] = time.perf_counter() - t0
    record["peak_rss_gib_self"] = _status_bytes(os.getpid(), "VmHWM:") / GIB  # this process's high-water mark
    out.write_text(json.dumps(record))


# ----------------------------------------------------------------------------------------- parent

def _status_bytes(pid: int, field: str = "VmRSS:") -> int:
    """A memory line of /proc/<pid>/status in bytes (VmHWM, the peak, is reset by exec, unlike
    ``ru_maxrss``, which a child started by fork + exec inherits from its parent)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def spawn(case: str, workdir: Path, mem_limit_gib: float, timeout_s: float) -> dict:
    """Run a case in a child process, watching its memory; returns its record (or why it stopped)."""
    out = workdir / f"case_{case}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--case", case, "--workdir", str(workdir)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak, stopped = 0, None
    while proc.poll() is None:
        peak = max(peak, _status_bytes(proc.pid))
        elapsed = time.perf_counter() - t0
        if peak > mem_limit_gib * GIB or elapsed > timeout_s:
            stopped = (f"stopped by the bench at {peak / GIB:.2f} GiB resident after {elapsed:.0f}s "
                       f"(limit {mem_limit_gib} GiB, {timeout_s:.0f}s)")
            proc.kill()
            proc.wait()
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if stopped or proc.returncode != 0 or not out.exists():
        record = {"completed": False, "reason": stopped or f"exit code {proc.returncode}", "wall_seconds": wall}
    else:
        record = json.loads(out.read_text())
        record["completed"] = True
    record["peak_rss_gib_sampled"] = peak / GIB
    print(f"{case:24s} " + (f"{record['seconds']:8.1f}s  peak {max(peak / GIB, record['peak_rss_gib_self']):.2f} GiB"
                            if record["completed"] else record["reason"]), flush=True)
    return record


def max_diff(a: dict, b: dict) -> dict:
    stats = [abs(x - y) for x, y in zip(a["stats"], b["stats"]) if x is not None and y is not None]
    same_none = all((x is None) == (y is None) for x, y in zip(a["stats"], b["stats"]))
    per = [abs(a["per_class"][k] - b["per_class"][k]) for k in a["per_class"]
           if a["per_class"][k] is not None and b["per_class"].get(k) is not None]
    none_match = all((a["per_class"][k] is None) == (b["per_class"].get(k) is None) for k in a["per_class"])
    return {"stats": max(stats, default=0.0), "per_class": max(per, default=0.0), "undefined_match": same_none and none_match}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=80_000)
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--slice-images", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/o365book_eval_scale")
    parser.add_argument("--mem-limit-gib", type=float, default=9.5, help="kill a case above this resident size")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per case")
    parser.add_argument("--cases", default="slice_ours,slice_faster_coco_eval,slice_pycocotools,ours,ours_npz,"
                                           "ours_fixed_ap,faster_coco_eval")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval_scale_cpu.json"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    if args.case:
        run_case(args.case, workdir, workdir / f"case_{args.case}.json")
        return
    prepare(workdir, args)
    load_before = os.getloadavg()
    records = {case: spawn(case, workdir, args.mem_limit_gib, args.timeout) for case in args.cases.split(",")}
    scale = args.images / args.slice_images
    result: dict = {
        "benchmark": "COCO bbox evaluation at Objects365 v2 val scale, each case in its own process",
        "images": args.images, "detections": args.images * args.dets, "classes": NUM_CLASSES,
        "slice_images": args.slice_images, "seed": args.seed, "cases": records,
    }
    slices = {k.removeprefix("slice_"): v for k, v in records.items() if k.startswith("slice_") and v["completed"]}
    if "ours" in slices:
        result["slice_max_abs_diff"] = {name: max_diff(slices["ours"], rec) for name, rec in slices.items() if name != "ours"}
    if "pycocotools" in slices:
        py = slices["pycocotools"]
        result["pycocotools_extrapolated"] = {
            "rule": f"slice time and peak memory x {scale:g} (images ratio); not run at full scale",
            "seconds": py["seconds"] * scale, "peak_rss_gib": max(py["peak_rss_gib_self"], py["peak_rss_gib_sampled"]) * scale}
        if records.get("ours", {}).get("completed"):
            result["speedup_vs_pycocotools_extrapolated"] = result["pycocotools_extrapolated"]["seconds"] / records["ours"]["seconds"]
    import faster_coco_eval

    result.update(loadavg_before=load_before, loadavg_after=os.getloadavg(), faster_coco_eval=faster_coco_eval.__version__,
                  numpy=np.__version__, python=platform.python_version(), cpu_count=os.cpu_count(),
                  mem_total_gib=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB)
    for rec in records.values():
        rec.pop("per_class", None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "cases"}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
