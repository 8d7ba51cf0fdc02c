"""Steps of the ByteDance talk's remaining gains (chapter 5) and of the tiny track (chapter 6).

Chapter 5 follows the talk's ablation order, each row adding one trick to the previous one: a
better pretrained backbone, multi-scale training, multi-scale + flip testing with soft-NMS, and an
ensemble. Chapter 6 trains the 65-class tiny track from a COCO-pretrained detector (the stand-in on the
synthetic profiles) and from the full-track model, then adds the same tricks. Every function trains or loads what it needs, one seed at a time;
the ``*_study`` functions run every seed of the profile (paired by seed).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from o365lib.book.artefacts import backbones, coco_standin, datasets, models, predictions
from o365lib.book.present.comparisons import paired_effect
from o365lib.book.present.seed_stats import seed_stat, values
from o365lib.book.present.talk import TALK, TALK_EFFECTS
from o365lib.tta import ensemble_results


# ------------------------------------------------------------------------------ pretraining
def better_backbone(ctx) -> Path:
    """Backbone weights "better" than the baseline's: ``tricks.backbone_weights`` (a local file), else a
    larger / longer pretraining on generated classes disjoint from the detection classes."""
    cfg = ctx.cfg.tricks
    if cfg.backbone_weights:
        path = Path(cfg.backbone_weights)
        if not path.is_file():
            raise FileNotFoundError(f"profile {ctx.profile!r}: tricks.backbone_weights {path} does not exist")
        return path
    if cfg.pretrain is None:
        raise ValueError(f"profile {ctx.profile!r}: set tricks.backbone_weights or tricks.pretrain")
    return backbones.ensure_backbone(ctx, **asdict(cfg.pretrain))


def pretraining_table(ctx):
    """The baseline's and the better backbone's pretraining side by side: crop set, epochs, accuracy, time."""
    rows = []
    for label, path in (("baseline", backbones.baseline_backbone(ctx)), ("better", better_backbone(ctx))):
        history_file = Path(path).parent / "history.json" if path else None
        history = json.loads(history_file.read_text()) if history_file and history_file.exists() else {}
        spec = history.get("spec", {})
        accuracy = history.get("val_accuracy") or [None]
        rows.append({"backbone": label, "weights": Path(path).parent.name if path else "none (from scratch)",
                     "crops per class": spec.get("crops"), "epochs": spec.get("epochs"),
                     "held-out crop accuracy": accuracy[-1], "seconds": history.get("seconds")})
    return pd.DataFrame(rows).set_index("backbone")


def ensure_pretrained(ctx, seed: int) -> models.ModelRun:
    """The baseline recipe, started from the better pretrained backbone."""
    return models.ensure_model(ctx, "pretrained", seed=seed, backbone_weights=better_backbone(ctx))


def ensure_multiscale(ctx, seed: int) -> models.ModelRun:
    """The pretrained model's recipe with a random short side from ``tricks.ms_scales`` per batch."""
    return models.ensure_model(ctx, "pretrained-ms", seed=seed, backbone_weights=better_backbone(ctx),
                               budget={"scales": list(ctx.cfg.tricks.ms_scales)})


def tta_options(ctx) -> dict:
    """Multi-scale + flip testing merged by soft-NMS, from the profile's tricks section."""
    cfg = ctx.cfg.tricks
    return {"scales": list(cfg.tta_scales), "flip": cfg.tta_flip, "merge": "soft_nms", "sigma": cfg.soft_nms_sigma}


def image_sizes(ctx, split: str) -> dict:
    """Image id -> (width, height) of a split (for box fusion in normalised coordinates)."""
    return {i: (img["width"], img["height"]) for i, img in datasets.load_split(ctx, split).images.items()}


def ensemble(ctx, runs, *, split: str, tta: dict | None, track: str = "full") -> dict:
    """Fuse several models' (TTA) results with weighted boxes fusion; returns the metrics."""
    inputs = [predictions.lazy_predictions(ctx, run, split=split, tta=tta) for run in runs]
    cap = predictions.results_cap(ctx)
    fused = predictions.LazyResults.derived(
        lambda: ensemble_results([r.load() for r in inputs], method="wbf", image_sizes=image_sizes(ctx, split),
                                 max_dets=cap),
        inputs=inputs, settings={"fusion": "wbf", "max_dets": cap}, code=(ensemble_results,))
    name = "ensemble-" + "-".join(run.key for run in runs) + ("-tta" if tta else "")
    return predictions.evaluate_results(ctx, fused, split=split, name=name, track=track)


def full_track_system(ctx, seed: int, split: str) -> dict:
    """The final full-track system of one seed (multi-scale + pretrained model, TTA, ensemble) on a split."""
    runs = [ensure_multiscale(ctx, seed), ensure_pretrained(ctx, seed)][: ctx.cfg.tricks.ensemble_members]
    return ensemble(ctx, runs, split=split, tta=tta_options(ctx))


def ablation_study(ctx) -> dict:
    """Per seed, val metrics of each row of the talk's ablation (each row adds one trick)."""
    rows = {k: [] for k in ("baseline", "pretrained", "multiscale", "tta", "ensemble")}
    tta = tta_options(ctx)
    for seed in ctx.seeds:
        multiscale = ensure_multiscale(ctx, seed)
        rows["baseline"].append(predictions.model_metrics(ctx, models.ensure_baseline(ctx, seed)))
        rows["pretrained"].append(predictions.model_metrics(ctx, ensure_pretrained(ctx, seed)))
        rows["multiscale"].append(predictions.model_metrics(ctx, multiscale))
        rows["tta"].append(predictions.model_metrics(ctx, multiscale, tta=tta))
        rows["ensemble"].append(full_track_system(ctx, seed, "val"))
    return rows


# ------------------------------------------------------------------------------- tiny track
#: How a tiny-track model starts: the COCO detector (``coco_standin.coco_start``: the talk's baseline), the
#: full-track baseline of the same seed (the talk's +4.2 mAP), or the pretrained backbone alone.
TINY_STARTS = ("coco", "full", "backbone")


def ensure_tiny(ctx, *, seed: int, init: str, multiscale: bool = False) -> models.ModelRun:
    """A 65-class tiny-track model, trained with the tiny schedule from the start ``init`` (:data:`TINY_STARTS`).

    ``"coco"``: every tensor of the COCO-pretrained detector (the stand-in on the synthetic profiles) but
    the classifier rows, whose classes are not the tiny track's (the talk's tiny-track baseline).
    ``"full"``: every tensor of the full-track baseline of the same random seed, the 65 classes' classifier
    rows taken from it by category id. ``"backbone"``: the profile's pretrained backbone with fresh heads.
    """
    if init not in TINY_STARTS:
        raise ValueError(f"init must be one of {TINY_STARTS}, got {init!r}")
    tiny = ctx.cfg.tiny
    budget = {"epochs": tiny.epochs, "lr": tiny.lr}
    if multiscale:
        budget["scales"] = list(ctx.cfg.tricks.ms_scales)
    start = {"full": lambda: models.ensure_baseline(ctx, seed), "coco": lambda: _coco_start(ctx),
             "backbone": lambda: None}[init]()
    name = f"tiny-{init}" + ("-ms" if multiscale else "")
    return models.ensure_model(ctx, name, seed=seed, split="tiny_train", init=start, budget=budget,
                               backbone_weights=backbones.baseline_backbone(ctx))


def _coco_start(ctx) -> Path:
    start = coco_standin.coco_start(ctx)
    if start is None:
        raise ValueError(f"profile {ctx.profile!r} has no COCO detector start: set model.weights (a COCO "
                         "detector file) or model.coco_standin (synthetic data)")
    return start


def tiny_baseline_start(ctx) -> str:
    """The start of the profile's tiny-track baseline: ``"coco"`` where the profile has a COCO detector (or its
    stand-in), else ``"backbone"``."""
    has_coco = ctx.cfg.model.weights or ctx.cfg.model.coco_standin is not None
    return "coco" if has_coco else "backbone"


def tiny_study(ctx, *, backbone_only: bool = False) -> dict:
    """Per seed, tiny-val metrics of the baseline (the COCO start), the full-track start and the tricks;
    ``backbone_only`` adds the start from the pretrained backbone alone (when the baseline is not that)."""
    first = tiny_baseline_start(ctx)
    starts = [first, *(["backbone"] if backbone_only and first != "backbone" else []), "full"]
    rows = {k: [] for k in [*starts, "tricks"]}
    for seed in ctx.seeds:
        for start in starts:
            rows[start].append(predictions.model_metrics(ctx, ensure_tiny(ctx, seed=seed, init=start),
                                                         split="tiny_val", track="tiny"))
        rows["tricks"].append(tiny_track_system(ctx, seed, "tiny_val"))
    return rows


def tiny_track_system(ctx, seed: int, split: str) -> dict:
    """The final tiny-track system of one seed: full-track init, multi-scale training, TTA, 2-model ensemble."""
    runs = [ensure_tiny(ctx, seed=seed, init="full", multiscale=True), ensure_tiny(ctx, seed=seed, init="full")]
    return ensemble(ctx, runs, split=split, tta=tta_options(ctx), track="tiny")


#: (row, the row before it, label, the talk's effect in TALK_EFFECTS)
ABLATION = (("pretrained", "baseline", "+ better pretrained backbone", "trick_pretrained"),
            ("multiscale", "pretrained", "+ multi-scale training", "trick_multiscale_train"),
            ("tta", "multiscale", "+ multi-scale test + soft-NMS", "trick_multiscale_test_softnms"),
            ("ensemble", "tta", "+ ensemble", "trick_ensemble"))


def ablation_effects(rows: dict) -> list:
    """Each trick against the row before it, paired by seed, with the talk's gain."""
    return [(label, paired_effect(values(rows[before]), values(rows[row]), talk_effect=TALK_EFFECTS[talk]))
            for row, before, label, talk in ABLATION]


SUMMARY_NAMES = {"trick_pretrained": "mAP gain, pretrained backbone",
                 "trick_multiscale_train": "mAP gain, multi-scale training",
                 "trick_multiscale_test_softnms": "mAP gain, multi-scale test + soft-NMS",
                 "trick_ensemble": "mAP gain, ensemble"}


def ablation_summary(rows: dict, effects: list) -> dict:
    """The summary rows chapter 5 writes for the intro: each gain (per seed) with its verdict, the final mAP."""
    out = {"mAP, all tricks": seed_stat(values(rows["ensemble"]))}
    for (_, _, _, talk), (_, effect) in zip(ABLATION, effects):
        out[SUMMARY_NAMES[talk]] = {**seed_stat(effect.diffs), "verdict": effect.verdict}
    return out


def tiny_rows(rows: dict) -> list[tuple]:
    """The tiny track's arms (mean ± std over seeds) for ``comparison_table``; the talk quotes only the final system."""
    out = [(TINY_LABELS[start], values(per_seed), None) for start, per_seed in rows.items() if start != "tricks"]
    return [*out, ("full-track start + tricks", values(rows["tricks"]), TALK["final_tiny_val"])]


def tiny_start_record(ctx) -> dict:
    """What the tiny-track baseline started from: a COCO detector file, the stand-in (with its own val AP), or
    the backbone."""
    start = tiny_baseline_start(ctx)
    if start != "coco":
        return {"start": start}
    if ctx.cfg.model.weights:
        return {"start": "model.weights", "file": str(ctx.cfg.model.weights)}
    run = coco_standin.ensure_standin(ctx)
    metrics = coco_standin.standin_metrics(ctx)
    return {"start": "stand-in", "model": run.key, "classes": run.num_classes, "val mAP": metrics["mAP"],
            "val AP50": metrics["AP50"]}


def tiny_start_sentence(record: dict) -> str:
    """One sentence for the page: what the baseline's start is (numbers from the run's record)."""
    if record["start"] == "stand-in":
        found = record.get("val mAP")
        quality = ("no detection on its held-out images: the start is not a working detector" if found is None else
                   f"**{found:.1f} mAP** (AP50 {record['val AP50']:.1f}) on its own held-out images")
        return (f"The COCO detector start here is the stand-in `{record['model']}`: the same detector trained on "
                f"generated images of {record['classes']} classes disjoint from the 365, {quality} (the talk's COCO "
                f"model: {TALK['coco_map']} mAP on COCO).")
    if record["start"] == "model.weights":
        return f"The COCO detector start is the profile's `model.weights`: `{record['file']}`."
    return ("This profile has no COCO detector (set `model.weights` or `model.coco_standin`): the baseline "
            "starts from the pretrained backbone alone.")


#: The row label of each tiny-track start.
TINY_LABELS = {"coco": "COCO detector start", "backbone": "backbone only", "full": "full-track start"}


def tiny_effects(rows: dict) -> list:
    """Tiny track: the full-track start against the baseline's (COCO) start, then the other tricks; with a
    backbone-only row, also the COCO start against it (what a detector start adds over a backbone)."""
    base = "coco" if "coco" in rows else "backbone"
    # the talk's +4.2 is over a COCO detector start; against a backbone-only start there is no talk number
    talk = TALK_EFFECTS["tiny_full_pretrain"] if base == "coco" else None
    out = [(f"from the full-track model vs {TINY_LABELS[base]}", paired_effect(
                values(rows[base]), values(rows["full"]), talk_effect=talk)),
           ("+ multi-scale train, TTA soft-NMS, ensemble", paired_effect(
                values(rows["full"]), values(rows["tricks"]), talk_effect=TALK_EFFECTS["tiny_other_tricks"]))]
    if base == "coco" and "backbone" in rows:
        out.append(("COCO detector start vs backbone only", paired_effect(
            values(rows["backbone"]), values(rows["coco"]), talk_effect=None)))
    return out


def final_rows(ctx) -> list[tuple]:
    """The final systems on validation and the held-out test split, per seed, next to the talk's."""
    full_val = [full_track_system(ctx, s, "val") for s in ctx.seeds]
    full_test = [full_track_system(ctx, s, "test") for s in ctx.seeds]
    tiny_val = [tiny_track_system(ctx, s, "tiny_val") for s in ctx.seeds]
    tiny_test = [tiny_track_system(ctx, s, "tiny_test") for s in ctx.seeds]
    return [("Validation set (full track)", values(full_val), TALK["final_full_val"]),
            ("Test set (full track)", values(full_test), TALK["final_full_test"]),
            ("Validation set (tiny track)", values(tiny_val), TALK["final_tiny_val"]),
            ("Test set (tiny track)", values(tiny_test), TALK["final_tiny_test"])]
