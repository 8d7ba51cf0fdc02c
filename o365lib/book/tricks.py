"""Steps of the seed's remaining gains (chapter 5) and of the tiny track (chapter 6).

Chapter 5 follows the seed's ablation order, each row adding one trick to the previous one:
a better pretrained backbone, multi-scale training, multi-scale + flip testing with soft-NMS,
and an ensemble. Chapter 6 trains the 65-class tiny track from scratch and from the full-track
model, then adds the same tricks. Every function trains or loads what it needs.
"""

from __future__ import annotations

import json
from pathlib import Path

from o365lib.book import steps


# ------------------------------------------------------------------------------ pretraining
def ensure_pretrained_backbone(ctx) -> Path:
    """Backbone weights "better" than the baseline's initialisation.

    ``tricks.backbone_weights`` in the profile names a local file (real runs: e.g. weights
    pretrained on a larger data set); when it is null the backbone is pretrained here as a
    classifier on a larger balanced generated crop set than the baseline's ``model.pretrain``
    (more crops, more epochs), once per profile.
    """
    cfg = ctx.cfg["tricks"]
    if cfg.get("backbone_weights"):
        path = Path(cfg["backbone_weights"])
        if not path.is_file():
            raise FileNotFoundError(f"profile {ctx.profile!r}: tricks.backbone_weights {path} does not exist")
        return path
    return steps.pretrained_backbone(ctx, crops_per_class=cfg["pretrain_crops_per_class"],
                                     crop_size=cfg["pretrain_crop_size"], epochs=cfg["pretrain_epochs"],
                                     lr=cfg["pretrain_lr"])


def pretraining_history(path: Path) -> dict:
    """The crop-classification history saved beside generated backbone weights (empty for a user file)."""
    history = Path(path).parent / "history.json"
    return json.loads(history.read_text()) if history.exists() else {}


def pretraining_table(ctx):
    """The baseline's and the better backbone's pretraining side by side: crop set, epochs, accuracy, time.

    Rows whose weights come from a user file (no history beside them) show only the file name.
    """
    import pandas as pd

    rows = []
    for label, path in (("baseline", steps.model_kwargs(ctx).get("backbone_weights")),
                        ("better", ensure_pretrained_backbone(ctx))):
        history = pretraining_history(path) if path else {}
        spec = history.get("spec", {})
        accuracy = history.get("val_accuracy") or [None]
        rows.append({"backbone": label, "weights": f"{Path(path).parent.name}/{Path(path).name}" if path else "none (from scratch)",
                     "crops per class": spec.get("crops"), "epochs": spec.get("epochs"),
                     "held-out crop accuracy": accuracy[-1], "seconds": history.get("seconds")})
    return pd.DataFrame(rows).set_index("backbone")


def ensure_pretrained(ctx) -> steps.ModelRun:
    """The baseline recipe, started from the better pretrained backbone."""
    return steps.ensure_model(ctx, "pretrained",
                              model_overrides={"backbone_weights": str(ensure_pretrained_backbone(ctx))})


def ensure_multiscale(ctx) -> steps.ModelRun:
    """The pretrained model trained with a random short side from ``tricks.ms_scales`` per batch."""
    scales = [int(s) for s in ctx.cfg["tricks"]["ms_scales"]]
    return steps.ensure_model(ctx, "pretrained-ms", train_overrides={"scales": scales},
                              model_overrides={"backbone_weights": str(ensure_pretrained_backbone(ctx))})


def tta_options(ctx) -> dict:
    """Multi-scale + flip testing merged by soft-NMS, from the profile's tricks section."""
    cfg = ctx.cfg["tricks"]
    return {"scales": [int(s) for s in cfg["tta_scales"]], "flip": bool(cfg["tta_flip"]), "merge": "soft_nms",
            "sigma": float(cfg["soft_nms_sigma"])}


def image_sizes(ctx, split: str) -> dict:
    """Image id -> (width, height) of a split (for box fusion in normalised coordinates)."""
    return {i: (img["width"], img["height"]) for i, img in steps.load_split(ctx, split).images.items()}


def ensemble(ctx, runs, *, split: str, tta: dict | None, track: str = "full") -> tuple[list, dict]:
    """Fuse several models' (TTA) results with weighted boxes fusion; returns results and metrics."""
    from o365lib.tta import ensemble_results

    lists = [steps.ensure_predictions(ctx, run, split=split, tta=tta) for run in runs]
    fused = ensemble_results(lists, method="wbf", image_sizes=image_sizes(ctx, split),
                             max_dets=int(ctx.cfg["eval"]["max_dets"]))
    name = "ensemble-" + "-".join(run.key for run in runs) + ("-tta" if tta else "")
    return fused, steps.evaluate_results(ctx, fused, split=split, name=name, track=track)


def full_track_system(ctx, split: str) -> dict:
    """The final full-track system (multi-scale model + pretrained model, TTA, ensemble) on a split."""
    runs = [ensure_multiscale(ctx), ensure_pretrained(ctx)][: int(ctx.cfg["tricks"]["ensemble_members"])]
    return ensemble(ctx, runs, split=split, tta=tta_options(ctx))[1]


# ------------------------------------------------------------------------------- tiny track
def ensure_tiny(ctx, *, init: str, multiscale: bool = False) -> steps.ModelRun:
    """A 65-class tiny-track model from the profile's initialisation alone or from the full track.

    ``init="backbone"``: the profile's model initialisation (pretrained backbone, fresh heads),
    as the seed's tiny-track baseline started from COCO weights. ``init="full"``: every tensor of
    the full-track baseline is copied and the classifier rows of the 65 tiny classes are taken
    from the full classifier by category id (``o365lib.transfer``).
    """
    if init not in ("backbone", "full"):
        raise ValueError(f"init must be 'backbone' or 'full', got {init!r}")
    overrides = {"scales": [int(s) for s in ctx.cfg["tricks"]["ms_scales"]]} if multiscale else {}
    base = steps.ensure_baseline(ctx) if init == "full" else None
    name = f"tiny-{init}" + ("-ms" if multiscale else "")
    return steps.ensure_model(ctx, name, split="tiny_train", section="tiny", init=base, train_overrides=overrides)


def tiny_metrics(ctx, run, *, split: str = "tiny_val", tta: dict | None = None) -> dict:
    """Evaluate a tiny-track model on a tiny split."""
    results = steps.ensure_predictions(ctx, run, split=split, tta=tta)
    tag = "-tta" if tta else ""
    return steps.evaluate_results(ctx, results, split=split, name=f"{run.key}{tag}", track="tiny")


def tiny_track_system(ctx, split: str) -> dict:
    """The final tiny-track system: full-track init, multi-scale training, TTA, 2-model ensemble."""
    runs = [ensure_tiny(ctx, init="full", multiscale=True), ensure_tiny(ctx, init="full")]
    return ensemble(ctx, runs, split=split, tta=tta_options(ctx), track="tiny")[1]
