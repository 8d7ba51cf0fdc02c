"""Train-or-load steps shared by the chapters: what makes any chapter runnable alone.

Every artefact a chapter needs (the data set, a trained model, its predictions, its metrics) is
produced by one ``ensure_*`` function that first looks in the profile's results folder and only
computes what is missing. Artefacts are keyed by a short hash of everything that determines them
(the relevant parameters, the initialisation, the training set), so runs with other parameters
never overwrite each other and an edited profile never silently reuses a stale model::

    results/<profile>/
      models/<name>-<hash>/        final.pt, last.pt, losses.json, spec.json
      predictions/<name>-<hash>/   <split>[-<tta>].json, metrics for each
      sets/                        derived training sets (expert subsets), as COCO JSON

This is the only module that turns the merged parameters (``ctx.cfg``) into keyword arguments
for the library; the library functions themselves never read parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from o365lib import data as odata
from o365lib.data.synthetic import make_dataset

SPLITS = ("train", "val", "test", "tiny_train", "tiny_val", "tiny_test")


def short_hash(obj) -> str:
    """Short stable hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _finite(obj):
    """``obj`` with NaN/inf floats replaced by None, so the file is standard JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temp file + rename) so an interrupted run leaves no half file."""
    obj = _finite(obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str, allow_nan=False))
    os.replace(tmp, path)


def show_progress() -> bool:
    """Progress bars on, unless ``TQDM_DISABLE=1`` (the book runner sets it for executed pages)."""
    return os.environ.get("TQDM_DISABLE", "0").lower() in ("", "0", "false")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSplits:
    """Paths of the annotation files of both tracks and the image folder of each split."""

    files: dict  # split -> Path of COCO JSON
    image_roots: dict  # split -> Path of the image folder
    source: str

    def __getattr__(self, name):
        files = object.__getattribute__(self, "files")
        if name in files:
            return files[name]
        raise AttributeError(name)


_DATASETS: dict[str, DataSplits] = {}


def ensure_dataset(ctx) -> DataSplits:
    """The profile's data: generated (synthetic source, cached) or the user's COCO files.

    Resolved once per data configuration and process: the synthetic cache check hashes the
    annotation files and lists every image, too slow to repeat on each split or ranking lookup.
    """
    key = short_hash({"data": ctx.cfg["data"], "seed": ctx.cfg.get("seed", 0)})
    if key not in _DATASETS:
        _DATASETS[key] = _resolve_dataset(ctx)
    return _DATASETS[key]


def _resolve_dataset(ctx) -> DataSplits:
    cfg = ctx.cfg["data"]
    if cfg["source"] == "synthetic":
        root = Path(cfg["root"])
        paths = make_dataset(root, profile=cfg["synthetic_profile"], seed=int(ctx.cfg.get("seed", 0)))
        files = {split: Path(getattr(paths, split)) for split in SPLITS}
        roots = {split: Path(paths.images) for split in SPLITS}
        return DataSplits(files=files, image_roots=roots, source="synthetic")
    if cfg["source"] != "coco":
        raise ValueError(f"data.source must be 'synthetic' or 'coco', got {cfg['source']!r}")
    files, roots = {}, {}
    for split in SPLITS:
        if cfg.get(split):
            files[split] = Path(cfg[split])
            image_key = f"{split}_images" if not split.startswith("tiny") else "tiny_images"
            roots[split] = Path(cfg.get(image_key) or cfg.get(f"{split}_images") or "")
    missing = [s for s in ("train", "val") if s not in files]
    if missing:
        raise ValueError(f"profile data section: set data.{missing[0]} to a COCO JSON file")
    return DataSplits(files=files, image_roots=roots, source="coco")


@lru_cache(maxsize=16)
def _load(path: str, image_root: str, box_policy: str, check_images: str):
    return odata.load_coco(path, image_root=image_root, box_policy=box_policy, check_images=check_images)


def load_split(ctx, split: str):
    """Load and validate one split (cached in-process)."""
    splits = ensure_dataset(ctx)
    if split not in splits.files:
        raise ValueError(f"split {split!r} is not configured in profile {ctx.profile!r}")
    cfg = ctx.cfg["data"]
    return _load(str(splits.files[split]), str(splits.image_roots[split]), cfg.get("box_policy", "clip"),
                 cfg.get("check_images", "lazy"))


def ranking(ctx, track: str = "full") -> dict:
    """Category id -> rank by training instances of the track's training split (a fresh copy)."""
    coco = load_split(ctx, "train" if track == "full" else "tiny_train")
    key = str(coco.path)
    if key not in _RANKINGS:
        _RANKINGS[key] = odata.class_ranks(coco)
    return dict(_RANKINGS[key])


_RANKINGS: dict[str, dict] = {}  # training split file -> its ranking (files are immutable once loaded)


def range_category_ids(ctx, spec, track: str = "full") -> list[int]:
    """Category ids of a class-rank range spec such as "301-365"."""
    rank_of = ranking(ctx, track)
    ranks = odata.parse_class_range(spec, len(rank_of))
    return odata.ranks_to_category_ids(ranks, rank_of)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRun:
    """A trained model in the results folder."""

    name: str
    dir: Path
    category_ids: tuple  # the categories of its classifier, label order
    model_kwargs: dict

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    @property
    def label_map(self):
        return odata.LabelMap(self.category_ids)

    @property
    def checkpoint(self) -> Path:
        return self.dir / "final.pt"

    @property
    def losses(self) -> Path:
        return self.dir / "losses.json"

    @property
    def key(self) -> str:
        return self.dir.name


def pretrained_backbone(ctx, *, crops_per_class: int, crop_size: int, epochs: int, lr: float) -> Path:
    """Backbone weights pretrained as a classifier of generated, class-balanced object crops.

    The synthetic profiles' stand-in for ImageNet weights (see ``o365lib.pretrain``); trained
    once per specification and kept under ``results/<profile>/models/pretrained-backbone-*``.
    """
    from o365lib.modeling.backbones import build_body
    from o365lib.pretrain import pretrain_backbone, render_crops, save_backbone

    spec = {"backbone": ctx.cfg["model"]["backbone"], "crops": int(crops_per_class), "size": int(crop_size),
            "epochs": int(epochs), "lr": float(lr), "seed": int(ctx.cfg.get("seed", 0))}
    out = Path(ctx.profile_dir) / "models" / f"pretrained-backbone-{short_hash(spec)}"
    path = out / "backbone.pt"
    if path.exists():
        return path
    images, labels, _ = render_crops(num_per_class=spec["crops"], size=spec["size"], seed=spec["seed"])
    body, channels = build_body(spec["backbone"], norm="bn", dcn=False)
    history = pretrain_backbone(body, images, labels, channels=channels[-1], epochs=spec["epochs"],
                                lr=spec["lr"], seed=spec["seed"], device=device_of(ctx),
                                progress=show_progress())
    if is_main_process():
        write_json(out / "history.json", {"spec": spec, **history})
        save_backbone(body, path)
    _barrier()
    return path


def model_kwargs(ctx, **overrides) -> dict:
    """Keyword arguments of build_detector from the profile's model section.

    ``model.backbone_weights`` names a local file; when it is null and ``model.pretrain`` is set,
    the backbone is first pretrained on generated crops (``pretrained_backbone``).
    """
    m = dict(ctx.cfg["model"])
    m.update(overrides)
    if not m.get("backbone_weights") and m.get("pretrain"):
        p = m["pretrain"]
        m["backbone_weights"] = pretrained_backbone(ctx, crops_per_class=p["crops_per_class"],
                                                    crop_size=p["crop_size"], epochs=p["epochs"], lr=p["lr"])
    kwargs = {
        "backbone": m["backbone"],
        "dcn": bool(m.get("dcn", False)),
        "fpn_channels": int(m["fpn_channels"]),
        "min_size": int(m["min_size"]),
        "max_size": int(m["max_size"]),
    }
    if m.get("backbone_weights"):
        kwargs["backbone_weights"] = str(m["backbone_weights"])
    for key in ("roi_output_size", "representation_size", "box_batch_size_per_image"):  # optional head sizes
        if m.get(key):
            kwargs[key] = int(m[key])
    return kwargs


def build_model(run_or_kwargs, *, num_classes=None, device="cpu", load=True):
    """Build a detector; for a ModelRun, load its final weights."""
    from o365lib.engine import load_checkpoint
    from o365lib.modeling import build_detector

    if isinstance(run_or_kwargs, ModelRun):
        model = build_detector(run_or_kwargs.num_classes, **run_or_kwargs.model_kwargs)
        if load:
            load_checkpoint(run_or_kwargs.checkpoint, model)
    else:
        model = build_detector(num_classes, **run_or_kwargs)
    return model.to(device)


def train_config(ctx, *, section: str = "train", **overrides):
    """TrainConfig from the profile's train section, a section's overrides (e.g. experts) and kwargs.

    A section (``experts``, ``resampling``, ``tiny``) overrides the train keys it repeats (epochs,
    lr, ...); ``iterations`` in the overrides replaces ``epochs`` as the budget.
    """
    from o365lib.engine import TrainConfig

    t = dict(ctx.cfg["train"])
    if section != "train":
        t.update({k: v for k, v in ctx.cfg[section].items() if k in t or k == "iterations"})
    t.update(overrides)
    iterations = t.get("iterations")
    return TrainConfig(
        epochs=None if iterations else float(t["epochs"]),
        iterations=int(iterations) if iterations else None,
        batch_size=int(t["batch_size"]),
        lr=float(t["lr"]),
        momentum=float(t["momentum"]),
        weight_decay=float(t["weight_decay"]),
        warmup_iters=int(t["warmup_iters"]),
        lr_steps=tuple(float(s) for s in t["lr_steps"]),
        scales=tuple(int(s) for s in t["scales"]),
        flip=bool(t["flip"]),
        clip_grad=float(t["clip_grad"]) if t.get("clip_grad") else None,
        amp=t.get("amp", False),
        checkpoint_every=int(t["checkpoint_every"]),
        seed=int(ctx.cfg.get("seed", 0)),
        num_workers=int(t.get("num_workers", 0)),
        progress=show_progress(),
    )


def _config_spec(config) -> dict:
    """The fields of a TrainConfig that change what training computes (for artefact keys)."""
    from dataclasses import asdict

    from o365lib.engine.config import OPERATIONAL_FIELDS

    return {k: v for k, v in asdict(config).items() if k not in OPERATIONAL_FIELDS}


def device_of(ctx) -> str:
    """The device name of the chapter context ("cpu" or "cuda")."""
    return str(getattr(ctx, "device", "cpu"))


def ensure_model(ctx, name: str, *, split: str = "train", train_set: Path | None = None,
                 section: str = "train", init: ModelRun | Path | None = None, init_prefixes: tuple = (),
                 sampler: dict | None = None, model_overrides: dict | None = None,
                 train_overrides: dict | None = None) -> ModelRun:
    """Train a model unless the same specification was trained before; return its ModelRun.

    ``train_set`` is a COCO JSON (e.g. an expert subset) used instead of ``split``; ``init`` a
    ModelRun or weights file to start from (``o365lib.transfer.transfer_weights``: matching tensors
    are copied, classifier rows are mapped by category id, ``init_prefixes`` limits the copy to
    e.g. the backbone);
    ``sampler`` a dict ``{"name": ..., **options}`` for ``o365lib.longtail.build_sampler``.
    """
    from o365lib.engine import DetectionDataset, train

    coco = load_split(ctx, split) if train_set is None else _load(
        str(train_set), str(ensure_dataset(ctx).image_roots[split]), "clip", "lazy")
    mkw = model_kwargs(ctx, **(model_overrides or {}))
    config = train_config(ctx, section=section, **(train_overrides or {}))
    num_classes = coco.label_map.num_classes
    spec = {
        "name": name, "model": mkw, "num_classes": num_classes, "train": _config_spec(config),
        "data": str(train_set or ensure_dataset(ctx).files[split]), "sampler": sampler,
        "init": getattr(init, "key", str(init) if init else None), "init_prefixes": list(init_prefixes),
    }
    run = ModelRun(name=name, dir=Path(ctx.profile_dir) / "models" / f"{name}-{short_hash(spec)}",
                   category_ids=tuple(coco.label_map.category_ids), model_kwargs=mkw)
    if run.checkpoint.exists():
        return run
    if is_main_process():
        write_json(run.dir / "spec.json", spec)
    device = device_of(ctx)
    model = build_model(mkw, num_classes=num_classes, device="cpu")
    if init is not None:
        from o365lib.transfer import transfer_weights

        is_run = isinstance(init, ModelRun)
        report = transfer_weights(model, init.checkpoint if is_run else Path(init),
                                  source_label_map=init.label_map if is_run else None,
                                  target_label_map=coco.label_map if is_run else None,
                                  prefixes=tuple(init_prefixes))
        if is_main_process():
            write_json(run.dir / "init.json", report)
    dataset = DetectionDataset(coco, cache_images=True)
    sampler_obj = None
    if sampler:
        from o365lib.longtail import build_sampler

        options = {k: v for k, v in sampler.items() if k != "name"}
        sampler_obj = build_sampler(sampler["name"], dataset.image_category_ids(),
                                    seed=int(ctx.cfg.get("seed", 0)), **options)
    train(model, dataset, config=config, out_dir=run.dir, sampler=sampler_obj, device=device, resume=True)
    return run


def ensure_baseline(ctx) -> ModelRun:
    """The chapter 02 baseline: the COCO recipe applied straight to all classes."""
    return ensure_model(ctx, "baseline")


def derived_set(ctx, name: str, build) -> Path:
    """A training set derived from the data (e.g. an expert's subset), written once as COCO JSON.

    ``build`` is called only when ``results/<profile>/sets/<name>.json`` is missing.
    """
    path = Path(ctx.profile_dir) / "sets" / f"{name}.json"
    if not path.exists() and is_main_process():
        write_json(path, build())
    _barrier()
    return path


def category_names(ctx, split: str = "train") -> dict:
    """Category id -> name of a split."""
    return {c["id"]: c["name"] for c in load_split(ctx, split).dataset["categories"]}


def _barrier():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


# --------------------------------------------------------------------------------------------
# Predictions and metrics
# --------------------------------------------------------------------------------------------
def predictions_path(ctx, run: ModelRun | str, split: str, tag: str = "") -> Path:
    key = run.key if isinstance(run, ModelRun) else str(run)
    return Path(ctx.profile_dir) / "predictions" / key / f"{split}{'-' + tag if tag else ''}.json"


def ensure_predictions(ctx, run: ModelRun, *, split: str = "val", tta: dict | None = None) -> list:
    """COCO results of a model on a split (optionally with test-time augmentation), cached."""
    from o365lib.engine import DetectionDataset, predict, save_results

    tag = "" if not tta else "tta-" + short_hash(tta)
    path = predictions_path(ctx, run, split, tag)
    if path.exists():
        return json.loads(path.read_text())
    ev = ctx.cfg["eval"]
    model = build_model(run, device=device_of(ctx)).eval()
    dataset = DetectionDataset(load_split(ctx, split), cache_images=False)
    if tta:
        from o365lib.tta import predict_tta

        results = predict_tta(model, dataset, batch_size=int(ev["batch_size"]), device=device_of(ctx),
                              max_dets=int(ev["max_dets"]), score_threshold=float(ev["score_threshold"]),
                              **tta)
    else:
        results = predict(model, dataset, batch_size=int(ev["batch_size"]), device=device_of(ctx),
                          max_dets=int(ev["max_dets"]), score_threshold=float(ev["score_threshold"]))
    if is_main_process():
        save_results(results, path)
    return results


def evaluate_results(ctx, results, *, split: str = "val", name: str, track: str = "full") -> dict:
    """Evaluate COCO results on a split: overall, per class, per rank range; saved under predictions."""
    from o365lib.evaluation import evaluate

    ev = ctx.cfg["eval"]
    train_split = "train" if track == "full" else "tiny_train"
    ranges = ev["ranges"] if track == "full" else ("all",)
    out = Path(ctx.profile_dir) / "metrics" / f"{name}-{split}.json"
    return evaluate(load_split(ctx, split).dataset, results, ranking=ranking(ctx, track),
                    train_gt=load_split(ctx, train_split).dataset, ranges=tuple(ranges),
                    max_dets=int(ev["max_dets"]), out_path=out)


def write_chapter_metrics(ctx, *, summary: dict, details: dict | None = None, subdir: str = "") -> Path:
    """Write the chapter's metrics.json: the ``summary`` rows the intro page collects, plus details.

    With ``subdir`` (results keyed by a parameter, e.g. the expert range) the chapter's merged
    parameters are copied beside the metrics, so each keyed result names the run that made it.
    """
    path = Path(ctx.results_dir) / subdir / "metrics.json"
    write_json(path, {"chapter": ctx.chapter, "profile": ctx.profile, "summary": summary,
                       "details": details or {}})
    parameters = getattr(ctx, "parameters_file", None)
    if subdir and parameters and Path(parameters).exists():  # keep each keyed run's parameters beside it
        shutil.copyfile(parameters, path.parent / "parameters.json")
    return path
