"""Inference of the default detector: two ways of predicting the val split, alternated in one process.

Run from the project root after the default book (it needs the cached seed-0 baseline):

- ``python bench/bench_infer_cpu.py --compare roi_align``: RoIAlign through the library's gather against
  torchvision's kernel (both float32);
- ``python bench/bench_infer_cpu.py --compare precision``: float32 against oneDNN bf16 autocast
  (``predict(amp="bf16")``, the default profile's ``eval.amp``).

Predicts the 670 val images each way in turn, ``--rounds`` times, and prints seconds, images/s, the number
of detections and the val mAP (overall and per rank range) of each, how many detection records are
identical, and the ratio of the best times. Results go to ``bench/results/infer_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from torchvision.ops import MultiScaleRoIAlign

from o365lib import book
from o365lib.book.artefacts import datasets, models
from o365lib.book.artefacts.models import build_model
from o365lib.book.artefacts.predictions import cap_per_image, results_cap
from o365lib.data import DetectionDataset
from o365lib.engine import predict
from o365lib.evaluation import evaluate
from o365lib.modeling.roi_align import SparseMultiScaleRoIAlign

GATHER = SparseMultiScaleRoIAlign.forward


def _torchvision_forward(self, x, boxes, image_shapes):
    return MultiScaleRoIAlign.forward(self, x, boxes, image_shapes)


WAYS = {"roi_align": ("gather", "torchvision"), "precision": ("float32", "bf16")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=sorted(WAYS), default="roi_align")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tag", default=None, help="key in bench/results/infer_cpu.json (default: per --compare)")
    args = parser.parse_args()
    tag = args.tag or {"roi_align": "default_val_gather_vs_torchvision", "precision": "default_val_float32_vs_bf16"}[
        args.compare]
    ctx = book.setup_chapter("04_resampling", profile="default", namespace={})
    run = models.ensure_baseline(ctx, 0)
    ev = ctx.cfg.eval
    model = build_model(run, device=ctx.device).eval()
    split = datasets.load_split(ctx, "val")
    dataset = DetectionDataset(split, cache_images=False)
    train = datasets.load_split(ctx, "train").dataset
    rank_of = datasets.ranking(ctx, "full")
    reference, other = WAYS[args.compare]
    seconds: dict[str, list[float]] = {reference: [], other: []}
    checks, last = {}, {}
    for _ in range(args.rounds):
        for way, times in seconds.items():
            SparseMultiScaleRoIAlign.forward = _torchvision_forward if way == "torchvision" else GATHER
            start = time.perf_counter()
            results = predict(model, dataset, batch_size=ev.batch_size, device=ctx.device, max_dets=results_cap(ctx),
                              score_threshold=ev.score_threshold, label_map=run.label_map,
                              amp="bf16" if way == "bf16" else False)
            times.append(time.perf_counter() - start)
            metrics = evaluate(split.dataset, cap_per_image(results, ev.max_dets), ranking=rank_of, train_gt=train,
                               ranges=tuple(ev.ranges), max_dets=ev.max_dets)
            checks[way] = {"detections": len(results), "AP": metrics["AP"],
                           **{f"AP {r}": metrics["ranges"][r]["mAP"] for r in ev.ranges},
                           "zero-AP 301-365": metrics["ranges"]["301-365"]["zero_ap"]}
            last[way] = results
            print(f"{way:12s} {times[-1]:6.2f} s  {len(dataset) / times[-1]:5.1f} img/s  "
                  f"{len(results)} detections  {checks[way]}", flush=True)
    SparseMultiScaleRoIAlign.forward = GATHER
    same = sum(a == b for a, b in zip(last[reference], last[other]))
    checks["identical_records"] = same
    print(f"{same} of {len(last[reference])} detection records identical both ways")
    ratio = min(seconds[other]) / min(seconds[reference])
    faster = reference if ratio > 1 else other
    print(f"{faster} {max(ratio, 1 / ratio):.2f}x the other")
    out = Path("bench/results/infer_cpu.json")
    record = json.loads(out.read_text()) if out.is_file() else {}
    record[tag] = {"images": len(dataset), "seconds": seconds, "checks": checks,
                   "ratio": round(max(ratio, 1 / ratio), 3), "faster": faster,
                   "load_avg_1m": os.getloadavg()[0], "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
