"""Per-seed metrics turned into the numbers a chapter reports: values, mean ± std, the regime table.

A chapter's metrics come as one ``evaluate`` output per random seed (paired by seed across the arms
of a comparison). :func:`values` reads one number out of each; :func:`seed_stat` is the summary
format every chapter writes into ``metrics.json`` (``{"mean", "std", "n", "values"}``, read by
``o365lib.book.present.report``); :func:`regime_rows` and :func:`regime_summary` describe the baseline's
regime next to the ByteDance talk's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from o365lib.book.present.comparisons import mean_std, seed_summary
from o365lib.book.present.talk import TALK

TAIL = "301-365"


def metric(metrics: dict, key: str, spec: str | None = None, *, fixed: bool = False):
    """One number of an ``evaluate`` output: ``key`` overall, or of a rank range ``spec``; fixed AP with ``fixed``."""
    source = metrics.get("fixed_ap", {}) if fixed else metrics
    if spec is None:
        return source.get(key)
    return source.get("ranges", {}).get(spec, {}).get(key)


def values(per_seed: Sequence[dict], key: str = "mAP", spec: str | None = None, *, fixed: bool = False) -> list:
    """The same number from the metrics of each random seed, in seed order."""
    return [metric(m, key, spec, fixed=fixed) for m in per_seed]


def seed_stat(samples: Sequence[float | None]) -> dict:
    """``{"mean", "std", "n", "values"}`` over seeds (``o365lib.spread``: the sample std, None for one seed;
    missing values ignored)."""
    kept = [float(v) for v in samples if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not kept:
        return {"mean": None, "std": None, "n": 0, "values": []}
    mean, std, n = seed_summary(kept)
    return {"mean": mean, "std": std if n > 1 else None, "n": n, "values": kept}


def regime_rows(ctx, per_seed: Sequence[dict]) -> list[tuple]:
    """Rows ``(label, per-seed values, the talk's number or None)`` of the baseline's regime."""
    ranges = list(ctx.cfg.eval.ranges)
    rows = [("mAP (all classes)", values(per_seed), TALK["baseline_map"])]
    rows += [(f"AP ranks {r}", values(per_seed, "mAP", r), TALK["expert_tail_before"] if r == TAIL else None)
             for r in ranges]
    if TAIL in ranges:
        rows.append((f"zero-AP classes in {TAIL}", values(per_seed, "zero_ap", TAIL), TALK["tail_zero_ap"]))
    rows.append(("fixed AP (all classes)", values(per_seed, "mAP", fixed=True), None))
    if TAIL in ranges:
        rows.append((f"fixed AP ranks {TAIL}", values(per_seed, "mAP", TAIL, fixed=True), None))
    return rows


def regime_summary(ctx, per_seed: Sequence[dict]) -> dict:
    """The summary rows chapter 2 writes for the intro (per-seed statistics)."""
    out = {"baseline mAP": seed_stat(values(per_seed)), "baseline fixed AP": seed_stat(values(per_seed, fixed=True))}
    if TAIL in ctx.cfg.eval.ranges:
        out["tail 301-365 AP"] = seed_stat(values(per_seed, "mAP", TAIL))
        out["tail 301-365 zero-AP classes"] = seed_stat(values(per_seed, "zero_ap", TAIL))
    for spec in ctx.cfg.eval.ranges:
        if spec != TAIL:
            out[f"AP ranks {spec}"] = seed_stat(values(per_seed, "mAP", spec))
    return out


def regime_sentence(ctx, per_seed: Sequence[dict]) -> str:
    """A plain statement of the regime reached, next to the talk's (numbers from the run)."""
    ranges = list(ctx.cfg.eval.ranges)
    overall = seed_stat(values(per_seed))
    head, tail = seed_stat(values(per_seed, "mAP", ranges[0])), seed_stat(values(per_seed, "mAP", ranges[-1]))
    zero = seed_stat(values(per_seed, "zero_ap", ranges[-1]))
    n_tail = per_seed[0]["ranges"][ranges[-1]]["num_classes"] if per_seed else 0
    falls = head["mean"] is not None and tail["mean"] is not None and head["mean"] > tail["mean"]

    def f(stat, digits=1):
        return mean_std({"mean": stat["mean"], "std": stat["std"]}, digits)

    return (f"Over {overall['n']} seeds the baseline reaches **{f(overall)}** mAP (the talk: {TALK['baseline_map']}). "
            f"Ranks {ranges[0]} score **{f(head)}**, ranks {ranges[-1]} **{f(tail)}** "
            f"(the talk: {TALK['expert_tail_before']}), and **{f(zero)}** of the {n_tail} tail classes have zero AP "
            f"(the talk: {TALK['tail_zero_ap']} of {TALK['tail_num_classes']}). "
            + ("AP falls with the class rank, as in the talk. " if falls else
               "AP does **not** fall with the class rank here: the talk's finding does not reproduce. ")
            + _tail_regime(zero["mean"], n_tail)
            + _seeds_outside_band(values(per_seed, "zero_ap", ranges[-1]), n_tail,
                                  seeds=list(getattr(ctx, "seeds", range(len(per_seed))))))


def _seeds_outside_band(zero_per_seed: Sequence[float | None], n_tail: int, *, seeds: Sequence[int]) -> str:
    """The seeds whose own tail leaves the talk's band (20-80% of the tail classes at zero), by name."""
    if not n_tail or len(zero_per_seed) < 2:
        return ""
    outside = [f"seed {seed} has {int(z)} of {n_tail} ({100 * z / n_tail:.0f}%)" for seed, z in zip(seeds, zero_per_seed)
               if z is not None and not 0.2 <= z / n_tail <= 0.8]
    if not outside:
        return ""
    return (" On its own, " + "; ".join(outside) + " tail classes at zero: outside the 20-80% band of the "
            "talk's regime.")


def _tail_regime(zero_mean, n_tail: int) -> str:
    """Whether the tail is in the talk's regime (weak, not dead: 39 of 65 at zero there)."""
    if zero_mean is None or not n_tail:
        return ""
    share = zero_mean / n_tail
    if share > 0.8:
        return ("But the tail is **dead**, not weak as in the talk: more than 80% of its classes score zero, "
                "so a tail remedy has little to lift here.")
    if share < 0.2:
        return "The tail is stronger than in the talk: fewer than 20% of its classes score zero."
    return "The tail is weak but not dead, as in the talk."

