"""Benchmark: Cascade R-CNN training-step and inference-batch time and peak memory.

Cases (each runs in its own subprocess so that peak memory is per case):

- ``tiny``: the default book profile: tiny backbone, 128x128 images, batch 8, 365 classes;
- ``r50``: ResNet-50-FPN Cascade R-CNN at 512x512, batch 2, 365 classes, configured like mmdet's
  ``cascade-rcnn_r50_fpn_1x`` (frozen BN and stem + c2, 2000 proposals in training, 512 RoIs);
- ``mmdet``: mmdet's own ``cascade-rcnn_r50_fpn_1x_coco`` step on the same input, when ``import
  mmdet`` works (skipped with a message otherwise).

The reference from the issue (mmdet 3.3.0, R-50 Cascade R-CNN, 512x512, batch 2, this 2-core CPU):
7.5 s per training step, 5.3 s per inference batch; the target is >= 1.5x faster.

Usage::

    python bench/bench_detector.py                       # CPU: tiny, r50, mmdet -> bench/results/detector_cpu.json
    python bench/bench_detector.py --device cuda --amp   # GPU: R-50-FPN at 800x1333 -> detector_cuda.json

Times are medians of wall seconds; process CPU seconds are printed too because on a shared
machine other processes inflate wall time (CPU time counts all of this process's threads).
Inference uses score threshold 0.05 (mmdet's test default): an untrained model with a lower
threshold keeps every one of the 365 classes and times NMS of noise instead of the detector.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_MMDET_CPU = {"train_step_s": 7.5, "infer_batch_s": 5.3, "source": "issue: mmdet 3.3.0 on this CPU"}
CASES = {
    "tiny": {"backbone": "tiny", "size": 128, "batch": 8, "kwargs": {}},
    "r50": {
        "backbone": "resnet50",
        "size": 512,
        "batch": 2,
        "kwargs": {"norm": "frozen_bn", "trainable_layers": 3, "min_size": 512, "max_size": 512},
    },
}


def _inputs(size: int, batch: int, num_classes: int, device):
    import torch

    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=generator).to(device) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        xy = torch.rand(6, 2, generator=generator) * size * 0.6
        wh = 8 + torch.rand(6, 2, generator=generator) * size * 0.35
        labels = torch.randint(1, num_classes + 1, (6,), generator=generator)
        targets.append({"boxes": torch.cat([xy, xy + wh], 1).to(device), "labels": labels.to(device)})
    return images, targets


def _timed(fn, *, warmup: int, repeats: int, sync) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds of ``fn`` (CPU time is robust to other load)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        sync()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def run_ours(case: str, *, device: str, amp: bool, warmup: int, repeats: int, num_classes: int) -> dict:
    """Train-step and inference-batch times of our Cascade R-CNN for one case (in this process)."""
    import contextlib

    import torch

    sys.path.insert(0, str(ROOT))
    from o365lib.modeling import build_detector

    spec = dict(CASES[case])
    kwargs = dict(spec["kwargs"])
    if device == "cuda":  # the talk's scale on a GPU
        spec.update(size=800, batch=2)
        kwargs.update(min_size=800, max_size=1333)
    torch.manual_seed(0)
    model = build_detector(num_classes, backbone=spec["backbone"], **kwargs).to(device)
    images, targets = _inputs(spec["size"], spec["batch"], num_classes, device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.001, momentum=0.9)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if amp and device == "cuda"
        else contextlib.nullcontext()
    )

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        with autocast:
            losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer() -> None:
        with torch.inference_mode(), autocast:
            model(images)

    model.train()
    train_times = _timed(train_step, warmup=warmup, repeats=repeats, sync=sync)
    model.eval()
    model.score_thresh = 0.05
    infer_times = _timed(infer, warmup=1, repeats=repeats, sync=sync)
    result = {
        "case": case,
        "backbone": spec["backbone"],
        "image_size": spec["size"],
        "batch": spec["batch"],
        "num_classes": num_classes,
        "device": device,
        "amp": bool(amp and device == "cuda"),
        "train_step_s": train_times[0],
        "infer_batch_s": infer_times[0],
        "train_step_cpu_s": train_times[1],
        "infer_batch_cpu_s": infer_times[1],
        "train_images_per_s": spec["batch"] / train_times[0],
        "infer_images_per_s": spec["batch"] / infer_times[0],
        "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }
    if device == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_mmdet(*, warmup: int, repeats: int, num_classes: int) -> dict:
    """mmdet's cascade-rcnn_r50_fpn_1x on 512x512, batch 2 (CPU), or a skip record."""
    try:
        import mmdet
        import torch
        from mmdet.registry import MODELS
        from mmdet.structures import DetDataSample
        from mmdet.utils import register_all_modules
        from mmengine.config import Config
        from mmengine.structures import InstanceData
    except Exception as error:  # noqa: BLE001 - not installed / mmcv mismatch: report, do not fail
        return {"case": "mmdet", "skipped": f"import mmdet failed: {type(error).__name__}: {error}"}
    register_all_modules()
    config_path = Path(mmdet.__file__).parent / ".mim/configs/cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py"
    if not config_path.is_file():
        return {"case": "mmdet", "skipped": f"config not found: {config_path}"}
    config = Config.fromfile(str(config_path))
    config.model.backbone.init_cfg = None  # no download
    for head in config.model.roi_head.bbox_head:
        head.num_classes = num_classes
    model = MODELS.build(config.model)
    model.init_weights()
    images, targets = _inputs(512, 2, num_classes, "cpu")
    samples = []
    for target in targets:
        sample = DetDataSample(
            metainfo={
                "img_shape": (512, 512),
                "ori_shape": (512, 512),
                "pad_shape": (512, 512),
                "scale_factor": (1.0, 1.0),
                "batch_input_shape": (512, 512),
            }
        )
        sample.gt_instances = InstanceData(bboxes=target["boxes"], labels=target["labels"] - 1)
        samples.append(sample)
    batch = {"inputs": [(im * 255).to(torch.uint8) for im in images], "data_samples": samples}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)

    def train_step() -> None:
        data = model.data_preprocessor(batch, training=True)
        loss, _ = model.parse_losses(model(**data, mode="loss"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad():
            data = model.data_preprocessor(batch, training=False)
            model(**data, mode="predict")

    model.train()
    train_times = _timed(train_step, warmup=warmup, repeats=repeats, sync=lambda: None)
    model.eval()
    infer_times = _timed(infer, warmup=1, repeats=repeats, sync=lambda: None)
    return {
        "case": "mmdet",
        "mmdet_version": mmdet.__version__,
        "image_size": 512,
        "batch": 2,
        "num_classes": num_classes,
        "device": "cpu",
        "train_step_s": train_times[0],
        "infer_batch_s": infer_times[0],
        "train_step_cpu_s": train_times[1],
        "infer_batch_cpu_s": infer_times[1],
        "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(args) -> None:
    if args.case == "mmdet":
        result = run_mmdet(warmup=args.warmup, repeats=args.repeats, num_classes=args.num_classes)
    else:
        result = run_ours(
            args.case,
            device=args.device,
            amp=args.amp,
            warmup=args.warmup,
            repeats=args.repeats,
            num_classes=args.num_classes,
        )
    print("RESULT " + json.dumps(result), flush=True)


def _table(results: list[dict]) -> str:
    header = (
        f"{'case':<8}{'size':>6}{'batch':>6}{'train s/step':>14}{'(cpu s)':>9}{'img/s':>8}{'infer s/batch':>15}"
        f"{'(cpu s)':>9}{'img/s':>8}{'peak MiB':>10}"
    )
    lines = [header]
    for r in results:
        if "skipped" in r:
            lines.append(f"{r['case']:<8}  skipped: {r['skipped']}")
            continue
        lines.append(
            f"{r['case']:<8}{r['image_size']:>6}{r['batch']:>6}{r['train_step_s']:>14.3f}{r['train_step_cpu_s']:>9.2f}"
            f"{r['batch'] / r['train_step_s']:>8.1f}{r['infer_batch_s']:>15.3f}{r['infer_batch_cpu_s']:>9.2f}"
            f"{r['batch'] / r['infer_batch_s']:>8.1f}"
            f"{r.get('peak_cuda_mib', r['peak_rss_mib']):>10.0f}"
        )
    return "\n".join(lines)


def _run_case(case: str, args) -> dict:
    """One case in a fresh subprocess (own peak memory, own interpreter state)."""
    command = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--device",
        args.device,
        "--warmup",
        str(args.warmup),
        "--repeats",
        str(args.repeats),
        "--num-classes",
        str(args.num_classes),
    ]
    command += ["--amp"] if args.amp else []
    command += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"case": case, "skipped": f"failed (exit {done.returncode}): {done.stderr[-500:]}"}
    return json.loads(lines[-1][len("RESULT ") :])


def _median_record(records: list[dict]) -> dict:
    """The records of one case over rounds, timings replaced by their medians."""
    ok = [r for r in records if "skipped" not in r]
    if not ok:
        return records[-1]
    merged = dict(ok[-1])
    for key in ("train_step_s", "infer_batch_s", "train_step_cpu_s", "infer_batch_cpu_s"):
        merged[key] = statistics.median(r[key] for r in ok)
    merged["train_images_per_s"] = merged["batch"] / merged["train_step_s"]
    merged["infer_images_per_s"] = merged["batch"] / merged["infer_batch_s"]
    merged["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
    merged["rounds"] = len(ok)
    merged.pop("round", None)
    return merged


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument(
        "--cases", default=None, help="comma list of tiny,r50,mmdet (default: all for CPU, r50 for CUDA)"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the cases this many times")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-classes", type=int, default=365)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # child-process mode
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.case:
        _child(args)
        return
    cases = (
        args.cases.split(",")
        if args.cases
        else (["tiny", "r50", "mmdet"] if args.device == "cpu" else ["r50"])
    )
    rounds: dict[str, list[dict]] = {case: [] for case in cases}
    for round_index in range(args.rounds):  # cases alternate, so slow phases of a shared machine hit all
        for case in cases:
            result = _run_case(case, args)
            result["round"] = round_index
            rounds[case].append(result)
            print(f"round {round_index}: " + _table([result]).splitlines()[-1], flush=True)
    results = [_median_record(records) for records in rounds.values()]
    by_case = {r["case"]: r for r in results if "skipped" not in r}
    ratios = {}
    if args.device == "cpu" and "r50" in by_case:
        ours = by_case["r50"]
        ratios["r50_vs_issue_reference_train"] = REFERENCE_MMDET_CPU["train_step_s"] / ours["train_step_s"]
        ratios["r50_vs_issue_reference_infer"] = REFERENCE_MMDET_CPU["infer_batch_s"] / ours["infer_batch_s"]
        if "mmdet" in by_case:
            for kind in ("train_step_s", "infer_batch_s", "train_step_cpu_s", "infer_batch_cpu_s"):
                per_round = [
                    m[kind] / o[kind]
                    for o, m in zip(rounds["r50"], rounds["mmdet"])
                    if "skipped" not in o and "skipped" not in m
                ]
                ratios[f"r50_vs_mmdet_measured_{kind[:-2]}"] = statistics.median(per_round)
    print()
    print(_table(results))
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x (mmdet time / ours; target >= 1.5x)")
    report = {
        "results": results,
        "rounds": rounds,
        "ratios": ratios,
        "reference_mmdet_cpu": REFERENCE_MMDET_CPU,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1min": os.getloadavg()[0],
        },
    }
    out = args.out or ROOT / "bench" / "results" / f"detector_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
