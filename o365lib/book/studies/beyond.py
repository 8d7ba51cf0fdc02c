"""Chapter 7: long-tail remedies adopted since 2019, side by side with the ByteDance talk's, same budget.

Every row is a fine-tune of the chapter 2 baseline of the same random seed with chapter 4's budget (the same
iterations and learning rate), so rows differ only in what they change:

- ``softmax CE``: uniform sampling, softmax cross-entropy (chapter 4's control);
- ``RFS``: repeat-factor sampling (LVIS / detectron2);
- ``Seesaw`` and ``Seesaw + RFS``: Seesaw loss (Wang et al. 2021), uniform or RFS sampling;
- ``EQLv2``: equalization loss v2 (Tan et al. 2021);
- ``Federated``: federated loss (Zhou et al., CenterNet2);
- ``EQLv2 (converted)``, ``Federated (converted)``: the same losses with the classifier started from the
  baseline's softmax one (log-odds against background) instead of fresh (profile ``remedies.classifier_starts``);
- ``NorCal``: post-hoc calibration of the softmax CE model's scores by class frequency (no training);
- ``<best> + experts``: the best row's results with the talk's two experts (chapter 3) merged in,
  NorCal-calibrated before the per-image cap.

Class counts (Seesaw's prior, Federated's sampling weights, NorCal's divisor: training images per class
by default) come from the training file.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

import pandas as pd

from o365lib import data as odata
from o365lib.book.artefacts import datasets, models, predictions
from o365lib.book.present.comparisons import interval_text, mean_std, paired_effect
from o365lib.book.present.seed_stats import TAIL, seed_stat, values
from o365lib.book.studies import remedies
from o365lib.modeling.losses import CONVERTIBLE_LOSSES

CONTROL = "softmax CE"
#: row -> (sampler, classification loss or None)
TRAINED_ROWS = {
    "softmax CE": ("uniform", None),
    "RFS": ("repeat_factor", None),
    "Seesaw": ("uniform", "seesaw"),
    "Seesaw + RFS": ("repeat_factor", "seesaw"),
    "EQLv2": ("uniform", "eqlv2"),
    "Federated": ("uniform", "federated"),
}
CONVERTED = " (converted)"


def trained_rows(ctx) -> dict:
    """Row -> (sampler, classification loss or None, classifier start or None) for the profile's losses and
    classifier starts; a ``converted`` start adds a row named ``<row> (converted)`` for each convertible loss."""
    out = {}
    for row, (sampler, loss) in TRAINED_ROWS.items():
        if loss is None:
            out[row] = (sampler, None, None)
        elif loss in ctx.cfg.remedies.losses:
            starts = ctx.cfg.remedies.classifier_starts if loss in CONVERTIBLE_LOSSES else ["fresh"]
            out.update({row + (CONVERTED if start == "converted" else ""): (sampler, loss, start) for start in starts})
    return out


def class_counts(ctx) -> dict:
    """Training instances and images per class, in label order of the full track (from the training file)."""
    train = datasets.load_split(ctx, "train")
    stats = odata.tail_stats(train).set_index("category_id")
    ids = train.label_map.category_ids
    return {"instances": [int(stats.at[c, "instances"]) for c in ids], "images": [int(stats.at[c, "images"]) for c in ids]}


def loss_spec(ctx, name: str | None) -> dict | None:
    """``build_detector`` arguments of a classification loss (None: softmax cross-entropy).

    Federated samples classes by training-image counts from the training file; Seesaw accumulates its
    running counts from the labels it sees, as in the paper.
    """
    if name is None:
        return None
    if name == "federated":
        return {"class_loss": name, "image_counts": class_counts(ctx)["images"]}
    return {"class_loss": name}


def ensure_row(ctx, row: str, *, seed: int, base: models.ModelRun, epochs: float | None = None) -> models.ModelRun:
    """The fine-tuned model of a trained row (same start, budget and seed as chapter 4; ``epochs`` another budget)."""
    sampler, loss, start = trained_rows(ctx)[row]
    return remedies.ensure_resampled(ctx, sampler, seed=seed, base=base, loss=loss_spec(ctx, loss),
                                     classifier_start=start, epochs=epochs)


def norcal(ctx) -> dict:
    """The NorCal calibration of the profile: ``remedies.norcal_gamma`` and the class counts it divides by
    (``remedies.norcal_counts``: training images per class by default, as in the authors' code, or instances)."""
    return {"norcal_gamma": ctx.cfg.remedies.norcal_gamma,
            "class_counts": class_counts(ctx)[ctx.cfg.remedies.norcal_counts]}


def training_seconds(run: models.ModelRun) -> float | None:
    """Seconds the run's training took (from its cost record; None when it was trained elsewhere)."""
    path = Path(run.dir) / "cost.json"
    return json.loads(path.read_text())["seconds"] if path.exists() else None


def beyond_study(ctx) -> dict:
    """Per row, per seed: val metrics and training cost; plus the best row merged with the talk's experts."""
    rows = list(trained_rows(ctx))
    out = {"metrics": {r: [] for r in [*rows, "NorCal"]}, "seconds": {r: [] for r in [*rows, "NorCal"]}}
    for seed in ctx.seeds:
        base = models.ensure_baseline(ctx, seed)
        for row in rows:
            run = ensure_row(ctx, row, seed=seed, base=base)
            out["metrics"][row].append(predictions.model_metrics(ctx, run))
            out["seconds"][row].append(training_seconds(run))
        control = ensure_row(ctx, CONTROL, seed=seed, base=base)
        calibrated = predictions.lazy_predictions(ctx, control, split="val", calibration=norcal(ctx))
        out["metrics"]["NorCal"].append(predictions.evaluate_results(ctx, calibrated, name=f"{control.key}-norcal"))
        out["seconds"]["NorCal"].append(0.0)
    return out


def best_row(study: dict) -> str:
    """The row with the highest mean mAP."""
    return max(study["metrics"], key=lambda r: fmean(m["mAP"] for m in study["metrics"][r]))


def with_experts(ctx, study: dict, row: str) -> list:
    """Per seed: the best row's results with the talk's experts merged in (NorCal calibration before the cap);
    the merge runs only when its metrics are not cached."""
    ids = datasets.load_split(ctx, "train").label_map.category_ids
    calibration = {**norcal(ctx), "class_counts": dict(zip(ids, norcal(ctx)["class_counts"]))}
    out = []
    for seed in ctx.seeds:
        base = models.ensure_baseline(ctx, seed)
        experts = [(datasets.range_category_ids(ctx, spec),
                    predictions.lazy_predictions(ctx, remedies.ensure_expert(ctx, spec, seed=seed, base=base)))
                   for spec in remedies.TALK_RANGES]
        merged = remedies.merged_results(ctx, _row_results(ctx, row, seed=seed, base=base), experts,
                                         strategy=ctx.cfg.experts.strategy, calibration=calibration)
        out.append(predictions.evaluate_results(ctx, merged, name=f"beyond-{row}-experts-s{seed}"))
    return out


def _row_results(ctx, row: str, *, seed: int, base: models.ModelRun) -> predictions.LazyResults:
    if row == "NorCal":
        return predictions.lazy_predictions(ctx, ensure_row(ctx, CONTROL, seed=seed, base=base), split="val",
                                            calibration=norcal(ctx))
    return predictions.lazy_predictions(ctx, ensure_row(ctx, row, seed=seed, base=base), split="val")


def _overall_and_tail(label: str, control: list, treated: list) -> list:
    """``(label, Effect)`` pairs of ``treated`` against ``control`` (paired by seed): mAP and the tail's AP."""
    return [(f"{label}: mAP", paired_effect(values(control), values(treated), talk_effect=None)),
            (f"{label}: AP ranks {TAIL}", paired_effect(values(control, "mAP", TAIL), values(treated, "mAP", TAIL),
                                                        talk_effect=None))]


def effects(study: dict, merged: list, *, best: str) -> list:
    """Each row against softmax CE (paired by seed): overall mAP and the tail's AP."""
    control = study["metrics"][CONTROL]
    out = []
    for row, per_seed in [*study["metrics"].items(), (f"{best} + experts", merged)]:
        if row != CONTROL:
            out.extend(_overall_and_tail(row, control, per_seed))
    return out


def start_effects(study: dict) -> list:
    """Converted against fresh classifier start, per loss that has both rows (paired by seed): mAP and tail AP."""
    out = []
    for row, per_seed in study["metrics"].items():
        fresh = study["metrics"].get(row.removesuffix(CONVERTED))
        if row.endswith(CONVERTED) and fresh is not None:
            out.extend(_overall_and_tail(row, fresh, per_seed))
    return out


def table_rows(ctx, study: dict, merged: list, *, best: str, talk: dict) -> dict:
    """Per row the per-seed values of every column: mAP, range AP, LVIS buckets, fixed AP, training cost."""
    rows = {}
    for row, per_seed in [*study["metrics"].items(), (f"{best} + experts", merged), *talk.items()]:
        cells = {"mAP": values(per_seed)}
        cells.update({f"AP {r}": values(per_seed, "mAP", r) for r in ctx.cfg.eval.ranges})
        for bucket in ("rare", "common", "frequent"):
            cells[f"AP {bucket}"] = [m.get("lvis", {}).get(bucket, {}).get("mAP") for m in per_seed]
        cells["fixed AP"] = values(per_seed, fixed=True)
        cells["training s"] = study["seconds"].get(row, [None] * len(per_seed))
        rows[row] = cells
    return rows


def table(rows: dict, *, digits: int = 1):
    """The chapter's table: one row per remedy, ranked by mean mAP, cells "mean ± std" over seeds."""
    order = sorted(rows, key=lambda r: -(seed_stat(rows[r]["mAP"])["mean"] or 0.0))
    frame = pd.DataFrame({r: {col: mean_std([v for v in vals if v is not None] or None,
                                            0 if col == "training s" else digits)
                              for col, vals in rows[r].items()} for r in order}).T
    return frame.rename_axis(None)


def summary(study: dict, merged: list, effect_rows: list, *, best: str) -> dict:
    """The summary rows chapter 7 writes for the intro."""
    verdicts = dict(effect_rows)
    out = {f"mAP, {best} (best remedy since 2019)": seed_stat(values(study["metrics"][best]))}
    if best != CONTROL:
        out[f"mAP, {best} (best remedy since 2019)"]["verdict"] = verdicts[f"{best}: mAP"].verdict
    out[f"tail {TAIL} AP, {best}"] = seed_stat(values(study["metrics"][best], "mAP", TAIL))
    out[f"mAP, {best} + experts"] = {**seed_stat(values(merged)), "verdict": verdicts[f"{best} + experts: mAP"].verdict}
    return out


def talk_remedies(ctx) -> dict:
    """Per seed, the talk's own remedies on the same data: head-class downsampling (chapter 4, same start
    and budget as every row here) and the two experts merged (chapter 3)."""
    down = remedies.resampling_study(ctx, ["head_downsample"])["head_downsample"]
    experts = remedies.expert_study(ctx, *remedies.TALK_RANGES, strategy=ctx.cfg.experts.strategy)["merged_two"]
    return {"talk: head-class downsampling": down, "talk: experts merged": experts}


def sentence(study: dict, merged: list, effect_rows: list, *, best: str, talk: dict) -> str:
    """Which remedies beat the talk's on this data, and by how much (numbers and verdicts from the run)."""
    parts = []
    for name, per_seed in talk.items():
        effect = paired_effect(values(per_seed), values(study["metrics"][best]), talk_effect=None)
        parts.append(f"against the {name.removeprefix('talk: ')} it differs by **{effect.diff_mean:+.2f}** mAP "
                     f"(95% interval {interval_text(effect.ci_low, effect.ci_high, 2)}: {effect.verdict})")
    better = [label.split(":")[0] for label, e in effect_rows if label.endswith(": mAP") and e.ci_low > 0]
    return (f"The best remedy here is **{best}**: " + "; ".join(parts) + ". "
            + (f"Rows whose mAP gain over softmax CE has an interval above zero: {', '.join(better)}."
               if better else "No row's mAP gain over softmax CE has an interval above zero."))
