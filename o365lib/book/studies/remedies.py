"""Steps of the ByteDance talk's two long-tail remedies: class-range experts (chapter 3) and resampling (chapter 4).

Each function trains or loads what it needs (``o365lib.book.artefacts.models``), one random seed at a time,
so chapters 3 and 4 run alone; the ``*_study`` functions run every seed of the profile and return
per-seed metrics, paired by seed, for ``o365lib.book.present.comparisons``.
"""

from __future__ import annotations

import pandas as pd

from o365lib import data as odata
from o365lib.book.artefacts import datasets, models, predictions
from o365lib.book.artefacts.keys import key_of
from o365lib.book.present.comparisons import interval_text, paired_effect
from o365lib.book.present.seed_stats import TAIL, seed_stat, values
from o365lib.book.present.talk import TALK_EFFECTS
from o365lib.calibration import calibrate_results
from o365lib.evaluation import ap_by_rank_range, compare_metrics
from o365lib.experts import STRATEGIES, expert_training_set, merge_experts
from o365lib.longtail import build_sampler, effective_class_distribution, image_category_ids_from_coco

#: The talk's two expert ranges, in the order it merged them.
TALK_RANGES = ("301-365", "151-300")


def range_key(spec) -> str:
    """A folder-safe name of a class-range spec: "1-150,301-365" -> "1-150_301-365"."""
    return str(spec).replace(",", "_").replace(" ", "")


def expert_pair(ctx, classes, other="auto") -> tuple[str, str]:
    """The chapter's expert range and the second expert merged after it (validated against the classes).

    ``other="auto"`` takes the talk's other range: 151-300 for 301-365 and vice versa; for any other
    range, the talk's range (301-365 first) that does not overlap it.
    """
    num = len(datasets.ranking(ctx))
    first = str(classes)
    first_ranks = set(odata.parse_class_range(first, num))
    if other == "auto":
        options = [r for r in TALK_RANGES if not first_ranks & set(odata.parse_class_range(r, num))]
        if not options:
            raise ValueError(f"classes {classes!r} overlaps both of the talk's ranges; pass other_classes explicitly")
        other = options[0]
    if first_ranks & set(odata.parse_class_range(other, num)):
        raise ValueError(f"expert ranges {first!r} and {other!r} overlap; choose disjoint ranges")
    return first, str(other)


def rank_bounds(spec) -> tuple[int, int]:
    """(lowest, highest) rank of a spec, for plot ranges."""
    ranks = odata.parse_class_range(spec, 10**6)
    return min(ranks), max(ranks)


def range_ap(ctx, metrics: dict, spec) -> float:
    """Mean AP of a class-rank range from an ``evaluate`` output."""
    return ap_by_rank_range(metrics["per_class"], datasets.ranking(ctx), spec)["mAP"]


def expert_budget(ctx) -> dict:
    e = ctx.cfg.experts
    budget = {"iterations": e.iterations} if e.iterations is not None else {"epochs": e.epochs}
    return {**budget, "lr": e.lr}


def ensure_expert(ctx, spec, *, seed: int, base: models.ModelRun) -> models.ModelRun:
    """An expert fine-tuned from a general model on the training images of a class-rank range."""
    rank_of = datasets.ranking(ctx)
    ranks = odata.parse_class_range(spec, len(rank_of))
    other = ctx.cfg.experts.other_classes
    subset = datasets.derived_set(
        ctx, f"expert-{range_key(spec)}-{other}",
        lambda: expert_training_set(datasets.load_split(ctx, "train").dataset, ranks=ranks, ranking=rank_of,
                                    other_classes=other),
        depends={"ranks": ranks, "other_classes": other})
    return models.ensure_model(ctx, f"expert-{range_key(spec)}", seed=seed, train_set=subset, init=base,
                               budget=expert_budget(ctx))


def merged_results(ctx, general: predictions.LazyResults, experts: list, *, strategy: str,
                   calibration: dict | None = None) -> predictions.LazyResults:
    """Experts' results (``[(category ids, LazyResults), ...]``) merged into the general results, computed
    only when loaded. ``calibration`` (``{"norcal_gamma", "class_counts": {category id: count}}``) NorCal-
    calibrates every input's scores before the merge and its per-image cap."""
    cap = predictions.results_cap(ctx)

    def scored(results):
        loaded = results.load()
        if calibration is None:
            return loaded
        return calibrate_results(loaded, class_counts=calibration["class_counts"], gamma=calibration["norcal_gamma"])

    settings = {"merge": strategy, "max_dets": cap, "ranges": [sorted(ids) for ids, _ in experts]}
    if calibration is not None:
        settings["calibration"] = {"norcal_gamma": calibration["norcal_gamma"],
                                   "class_counts": key_of(sorted(calibration["class_counts"].items()))}
    return predictions.LazyResults.derived(
        lambda: merge_experts(scored(general), [(ids, scored(r)) for ids, r in experts], strategy=strategy,
                              max_dets=cap),
        inputs=[general, [r for _, r in experts]], settings=settings,
        code=(merge_experts, calibrate_results) if calibration is not None else (merge_experts,))


def merge_and_evaluate(ctx, general: predictions.LazyResults, experts: list, *, strategy: str, name: str) -> dict:
    """Merge experts' results (``[(spec, LazyResults), ...]``) into the general results and evaluate
    (the merge runs only when its metrics are not cached)."""
    owned = [(datasets.range_category_ids(ctx, spec), results) for spec, results in experts]
    return predictions.evaluate_results(ctx, merged_results(ctx, general, owned, strategy=strategy), split="val",
                                        name=f"{name}-{strategy}")


def expert_study(ctx, first: str, second: str, *, strategy: str) -> dict:
    """Per seed: the general model, the two experts and the merged systems (val metrics, paired by seed).

    Returns lists (one entry per seed) under "general", "expert", "merged_one", "merged_two" and the
    "strategies" table inputs ``{strategy: [metrics per seed]}`` for both merge strategies.
    """
    out = {k: [] for k in ("general", "expert", "merged_one", "merged_two", "runs")}
    out["strategies"] = {s: [] for s in STRATEGIES}
    for seed in ctx.seeds:
        base = models.ensure_baseline(ctx, seed)
        general = predictions.lazy_predictions(ctx, base, split="val")
        e1, e2 = ensure_expert(ctx, first, seed=seed, base=base), ensure_expert(ctx, second, seed=seed, base=base)
        r1, r2 = (predictions.lazy_predictions(ctx, e, split="val") for e in (e1, e2))
        out["general"].append(predictions.evaluate_results(ctx, general, name=base.key))
        out["expert"].append(predictions.evaluate_results(ctx, r1, name=e1.key))
        out["merged_one"].append(merge_and_evaluate(ctx, general, [(first, r1)], strategy=strategy,
                                                    name=f"merged-{e1.key}"))
        for s in STRATEGIES:
            out["strategies"][s].append(merge_and_evaluate(ctx, general, [(first, r1), (second, r2)], strategy=s,
                                                           name=f"merged-{e1.key}-{e2.key}"))
        out["merged_two"].append(out["strategies"][strategy][-1])
        out["runs"].append({"seed": seed, "general": base.key, "expert": e1.key, "second": e2.key})
    return out


# ------------------------------------------------------------------------------------- resampling
def sampler_options(ctx, name: str) -> dict:
    """The ``build_sampler`` options of a sampler from the profile's resampling section."""
    cfg = ctx.cfg.resampling
    if name == "repeat_factor":
        return {"threshold": float(cfg.repeat_threshold)}
    if name == "head_downsample":
        return {"cap": int(cfg.head_cap)}
    return {}


def sampler_distributions(ctx, names, *, epochs: int = 4) -> dict:
    """Images per class and epoch that each sampler draws (mean over ``epochs`` epochs)."""
    ids = image_category_ids_from_coco(datasets.load_split(ctx, "train").dataset)
    return {name: effective_class_distribution(build_sampler(name, ids, seed=0, **sampler_options(ctx, name)),
                                               ids, epochs=epochs) for name in names}


def sampler_summary_table(ctx, distributions: dict) -> pd.DataFrame:
    """Per sampler: images per epoch and the mean images per class and epoch in each rank range."""
    rows = {}
    for name, dist in distributions.items():
        row = {"image draws per class (sum)": sum(dist.values())}
        for spec in ctx.cfg.eval.ranges:
            cats = datasets.range_category_ids(ctx, spec)
            row[f"per class, ranks {spec}"] = sum(dist.get(c, 0.0) for c in cats) / len(cats)
        low = min((v for v in dist.values() if v > 0), default=0.0)
        row["max / min"] = max(dist.values()) / low if low else float("nan")
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").round(1)


def resampling_budget(ctx, *, epochs: float | None = None) -> dict:
    """The common budget: the profile's resampling epochs (or ``epochs``) of uniform sampling, in iterations."""
    cfg = ctx.cfg.resampling
    images = len(datasets.load_split(ctx, "train").images)
    batch = ctx.cfg.train.batch_size * ctx.cfg.train.processes  # the global batch of a step
    epochs = cfg.epochs if epochs is None else float(epochs)
    return {"iterations": max(1, round(epochs * images / batch)), "lr": cfg.lr}


def resampled_spec(ctx, name: str, *, base: models.ModelRun, loss: dict | None = None,
                   classifier_start: str | None = None, epochs: float | None = None) -> dict:
    """The ``models.ensure_model`` arguments (all but the random seed) of a fine-tune with sampler ``name``."""
    return {"name": f"resample-{name}" + (f"-{loss['class_loss']}" if loss else ""), "init": base,
            "sampler": {"name": name, **sampler_options(ctx, name)}, "budget": resampling_budget(ctx, epochs=epochs),
            "detector_overrides": loss, "classifier_start": classifier_start if loss else None}


def ensure_resampled(ctx, name: str, *, seed: int, base: models.ModelRun, loss: dict | None = None,
                     classifier_start: str | None = None, epochs: float | None = None) -> models.ModelRun:
    """A general model fine-tuned with one sampler, common budget (or ``epochs`` of it); ``loss``:
    ``build_detector`` arguments of a classification loss (``o365lib.book.studies.beyond.loss_spec``), default
    softmax cross-entropy, whose classifier starts as ``classifier_start`` says (``models.ensure_model``)."""
    spec = resampled_spec(ctx, name, base=base, loss=loss, classifier_start=classifier_start, epochs=epochs)
    return models.ensure_model(ctx, spec.pop("name"), seed=seed, **spec)


def resampling_study(ctx, names) -> dict:
    """``{sampler: [val metrics per seed]}``, every sampler fine-tuned from the baseline of the same random seed."""
    out = {name: [] for name in names}
    for seed in ctx.seeds:
        base = models.ensure_baseline(ctx, seed)
        for name in names:
            out[name].append(predictions.model_metrics(ctx, ensure_resampled(ctx, name, seed=seed, base=base)))
    return out


# ------------------------------------------------------------------------- expert effects (paired)
def expert_effects(ctx, study: dict, *, first: str, second: str) -> list:
    """The chapter's paired effects ``[(label, Effect)]``: expert vs general on its range, and each merge step."""
    on_range = [range_ap(ctx, m, first) for m in study["general"]], [range_ap(ctx, m, first) for m in study["expert"]]
    tail = first == "301-365"
    return [
        (f"expert vs general, AP ranks {first}",
         paired_effect(*on_range, talk_effect=TALK_EFFECTS["expert_tail"] if tail else None)),
        (f"+ expert {first}, mAP", paired_effect(values(study["general"]), values(study["merged_one"]),
                                                 talk_effect=TALK_EFFECTS["merge_first_expert"] if tail else None)),
        (f"+ expert {second}, mAP", paired_effect(values(study["merged_one"]), values(study["merged_two"]),
                                                  talk_effect=TALK_EFFECTS["merge_second_expert"] if tail else None)),
        (f"expert vs general, fixed AP ranks {first}",
         paired_effect(values(study["general"], "mAP", first, fixed=True),
                       values(study["expert"], "mAP", first, fixed=True), talk_effect=None)),
    ]


def classes_improved(ctx, study: dict, *, first: str) -> list[int]:
    """Per seed, how many classes of the range the expert improves over the general model."""
    rank_of = datasets.ranking(ctx)
    return [compare_metrics(g, e, rank_of, spec=first)["improved"] for g, e in zip(study["general"], study["expert"])]


def cap_rows(study: dict, *, first: str) -> list[tuple]:
    """Range AP of the expert alone and merged, under the per-image cap and under fixed AP."""
    return [(f"expert alone, AP ranks {first}", values(study["expert"], "mAP", first), None),
            (f"merged, AP ranks {first}", values(study["merged_two"], "mAP", first), None),
            (f"expert alone, fixed AP ranks {first}", values(study["expert"], "mAP", first, fixed=True), None),
            (f"merged, fixed AP ranks {first}", values(study["merged_two"], "mAP", first, fixed=True), None)]


def expert_sentence(ctx, study: dict, effects: list, *, first: str) -> str:
    """Plain words for the expert effect and the merge, with the verdicts of their intervals."""
    (_, on_range), (_, merge1), (_, merge2), _ = effects
    improved = seed_stat(classes_improved(ctx, study, first=first))
    n = study["expert"][0]["ranges"].get(first, {}).get("num_classes") if first in study["expert"][0]["ranges"] \
        else len(datasets.range_category_ids(ctx, first))
    return (f"Over {on_range.n} paired seeds the expert changes the AP of ranks {first} by "
            f"**{on_range.diff_mean:+.1f}** (95% interval {interval_text(on_range.ci_low, on_range.ci_high)}): "
            f"**{on_range.verdict}**. It improves {improved['mean']:.1f} of {n} classes on average "
            f"(the talk, ranks 301-365: 46 of 65). Merging the first expert changes overall mAP by "
            f"{merge1.diff_mean:+.2f} (**{merge1.verdict}**), the second by {merge2.diff_mean:+.2f} "
            f"(**{merge2.verdict}**).")


def expert_summary(ctx, study: dict, effects: list, *, first: str) -> dict:
    """The summary rows chapter 3 writes for the intro."""
    (_, on_range), _, (_, merge2), _ = effects
    rows = {f"{first} classes improved by expert": seed_stat(classes_improved(ctx, study, first=first))}
    if first == "301-365":
        rows["tail 301-365 AP, expert"] = {**seed_stat([range_ap(ctx, m, first) for m in study["expert"]]),
                                           "verdict": on_range.verdict}
        rows["mAP, experts merged"] = {**seed_stat(values(study["merged_two"])), "verdict": merge2.verdict}
    else:
        rows[f"AP ranks {first}, expert"] = {**seed_stat([range_ap(ctx, m, first) for m in study["expert"]]),
                                             "verdict": on_range.verdict}
    return rows


def resampling_effects(ctx, study: dict, *, control: str = "uniform") -> list:
    """Each sampler against the uniform control (same start, budget and seeds): tail AP and overall mAP."""
    effects = []
    for name, per_seed in study.items():
        if name == control:
            continue
        talk = name == "head_downsample"
        effects.append((f"{name} vs {control}, AP ranks {TAIL}",
                        paired_effect(values(study[control], "mAP", TAIL), values(per_seed, "mAP", TAIL),
                                      talk_effect=TALK_EFFECTS["resample_tail"] if talk else None)))
        effects.append((f"{name} vs {control}, mAP",
                        paired_effect(values(study[control]), values(per_seed),
                                      talk_effect=TALK_EFFECTS["resample_overall"] if talk else None)))
    return effects


def resampling_rows(ctx, study: dict) -> list[tuple]:
    """Per sampler: mAP, each range's AP and the tail's zero-AP count (per-seed values)."""
    rows = []
    for name, per_seed in study.items():
        rows.append((f"{name}: mAP", values(per_seed), None))
        rows += [(f"{name}: AP ranks {r}", values(per_seed, "mAP", r), None) for r in ctx.cfg.eval.ranges]
        rows.append((f"{name}: zero-AP classes {TAIL}", values(per_seed, "zero_ap", TAIL), None))
    return rows


def resampling_summary(study: dict, effects: list) -> dict:
    verdicts = dict(effects)
    out = {}
    if "head_downsample" in study:
        out["tail 301-365 AP, resampling"] = {**seed_stat(values(study["head_downsample"], "mAP", TAIL)),
                                              "verdict": verdicts[f"head_downsample vs uniform, AP ranks {TAIL}"].verdict}
        out["mAP, resampling"] = {**seed_stat(values(study["head_downsample"])),
                                  "verdict": verdicts["head_downsample vs uniform, mAP"].verdict}
    if "repeat_factor" in study:
        out["tail 301-365 AP, repeat factor"] = seed_stat(values(study["repeat_factor"], "mAP", TAIL))
    return out
