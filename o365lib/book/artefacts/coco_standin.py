"""The COCO-pretrained detector a tiny-track baseline starts from, or its stand-in on the synthetic profiles.

Lu et al. 2019 start the tiny track's baseline from a detector pretrained on COCO. :func:`coco_start`
names that start for a profile:

- ``model.weights`` when set (the objects365 profile: mmdet's COCO Cascade R-CNN checkpoint);
- else, with ``model.coco_standin`` set (the synthetic profiles), the **stand-in**: a Cascade R-CNN of
  the profile's architecture, started from the profile's pretrained backbone and trained on a generated
  detection set of 80 classes disjoint from the 365 (:mod:`o365lib.data.synthetic_coco`), as a COCO
  detector is trained on COCO before anyone fine-tunes it on Objects365;
- else ``None`` (no detector start: the tiny track's baseline starts from the backbone alone).

Like the backbone's pretraining (and the real COCO checkpoint), the stand-in is one fixed artefact,
trained once with seed 0, not once per detector seed. A start is copied into a new detector with
``o365lib.modeling.transfer.init_detector_weights``: every tensor that fits, except the classifier rows
of classes without a same-named source class, which here means all of them (the names are disjoint).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from o365lib import data as odata
from o365lib.book.artefacts import models, predictions, resolver
from o365lib.book.artefacts.backbones import baseline_backbone, existing_file
from o365lib.book.artefacts.keys import key_of
from o365lib.data import DetectionDataset
from o365lib.data.coco import read_json
from o365lib.data.synthetic_coco import CocoStandinSpec, coco_standin_is_current, make_coco_standin
from o365lib.data.synthetic_plan import PROFILES
from o365lib.engine import predict
from o365lib.evaluation import evaluate
from o365lib.io import write_json

#: The random seed of the one stand-in detector (a fixed artefact, like the pretrained backbone).
STANDIN_SEED = 0


def standin_spec(ctx) -> CocoStandinSpec:
    """The stand-in set of the profile (``model.coco_standin``; images as large as the detection set's)."""
    cfg = ctx.cfg.model.coco_standin
    data = PROFILES[ctx.cfg.data.synthetic_profile]  # drawn like the detection set: size and density
    return CocoStandinSpec(num_classes=cfg.classes, most=cfg.most, fewest=cfg.fewest, image_size=data.image_size,
                           min_objects=data.min_objects, max_objects=data.max_objects, size_scale=data.size_scale)


def ensure_standin_set(ctx) -> Path:
    """The generated stand-in set's folder (made once per spec, beside the profile's generated data)."""
    spec = standin_spec(ctx)
    root = Path(ctx.cfg.data.root).resolve().parent / f"coco-standin-{key_of(asdict(spec))}"
    resolver.resolve(ctx.profile_dir, kind="data", name=root.name, path=root / "manifest.json", cheap=True,
                     make=lambda: make_coco_standin(root, spec), exists=lambda _: coco_standin_is_current(root, spec))
    return root


def ensure_standin(ctx) -> models.ModelRun:
    """The stand-in COCO detector: the profile's detector trained on the stand-in set (one fixed seed)."""
    cfg = ctx.cfg.model.coco_standin
    root = ensure_standin_set(ctx)
    return models.ensure_model(ctx, "coco-standin", seed=STANDIN_SEED, train_set=root / "train.json",
                               image_root=root / "images", backbone_weights=baseline_backbone(ctx),
                               budget={"epochs": cfg.epochs, "lr": cfg.lr})


def standin_metrics(ctx) -> dict:
    """The stand-in detector's COCO AP on its own held-out split (what "a trained detector" means here)."""
    run = ensure_standin(ctx)
    root = ensure_standin_set(ctx)
    settings = {"max_dets": ctx.cfg.eval.max_dets, "score_threshold": ctx.cfg.eval.score_threshold,
                **predictions.inference_amp(ctx)}
    path = Path(run.dir) / f"val-metrics-{key_of(settings)}.json"

    def make():
        val = odata.load_coco(root / "val.json", image_root=root / "images")
        model = models.build_model(run, device=ctx.device).eval()
        results = predict(model, DetectionDataset(val, cache_images=False), batch_size=ctx.cfg.eval.batch_size,
                          device=ctx.device, max_dets=ctx.cfg.eval.max_dets,
                          score_threshold=ctx.cfg.eval.score_threshold, label_map=run.label_map,
                          amp=ctx.cfg.eval.amp)
        return evaluate(val.dataset, results, ranges=("all",), max_dets=ctx.cfg.eval.max_dets)

    return resolver.resolve(ctx.profile_dir, kind="metrics", name=f"{run.key}/val", path=path, make=make,
                            write=lambda value, p: write_json(p, value), read=read_json)


def coco_start(ctx) -> Path | None:
    """The detector file a tiny-track baseline starts from: ``model.weights``, else the stand-in, else None."""
    model = ctx.cfg.model
    if model.weights:
        return existing_file(model.weights, key="model.weights", ctx=ctx)
    if model.coco_standin is not None:
        return ensure_standin(ctx).checkpoint
    return None
