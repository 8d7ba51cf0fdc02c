"""Inference of the default detector: RoIAlign through the library's gather against torchvision's kernel.

Run from the project root after the default book (it needs the cached seed-0 baseline):
``python bench/bench_infer_cpu.py --rounds 2``. Predicts the 670 val images with each pooling path in
turn, ``--rounds`` times, and prints seconds, images/s, the number of detections and the val mAP of
each, and the ratio of the best times. Results go to ``bench/results/infer_cpu.json``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tag", default="default_val_gather_vs_torchvision")
    args = parser.parse_args()
    ctx = book.setup_chapter("04_resampling", profile="default", namespace={})
    run = models.ensure_baseline(ctx, 0)
    ev = ctx.cfg.eval
    model = build_model(run, device=ctx.device).eval()
    split = datasets.load_split(ctx, "val")
    dataset = DetectionDataset(split, cache_images=False)
    train = datasets.load_split(ctx, "train").dataset
    rank_of = datasets.ranking(ctx, "full")
    seconds: dict[str, list[float]] = {"gather": [], "torchvision": []}
    checks, last = {}, {}
    for _ in range(args.rounds):
        for path, times in seconds.items():
            SparseMultiScaleRoIAlign.forward = GATHER if path == "gather" else _torchvision_forward
            start = time.perf_counter()
            results = predict(model, dataset, batch_size=ev.batch_size, device=ctx.device, max_dets=results_cap(ctx),
                              score_threshold=ev.score_threshold, label_map=run.label_map)
            times.append(time.perf_counter() - start)
            metrics = evaluate(split.dataset, cap_per_image(results, ev.max_dets), ranking=rank_of, train_gt=train,
                               ranges=tuple(ev.ranges), max_dets=ev.max_dets)
            checks[path] = {"detections": len(results), "AP": metrics["AP"]}
            last[path] = results
            print(f"{path:12s} {times[-1]:6.2f} s  {len(dataset) / times[-1]:5.1f} img/s  "
                  f"{len(results)} detections  mAP {metrics['AP']:.4f}", flush=True)
    SparseMultiScaleRoIAlign.forward = GATHER
    same = sum(a == b for a, b in zip(last["gather"], last["torchvision"]))
    checks["identical_records"] = same
    print(f"{same} of {len(last['gather'])} detection records identical on both paths")
    ratio = min(seconds["torchvision"]) / min(seconds["gather"])
    print(f"the gather {ratio:.2f}x torchvision's kernel in inference")
    out = Path("bench/results/infer_cpu.json")
    record = json.loads(out.read_text()) if out.is_file() else {}
    record[args.tag] = {"images": len(dataset), "seconds": seconds, "checks": checks, "ratio": round(ratio, 3),
                        "load_avg_1m": os.getloadavg()[0], "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
