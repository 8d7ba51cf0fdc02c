"""Benchmark: the default profile's CPU training step, and whether its baseline reaches the talk's regime.

Three modes:

- ``--step`` times one training step of the tiny Cascade R-CNN (365 classes, batch 8) on real
  batches of the generated default data, for fp32, bf16 autocast, channels-last and both; the
  variants are run in alternation over ``--rounds`` and medians of wall and process CPU seconds
  are reported (the machine is shared: CPU seconds are the robust number).
- ``--recipes NAME=JSON ...`` times whole training recipes against each other: each JSON names a
  ``batch_size`` (per process), optionally ``processes`` (local 1-thread DDP processes), ``lr`` and
  any ``build_detector`` keyword overrides; the first recipe is the reference. Every recipe trains
  through the library's engine (``o365lib.engine.train_local``: augmentation, bf16 autocast,
  channels-last, SGD) on the same generated images, in calls of ``--chunk-images`` images that
  resume their own run, recipes in turn for ``--rounds`` rounds; the median images per second (of
  the steps, and of the whole call with process start) and the ratios to the reference are
  reported. ``--profile-ops`` adds a ``torch.profiler`` top-operator table of each one-process recipe.
  Two recipe keys bring back the library's earlier paths for a comparison: ``"roi_gather": "coo"``
  (RoIAlign's matrix as a sparse COO product, until 2026-12-06, instead of ``embedding_bag``) and
  ``"box_head": "torchvision"`` (torchvision's ``TwoMLPHead.forward``, which copies channels-last
  pooled features to flatten them).
- ``--regime`` runs the whole baseline pipeline once: generate the data, pretrain the backbone on
  the disjoint generated classes (``o365lib.pretrain``), train the baseline with
  ``o365lib.engine.train``, predict on val, evaluate with the ranking of the train split, and
  report AP for ranks 1-150 / 151-300 / 301-365, the zero-AP classes of 301-365 and the wall/CPU
  seconds of every phase. The talk's regime (the targets of this profile): 1-150 >= 40,
  151-300 >= 15, 301-365 between 3 and 25 with 20-80% of its 65 classes at zero AP, overall >= 20.

Results are merged into ``bench/results/train_cpu.json`` under ``--tag``.

Usage::

    python bench/bench_train_cpu.py --step
    python bench/bench_train_cpu.py --recipes old='{"batch_size": 4, "rpn_pre_nms_top_n": [600, 300], "rpn_post_nms_top_n": [300, 100]}' \\
        new='{"batch_size": 4, "processes": 2, "lr": 0.04}' --rounds 3 --tag recipes
    python bench/bench_train_cpu.py --regime --train-seed 0 --tag seed0

bf16 note: ``SparseMultiScaleRoIAlign`` pools low-precision CPU features in float32 on its fast path
(the library does this itself; older records carry ``roi_align_float32_shim`` from when this script
had to patch it in).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "train_cpu.json"
RANGES = ("1-150", "151-300", "301-365")


class Phase:
    """Wall seconds, process CPU seconds (all threads, children included) and load average of a block."""

    def __init__(self, record: dict, name: str) -> None:
        self.record, self.name = record, name

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.record[self.name] = {"wall_s": round(time.perf_counter() - self.wall, 2),
                                  "cpu_s": round(_cpu_seconds() - self.cpu, 2),
                                  "load_avg_1m": round(os.getloadavg()[0], 2)}
        print(f"[{self.name}] {self.record[self.name]}", flush=True)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def model_kwargs(args) -> dict:
    """``build_detector`` keyword arguments of the tiny detector from the command line."""
    kwargs = {"backbone": "tiny", "fpn_channels": args.fpn_channels, "min_size": args.min_size,
              "max_size": args.max_size, "box_batch_size_per_image": args.box_batch,
              "box_positive_fraction": args.box_positive_fraction,
              "representation_size": args.representation_size,
              "rpn_pre_nms_top_n": (args.rpn_pre_nms, 300), "rpn_post_nms_top_n": (args.rpn_post_nms, 100)}
    return kwargs


# ------------------------------------------------------------------------------------ step mode
def run_step(args) -> dict:
    import torch

    from o365lib.data import load_coco
    from o365lib.data.synthetic import make_dataset
    from o365lib.engine import DetectionDataset
    from o365lib.modeling import build_detector

    torch.set_num_threads(args.threads)
    paths = make_dataset(args.data_dir, args.profile, args.data_seed)
    dataset = DetectionDataset(load_coco(paths.train, image_root=paths.images))
    batches = [[dataset[i] for i in range(b * 8, b * 8 + 8)] for b in range(args.batches)]
    variants = {"fp32": (False, False), "bf16": (True, False), "channels_last": (False, True),
                "bf16_channels_last": (True, True)}
    models, optimizers = {}, {}
    for name, (_, channels_last) in variants.items():
        torch.manual_seed(0)
        model = build_detector(365, **model_kwargs(args)).train()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        models[name] = model
        optimizers[name] = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times: dict[str, list] = {name: [] for name in variants}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, (bf16, _) in variants.items():
            for batch in batches:
                wall, cpu = time.perf_counter(), time.process_time()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    losses = models[name]([im for im, _ in batch], [t for _, t in batch])
                optimizers[name].zero_grad(set_to_none=True)
                sum(losses.values()).backward()
                optimizers[name].step()
                if round_index:
                    times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    out = {"threads": args.threads, "load_avg_1m": os.getloadavg()[0],
           "model": {k: list(v) if isinstance(v, tuple) else v for k, v in model_kwargs(args).items()}}
    base = statistics.median(t[1] for t in times["fp32"])
    for name, samples in times.items():
        cpu = statistics.median(t[1] for t in samples)
        out[name] = {"wall_s": round(statistics.median(t[0] for t in samples), 4), "cpu_s": round(cpu, 4),
                     "speedup_cpu_vs_fp32": round(base / cpu, 3)}
        print(name, out[name], flush=True)
    return out


# --------------------------------------------------------------------------------- recipe mode
def parse_recipes(specs: list[str]) -> dict[str, dict]:
    """``["old={\"batch_size\": 4}", ...]`` -> ``{"old": {"batch_size": 4}, ...}`` (order kept)."""
    recipes = {}
    for spec in specs:
        name, _, text = spec.partition("=")
        recipe = json.loads(text) if text else {}
        if "batch_size" not in recipe:
            raise SystemExit(f"recipe {name!r} needs a batch_size: {spec}")
        recipes[name] = recipe
    return recipes


class CooGather(torch.autograd.Function):
    """RoIAlign's ``S @ flat`` as the library computed it until 2026-12-06: sparse COO products both ways
    (same arguments as the library's gather: ``flat`` [pixels, C], ``columns`` and ``weights`` [rows, K])."""

    @staticmethod
    def forward(ctx, flat, columns, weights):
        rows = torch.arange(columns.shape[0]).repeat_interleave(columns.shape[1])
        entries = (rows, columns.reshape(-1), weights.reshape(-1))
        ctx.save_for_backward(*entries)
        ctx.shape = (columns.shape[0], flat.shape[0])
        matrix = torch.sparse_coo_tensor(torch.stack(entries[:2]), entries[2], ctx.shape,
                                         is_coalesced=False, check_invariants=False)
        return torch.sparse.mm(matrix, flat)

    @staticmethod
    def backward(ctx, grad):
        rows, cols, values = ctx.saved_tensors
        transposed = torch.sparse_coo_tensor(torch.stack([cols, rows]), values, ctx.shape[::-1],
                                             is_coalesced=False, check_invariants=False)
        return torch.sparse.mm(transposed, grad.contiguous()), None, None


LIBRARY_PATHS = {}
BENCH_KEYS = ("batch_size", "processes", "lr", "roi_gather", "box_head", "proposal_nms", "roi_pool")


def _torchvision_proposals(self, proposals, objectness, image_shapes, num_anchors_per_level):
    from torchvision.models.detection.rpn import RegionProposalNetwork

    return RegionProposalNetwork.filter_proposals(self, proposals, objectness, image_shapes, num_anchors_per_level)


def use_paths(recipe: dict) -> None:
    """The library's current RoIAlign gather, box head and proposal NMS, or the earlier ones the recipe names
    (``"roi_gather": "coo"``, ``"box_head": "torchvision"``, ``"proposal_nms": "torchvision"``,
    ``"roi_pool": "float32"``: bf16 features pooled in float32, as until the second session of 2026-12-06)."""
    from torchvision.models.detection.faster_rcnn import TwoMLPHead

    from o365lib.modeling import roi_align
    from o365lib.modeling.cascade import StageHead
    from o365lib.modeling.proposals import ProposalNetwork

    LIBRARY_PATHS.setdefault("gather", roi_align._SparseGather)
    LIBRARY_PATHS.setdefault("head", StageHead.forward)
    LIBRARY_PATHS.setdefault("proposals", ProposalNetwork._torchvision_selection)
    LIBRARY_PATHS.setdefault("pool_dtypes", roi_align.GATHER_DTYPES)
    roi_align.GATHER_DTYPES = ((torch.float32, torch.float64) if recipe.get("roi_pool") == "float32"
                               else LIBRARY_PATHS["pool_dtypes"])
    roi_align._SparseGather = CooGather if recipe.get("roi_gather") == "coo" else LIBRARY_PATHS["gather"]
    StageHead.forward = TwoMLPHead.forward if recipe.get("box_head") == "torchvision" else LIBRARY_PATHS["head"]
    ProposalNetwork._torchvision_selection = (_torchvision_proposals if recipe.get("proposal_nms") == "torchvision"
                                              else LIBRARY_PATHS["proposals"])


def run_recipes(args) -> dict:
    """Alternate short training calls of several recipes through the library's engine; img/s and ratios.

    Each recipe trains its own model with ``o365lib.engine.train_local`` (``processes`` > 1: that
    many 1-thread DDP processes; else one process with ``--threads``), ``--chunk-images`` images per
    call, resuming its own run, for ``--rounds`` rounds after a warm-up round, recipes in turn. Reported:
    median images per second of the training steps, and of the whole call (process start included).
    """
    import shutil

    import torch

    from o365lib.data import load_coco
    from o365lib.data.synthetic import make_dataset
    from o365lib.engine import DetectionDataset, TrainConfig
    from o365lib.engine.local_workers import train_local
    from o365lib.modeling import build_detector

    torch.set_num_threads(args.threads)
    recipes = parse_recipes(args.recipes)
    paths = make_dataset(args.data_dir, args.profile, args.data_seed)
    dataset = DetectionDataset(load_coco(paths.train, image_root=paths.images))
    work = Path(args.work_dir) / "recipes"
    shutil.rmtree(work, ignore_errors=True)
    state = {}
    for name, recipe in recipes.items():
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items()
                     if k not in BENCH_KEYS}
        torch.manual_seed(0)
        model = build_detector(365, **{**model_kwargs(args), **overrides})
        processes, batch = int(recipe.get("processes", 1)), int(recipe["batch_size"])
        steps = max(1, args.chunk_images // (batch * processes))
        config = TrainConfig(iterations=100_000, batch_size=batch, lr=float(recipe.get("lr", 0.02)), warmup_iters=50,
                             scales=(args.min_size,), amp="bf16", channels_last=True, seed=0, checkpoint_every=10**9,
                             progress=False, max_iterations_this_call=steps)
        state[name] = (model, config, processes)
    samples: dict[str, list] = {name: [] for name in recipes}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, (model, config, processes) in state.items():
            use_paths(recipes[name])
            wall = time.perf_counter()
            result = train_local(model, dataset, config=config, out_dir=work / name, processes=processes)
            call = time.perf_counter() - wall
            images = config.max_iterations_this_call * config.batch_size * processes
            if round_index:
                samples[name].append((result.images_per_s, images / call))
            print(f"round {round_index} {name}: {result.images_per_s:.1f} img/s in steps, {images / call:.1f} "
                  f"img/s with process start (load {os.getloadavg()[0]:.2f})", flush=True)
    out = {"threads": args.threads, "load_avg_1m": round(os.getloadavg()[0], 2), "rounds": args.rounds,
           "chunk_images": args.chunk_images, "cpu": _cpu_name(),
           "model": {k: list(v) if isinstance(v, tuple) else v for k, v in model_kwargs(args).items()}, "recipes": {}}
    reference = None
    for name, recipe in recipes.items():
        steps = statistics.median(s[0] for s in samples[name])
        calls = statistics.median(s[1] for s in samples[name])
        reference = reference or (steps, calls)
        out["recipes"][name] = {"recipe": recipe, "images_per_s_steps": round(steps, 1),
                                "images_per_s_with_start": round(calls, 1),
                                "ratio_steps": round(steps / reference[0], 3),
                                "ratio_with_start": round(calls / reference[1], 3)}
        print(name, out["recipes"][name], flush=True)
    if args.profile_ops:
        out["top_ops"] = {name: use_paths(recipes[name]) or _top_ops(args, model, config, dataset)
                          for name, (model, config, processes) in state.items() if processes == 1}
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _top_ops(args, model, config, dataset) -> str:
    """torch.profiler's top operators (self CPU time) over ``--batches`` training steps of one process."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from o365lib.engine.precision import autocast_dtype

    model.train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    batches = [[dataset[i] for i in range(b * config.batch_size, (b + 1) * config.batch_size)]
               for b in range(args.batches)]

    # the precision the engine trains in here (bf16 only where the CPU runs it natively; else float32)
    dtype = autocast_dtype(config.amp, torch.device("cpu"))

    def step(batch):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            losses = model([im for im, _ in batch], [t for _, t in batch])
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()

    step(batches[0])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            step(batch)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows)
    print(table, flush=True)
    return table


# ---------------------------------------------------------------------------------- regime mode
def run_regime(args) -> dict:
    import torch

    from o365lib.data import load_coco
    from o365lib.data.synthetic import make_dataset
    from o365lib.engine import DetectionDataset, TrainConfig, predict, train
    from o365lib.evaluation import evaluate
    from o365lib.modeling import build_detector
    from o365lib.modeling.backbones import build_body
    from o365lib.pretrain import pretrain_backbone, render_crops, save_backbone

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    phases: dict = {}
    with Phase(phases, "generate"):
        paths = make_dataset(args.data_dir, args.profile, args.data_seed)
    backbone = work / (f"backbone-c{args.pretrain_crops}-s{args.pretrain_size}-e{args.pretrain_epochs}"
                       f"-seed{args.train_seed}.pt")
    pretrain_info = {}
    if args.pretrain_crops > 0:
        with Phase(phases, "pretrain"):
            if not backbone.exists():
                images, labels, _ = render_crops(num_per_class=args.pretrain_crops, size=args.pretrain_size,
                                                 seed=args.train_seed)
                torch.manual_seed(args.train_seed)
                body, channels = build_body("tiny", norm="bn", dcn=False)
                history = pretrain_backbone(body, images, labels, channels=channels[-1],
                                            epochs=args.pretrain_epochs, lr=args.pretrain_lr,
                                            seed=args.train_seed, progress=False)
                save_backbone(body, backbone)
                pretrain_info = {"val_accuracy": history["val_accuracy"], "crops": len(labels)}
                backbone.with_suffix(".json").write_text(json.dumps(pretrain_info))
            else:
                pretrain_info = json.loads(backbone.with_suffix(".json").read_text())
        print("pretrain", pretrain_info, flush=True)
    train_coco = load_coco(paths.train, image_root=paths.images)
    val_coco = load_coco(paths.val, image_root=paths.images)
    kwargs = model_kwargs(args)
    if args.pretrain_crops > 0:
        kwargs["backbone_weights"] = str(backbone)
    model = build_detector(train_coco.label_map.num_classes, **kwargs)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         warmup_iters=args.warmup, lr_steps=tuple(args.lr_steps), scales=(args.min_size,),
                         amp=args.amp, channels_last=args.channels_last, seed=args.train_seed,
                         checkpoint_every=10_000, progress=args.progress)
    out_dir = work / f"train-{args.tag}"
    with Phase(phases, "train"):
        result = train(model, DetectionDataset(train_coco), config=config, out_dir=out_dir, resume=False)
    model.to(memory_format=torch.contiguous_format)
    with Phase(phases, "val_inference"):
        detections = predict(model, DetectionDataset(val_coco, cache_images=False), batch_size=16,
                             max_dets=100, score_threshold=0.001, label_map=train_coco.label_map)
    with Phase(phases, "evaluate"):
        metrics = evaluate(val_coco.dataset, detections, ranking=None, train_gt=train_coco.dataset,
                           ranges=RANGES, max_dets=100)
    ranges = {spec: {"mAP": round(metrics["ranges"][spec]["mAP"], 2),
                     "zero_ap": metrics["ranges"][spec]["zero_ap"],
                     "num_classes": metrics["ranges"][spec]["num_classes"]} for spec in RANGES}
    rank_of = {cid: rank for rank, cid in enumerate(
        sorted(train_coco.category_ids, key=lambda c: (-sum(1 for a in train_coco.dataset["annotations"]
                                                            if a["category_id"] == c), c)), start=1)}
    by_style: dict = {}
    for cat in train_coco.dataset["categories"]:  # generated data: AP by drawing style and range
        ap = metrics["per_class"].get(str(cat["id"]))
        if "style" in cat and ap is not None:
            key = f"{cat['style']} {'1-150' if rank_of[cat['id']] <= 150 else '151-300' if rank_of[cat['id']] <= 300 else '301-365'}"
            by_style.setdefault(key, []).append(ap)
    by_style = {k: {"mAP": round(100 * sum(v) / len(v) if max(v) <= 1 else sum(v) / len(v), 2),
                    "classes": len(v), "zero": sum(x == 0 for x in v)} for k, v in sorted(by_style.items())}
    tail = ranges["301-365"]
    checks = {"1-150 >= 40": ranges["1-150"]["mAP"] >= 40, "151-300 >= 15": ranges["151-300"]["mAP"] >= 15,
              "3 <= 301-365 <= 25": 3 <= tail["mAP"] <= 25,
              "20-80% of 301-365 at zero": 0.2 <= tail["zero_ap"] / tail["num_classes"] <= 0.8,
              "overall >= 20": metrics["mAP"] >= 20}
    out = {"mAP": round(metrics["mAP"], 2), "AP50": round(metrics["AP50"], 2), "ranges": ranges, "by_style": by_style,
           "regime": checks, "in_regime": all(checks.values()), "phases": phases,
           "iterations": result.iterations, "train_images": len(train_coco.images),
           "train_instances": len(train_coco.dataset["annotations"]), "val_images": len(val_coco.images),
           "final_loss": round(result.final_loss, 4), "pretrain": pretrain_info,
           "threads": args.threads,
           "args": {k: v for k, v in vars(args).items() if k not in ("step", "regime")}}
    print(json.dumps({k: out[k] for k in ("mAP", "ranges", "by_style", "regime", "in_regime")}), flush=True)
    return out


def _save(tag: str, record: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[tag] = record
    RESULTS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--step", action="store_true", help="time fp32 / bf16 / channels-last training steps")
    mode.add_argument("--regime", action="store_true", help="generate, pretrain, train, predict, evaluate")
    mode.add_argument("--recipes", nargs="+", metavar="NAME=JSON",
                      help='training recipes to alternate, e.g. old=\'{"batch_size": 4}\' new=\'{"batch_size": 8}\'')
    parser.add_argument("--profile-ops", action="store_true", help="--recipes: torch.profiler table per recipe")
    parser.add_argument("--profile-rows", type=int, default=15)
    parser.add_argument("--chunk-images", type=int, default=400, help="--recipes: images per training call")
    parser.add_argument("--tag", default=None, help="key in bench/results/train_cpu.json")
    parser.add_argument("--profile", default="default", help="synthetic data profile")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--data-dir", default="/tmp/o365bench/data-default")
    parser.add_argument("--work-dir", default="/tmp/o365bench/work")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true", help="tqdm bar while training")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=6)
    # the tiny detector (the profile's model section)
    parser.add_argument("--fpn-channels", type=int, default=64)
    parser.add_argument("--min-size", type=int, default=128)
    parser.add_argument("--max-size", type=int, default=192)
    parser.add_argument("--box-batch", type=int, default=64, help="sampled RoIs per image")
    parser.add_argument("--box-positive-fraction", type=float, default=None,
                        help="foreground share of the sampled RoIs (default: the preset's)")
    parser.add_argument("--representation-size", type=int, default=256)
    parser.add_argument("--rpn-pre-nms", type=int, default=150, help="training proposals per level before NMS")
    parser.add_argument("--rpn-post-nms", type=int, default=100, help="training proposals per image after NMS")
    # pretraining on the disjoint classes
    parser.add_argument("--pretrain-crops", type=int, default=40, help="crops per class (0: no pretraining)")
    parser.add_argument("--pretrain-size", type=int, default=40)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--pretrain-lr", type=float, default=0.1)
    # training (the profile's train section)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=2.25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--lr-steps", type=float, nargs="*", default=[0.67, 0.89])
    parser.add_argument("--amp", default="bf16", choices=["bf16", "none"])
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    args.amp = False if args.amp == "none" else args.amp
    if args.recipes:
        record, default_tag = run_recipes(args), "recipes"
    elif args.step:
        record, default_tag = run_step(args), "step"
    else:
        record, default_tag = run_regime(args), f"regime-seed{args.train_seed}"
    _save(args.tag or default_tag, record)


if __name__ == "__main__":
    main()
