"""Steps of the two long-tail remedies: class-range experts (chapter 3) and resampling (chapter 4).

Like ``steps``, each function trains or loads what it needs from the profile's results folder,
so chapters 3 and 4 run alone. Parameters become arguments here, nowhere else.
"""

from __future__ import annotations

import pandas as pd

from o365lib import data as odata
from o365lib.book import steps
from o365lib.evaluation import ap_by_rank_range

#: The seed's two expert ranges, in the order it merged them.
SEED_RANGES = ("301-365", "151-300")


def range_key(spec) -> str:
    """A folder-safe name of a class-range spec: "1-150,301-365" -> "1-150_301-365"."""
    return str(spec).replace(",", "_").replace(" ", "")


def expert_pair(ctx, classes, other="auto") -> tuple[str, str]:
    """The chapter's expert range and the second expert merged after it.

    ``other="auto"`` takes the seed's other range: 151-300 for 301-365 and vice versa; for any
    other range, the seed range (301-365 first) that does not overlap it. Both are validated
    against the class count, so a bad spec fails before anything trains.
    """
    num = len(steps.ranking(ctx))
    first = str(classes)
    first_ranks = set(odata.parse_class_range(first, num))
    if other == "auto":
        options = [r for r in SEED_RANGES if not first_ranks & set(odata.parse_class_range(r, num))]
        if not options:
            raise ValueError(f"classes {classes!r} overlaps both seed ranges; pass other_classes explicitly")
        other = options[0]
    second_ranks = set(odata.parse_class_range(other, num))
    if first_ranks & second_ranks:
        raise ValueError(f"expert ranges {first!r} and {other!r} overlap; choose disjoint ranges")
    return first, str(other)


def rank_bounds(spec) -> tuple[int, int]:
    """(lowest, highest) rank of a spec, for plot ranges."""
    ranks = odata.parse_class_range(spec, 10**6)
    return min(ranks), max(ranks)


def ensure_expert(ctx, spec, *, base=None) -> steps.ModelRun:
    """An expert fine-tuned from the baseline on the training images of a class-rank range."""
    from o365lib.experts import expert_training_set

    base = base or steps.ensure_baseline(ctx)
    rank_of = steps.ranking(ctx)
    ranks = odata.parse_class_range(spec, len(rank_of))
    other = ctx.cfg["experts"].get("other_classes", "background")
    subset = steps.derived_set(ctx, f"expert-{range_key(spec)}-{other}", lambda: expert_training_set(
        steps.load_split(ctx, "train").dataset, ranks=ranks, ranking=rank_of, other_classes=other))
    return steps.ensure_model(ctx, f"expert-{range_key(spec)}", train_set=subset, section="experts", init=base)


def merge_and_evaluate(ctx, general, experts, *, strategy: str, name: str) -> dict:
    """Merge experts' results (``[(spec, results), ...]``) into the general results and evaluate."""
    from o365lib.experts import merge_experts

    owned = [(steps.range_category_ids(ctx, spec), results) for spec, results in experts]
    merged = merge_experts(general, owned, strategy=strategy, max_dets=int(ctx.cfg["eval"]["max_dets"]))
    return steps.evaluate_results(ctx, merged, split="val", name=f"{name}-{strategy}")


def compare_merge_strategies(ctx, general, experts, *, name: str) -> pd.DataFrame:
    """Overall and per-range AP of the merged results under each merge strategy."""
    from o365lib.experts import STRATEGIES

    rows = {}
    for strategy in STRATEGIES:
        metrics = merge_and_evaluate(ctx, general, experts, strategy=strategy, name=name)
        rows[strategy] = {"mAP": metrics["mAP"], **{f"AP {r}": v["mAP"] for r, v in metrics["ranges"].items()}}
    return pd.DataFrame.from_dict(rows, orient="index").round(2)


def range_ap(ctx, metrics: dict, spec) -> float:
    """Mean AP of a class-rank range from an ``evaluate`` output."""
    return ap_by_rank_range(metrics["per_class"], steps.ranking(ctx), spec)["mAP"]


# ------------------------------------------------------------------------------------- resampling
def sampler_options(ctx, name: str) -> dict:
    """The ``build_sampler`` options of a sampler from the profile's resampling section."""
    cfg = ctx.cfg["resampling"]
    if name == "repeat_factor":
        return {"threshold": float(cfg["repeat_threshold"])}
    if name == "head_downsample":
        return {"cap": int(cfg["head_cap"])}
    return {}


def sampler_distributions(ctx, names, *, epochs: int = 4) -> dict:
    """Images per class and epoch that each sampler draws (mean over ``epochs`` epochs)."""
    from o365lib.longtail import build_sampler, effective_class_distribution, image_category_ids_from_coco

    ids = image_category_ids_from_coco(steps.load_split(ctx, "train").dataset)
    seed = int(ctx.cfg.get("seed", 0))
    return {name: effective_class_distribution(build_sampler(name, ids, seed=seed, **sampler_options(ctx, name)),
                                               ids, epochs=epochs) for name in names}


def sampler_summary_table(ctx, distributions: dict) -> pd.DataFrame:
    """Per sampler: images per epoch and the mean images per class and epoch in each rank range."""
    rank_of = steps.ranking(ctx)
    rows = {}
    for name, dist in distributions.items():
        row = {"image draws per class (sum)": sum(dist.values())}
        for spec in ctx.cfg["eval"]["ranges"]:
            cats = steps.range_category_ids(ctx, spec)
            row[f"per class, ranks {spec}"] = sum(dist.get(c, 0.0) for c in cats) / len(cats)
        top = max(dist.values()) if dist else 0.0
        low = min(v for v in dist.values() if v > 0) if dist else 0.0
        row["max / min"] = top / low if low else float("nan")
        rows[name] = row
    del rank_of
    return pd.DataFrame.from_dict(rows, orient="index").round(1)


def ensure_resampled(ctx, name: str, *, base=None) -> steps.ModelRun:
    """The baseline fine-tuned with one sampler; every sampler gets the same iteration budget."""
    base = base or steps.ensure_baseline(ctx)
    cfg = ctx.cfg["resampling"]
    iterations = resampling_iterations(ctx)
    return steps.ensure_model(ctx, f"resample-{name}", section="resampling", init=base,
                              sampler={"name": name, **sampler_options(ctx, name)},
                              train_overrides={"iterations": iterations, "lr": float(cfg["lr"])})


def resampling_iterations(ctx) -> int:
    """The common budget: the profile's resampling epochs of uniform sampling, in iterations."""
    cfg, train_cfg = ctx.cfg["resampling"], ctx.cfg["train"]
    images = len(steps.load_split(ctx, "train").images)
    return max(1, round(float(cfg["epochs"]) * images / int(train_cfg["batch_size"])))


def resampling_table(ctx, metrics: dict, *, control: str = "uniform") -> pd.DataFrame:
    """mAP and per-range AP per sampler, with deltas to the control sampler."""
    ranges = ctx.cfg["eval"]["ranges"]
    rows = {name: {"mAP": m["mAP"], **{f"AP {r}": m["ranges"][r]["mAP"] for r in ranges},
                   "zero-AP 301-365": m["ranges"][ranges[-1]]["zero_ap"]} for name, m in metrics.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    if control in table.index:
        table["mAP delta"] = table["mAP"] - table.loc[control, "mAP"]
        table["tail delta"] = table[f"AP {ranges[-1]}"] - table.loc[control, f"AP {ranges[-1]}"]
    return table.round(2)
