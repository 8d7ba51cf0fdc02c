"""Ours against the ByteDance talk (Lu et al. 2019): effects over paired random seeds, and verdicts.

A chapter never types a number: it passes measured values, one per random seed, and the talk's
number (``o365lib.book.present.talk``) to these helpers, which summarise them and say whether an effect
reproduced.

**Paired effects.** Both arms of a comparison (expert against general model, a sampler against
uniform sampling, a trick against the row before it) are trained with the same random seeds, so
the effect is measured per seed: ``d_i = b_i - a_i`` (treated minus control). :func:`paired_effect`
reports the mean and standard deviation (``ddof=1``) of each arm and of the differences, and a
two-sided Student-t interval for the mean difference, ``mean(d) ± t(1 - (1 - c) / 2, n - 1) *
sd(d) / sqrt(n)`` at confidence ``c`` (0.95 by default). No threshold enters anywhere.

**Verdicts** (:func:`interval_verdict`) read only that interval and the talk's effect:

- ``"reproduced"``: the interval excludes 0 on the talk's side;
- ``"reversed"``: it excludes 0 on the other side;
- ``"inconclusive"``: it contains 0;
- ``"inconclusive (1 seed)"``: one seed gives no interval;
- ``"not measured"``: no seed at all.

The talk reports no zero effect; should one be given (``talk_effect=0``, "no change"), an interval
that excludes 0 reads ``"contradicted"`` and one that contains 0 ``"inconclusive"``, because failing
to detect a change does not show its absence. Without a talk number (``talk_effect=None``, a
comparison beyond the talk) the verdict is ``"higher"``, ``"lower"`` or ``"inconclusive"``.

A bootstrap over validation images (evaluation noise) is not provided: the mAP of a resampled image
set needs the evaluation to accept repeated images, which ``o365lib.evaluation`` does not offer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pandas as pd

from o365lib.spread import mean_std_n

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

#: Verdict strings, for chapters that count them.
REPRODUCED, REVERSED, INCONCLUSIVE, ONE_SEED, NOT_MEASURED = (
    "reproduced", "reversed", "inconclusive", "inconclusive (1 seed)", "not measured")
CONTRADICTED, HIGHER, LOWER = "contradicted", "higher", "lower"


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, numbers.Real) and math.isnan(value))


def fmt(value, digits: int = 1) -> str:
    """A number for prose: ints as ints, floats with ``digits`` decimals, '-' for missing."""
    if _missing(value):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    text = f"{float(value):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0"


def signed(value, digits: int = 1) -> str:
    """A difference for tables: '+1.2', '-0.3', '0.0', '-' for missing."""
    text = fmt(value, digits)
    return text if text == "-" or text.startswith("-") or float(text) == 0 else "+" + text


# ------------------------------------------------------------------------------- statistics
def t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t with ``dof`` (a positive integer) degrees of freedom.

    Exact for integer degrees of freedom: ``P(|T| < t)`` has a closed form in
    ``theta = atan(t / sqrt(dof))`` (Abramowitz and Stegun 26.7.3-4), inverted by bisection to
    machine precision. ``t_quantile(0.975, 2) = 4.303``, ``t_quantile(0.975, 4) = 2.776``.
    """
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if int(dof) != dof or dof < 1:
        raise ValueError(f"degrees of freedom must be a positive integer, got {dof}")
    dof = int(dof)
    if probability == 0.5:
        return 0.0
    if probability < 0.5:
        return -t_quantile(1 - probability, dof)
    target = 2 * probability - 1  # P(|T| < t)

    def central(theta: float) -> float:
        c2, s = math.cos(theta) ** 2, math.sin(theta)
        if dof % 2:  # odd: (2 / pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
            total, term = 0.0, 1.0
            for k in range(1, (dof - 1) // 2 + 1):
                total += term
                term *= c2 * (2 * k) / (2 * k + 1)
            return 2 / math.pi * (theta + s * math.cos(theta) * total) if dof > 1 else 2 * theta / math.pi
        total, term = 0.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        for k in range(1, dof // 2 + 1):
            total += term
            term *= c2 * (2 * k - 1) / (2 * k)
        return s * total

    lo, hi = 0.0, math.pi / 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if central(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return math.sqrt(dof) * math.tan((lo + hi) / 2)


def _values(values, *, what: str) -> list[float]:
    if isinstance(values, numbers.Real):
        values = [values]
    out = []
    for i, v in enumerate(values):
        if _missing(v) or not isinstance(v, numbers.Real):
            raise ValueError(f"{what}: value {i} is {v!r}, not a number")
        out.append(float(v))
    return out


def seed_summary(values) -> tuple[float, float, int]:
    """``(mean, std, n)`` of per-seed values (``o365lib.spread``: std with ``ddof=1``, NaN for one seed);
    a missing or non-numeric value is a ``ValueError``."""
    return mean_std_n(_values(values, what="seed_summary"))


def interval_verdict(ci_low: float, ci_high: float, *, talk_effect: float | None, n: int) -> str:
    """The verdict of an effect from its interval alone (see the module docstring)."""
    if n == 0:
        return NOT_MEASURED
    if n == 1 or _missing(ci_low) or _missing(ci_high):
        return ONE_SEED
    side = 1 if ci_low > 0 else -1 if ci_high < 0 else 0  # which side of 0 the interval lies on
    if side == 0:
        return INCONCLUSIVE
    if talk_effect is None:
        return HIGHER if side > 0 else LOWER
    if talk_effect == 0:
        return CONTRADICTED
    return REPRODUCED if side == (1 if talk_effect > 0 else -1) else REVERSED


@dataclass(frozen=True)
class Effect:
    """A paired effect over random seeds: arm ``a`` is the control, arm ``b`` the treated; diff = b - a."""

    n: int
    mean_a: float
    std_a: float
    mean_b: float
    std_b: float
    diff_mean: float
    diff_std: float
    ci_low: float
    ci_high: float
    confidence: float
    talk_effect: float | None
    verdict: str
    diffs: tuple[float, ...] = ()
    seeds: tuple | None = None

    def as_dict(self) -> dict:
        """Plain JSON-ready fields (NaN stays NaN: write with ``o365lib.io.write_json``)."""
        out = asdict(self)
        out["diffs"], out["seeds"] = list(self.diffs), None if self.seeds is None else list(self.seeds)
        return out

    def summary(self) -> dict:
        """The effect as a ``summary`` value of a chapter's ``metrics.json`` (``o365lib.book.present.report``)."""
        return {"values": list(self.diffs), "ci": [self.ci_low, self.ci_high], "verdict": self.verdict}


def _paired(ours_a, ours_b) -> tuple[list[float], list[float], tuple | None]:
    """Aligned per-seed values; mappings are paired by their seed keys."""
    if isinstance(ours_a, Mapping) != isinstance(ours_b, Mapping):
        raise TypeError("paired_effect: pass both arms as seed -> value mappings or both as sequences")
    if isinstance(ours_a, Mapping):
        if set(ours_a) != set(ours_b):
            raise ValueError(f"paired_effect: the arms have different seeds: {sorted(ours_a)} and {sorted(ours_b)}")
        seeds = tuple(sorted(ours_a))
        return (_values([ours_a[s] for s in seeds], what="ours_a"), _values([ours_b[s] for s in seeds], what="ours_b"),
                seeds)
    a, b = _values(ours_a, what="ours_a"), _values(ours_b, what="ours_b")
    if len(a) != len(b):
        raise ValueError(f"paired_effect: the arms must have one value per seed each, got {len(a)} and {len(b)}")
    return a, b, None


def paired_effect(ours_a, ours_b, *, talk_effect: float | None, confidence: float = 0.95) -> Effect:
    """The effect of going from arm ``a`` (control) to arm ``b`` (treated), paired by random seed.

    ``ours_a`` / ``ours_b``: one value per seed in the same seed order, or mappings seed -> value
    (paired by key). ``talk_effect``: the talk's difference b - a in the same units, or None.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b, seeds = _paired(ours_a, ours_b)
    diffs = [y - x for x, y in zip(a, b)]
    (mean_a, std_a, n), (mean_b, std_b, _), (diff_mean, diff_std, _) = map(seed_summary, (a, b, diffs))
    if n > 1:
        half = t_quantile(1 - (1 - confidence) / 2, n - 1) * diff_std / math.sqrt(n)
        ci_low, ci_high = diff_mean - half, diff_mean + half
    else:
        ci_low = ci_high = math.nan
    talk = None if _missing(talk_effect) else float(talk_effect)
    return Effect(n=n, mean_a=mean_a, std_a=std_a, mean_b=mean_b, std_b=std_b, diff_mean=diff_mean,
                  diff_std=diff_std, ci_low=ci_low, ci_high=ci_high, confidence=confidence, talk_effect=talk,
                  verdict=interval_verdict(ci_low, ci_high, talk_effect=talk, n=n), diffs=tuple(diffs), seeds=seeds)


def effects_records(rows) -> list[dict]:
    """``(label, Effect)`` pairs (or a mapping label -> Effect) as JSON-ready records for ``metrics.json``."""
    items = rows.items() if isinstance(rows, Mapping) else rows
    return [{"label": str(label), **effect.as_dict()} for label, effect in items]


# ------------------------------------------------------------------------------------ tables
def mean_std(values, digits: int = 1) -> str:
    """Per-seed values as "mean ± std" ("12.3 ± 0.4"); one value as itself; none as '-'.

    ``values`` may be a number, a sequence of per-seed numbers, or a mapping with "values" or
    "mean"/"std" (a summary value, see ``o365lib.book.present.report``). Missing values (None, NaN) in a list
    are left out (a seed that did not measure this). Whole numbers given alone stay ints.
    """
    if isinstance(values, Mapping):
        if "values" in values:
            values = values["values"]
        else:
            mean, std = values.get("mean"), values.get("std")
            return fmt(mean, digits) + ("" if _missing(std) else f" ± {fmt(std, digits)}")
    if _missing(values):
        return "-"
    if isinstance(values, numbers.Real):
        return fmt(values, digits)
    values = [v for v in values if not _missing(v)]
    mean, std, n = seed_summary(values)
    if n == 1:
        return fmt(values[0], digits)
    return "-" if n == 0 else f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def interval_text(low: float, high: float, digits: int = 1) -> str:
    """An interval as "[+0.3, +2.1]", '-' when undefined; an end near zero as "-0.0014", not "0.0"."""
    if _missing(low) or _missing(high):
        return "-"
    return f"[{_bound(low, digits)}, {_bound(high, digits)}]"


def _bound(value: float, digits: int) -> str:
    """An interval end; one that rounds to zero keeps its sign ("-0.0014"), since the verdict reads it."""
    text = signed(value, digits)
    if float(text) == 0 and float(value) != 0:
        return f"{float(value):+.2g}"
    return text


def _seeds(values) -> int | str:
    """How many seeds a value holds: a list's measured values, a summary's "values" or "n", 1 for a number."""
    if isinstance(values, Mapping):
        if "values" in values:
            return len(values["values"])
        return "-" if _missing(values.get("n")) else int(values["n"])
    if _missing(values):
        return "-"
    return 1 if isinstance(values, numbers.Real) else sum(not _missing(v) for v in values)


def effects_table(rows, *, digits: int = 1) -> pd.DataFrame:
    """An ablation or comparison table of paired effects, as text for the page.

    ``rows``: ``(label, item)`` pairs (or a mapping label -> item). An item is an :class:`Effect`
    (the treated arm shown as "ours (mean ± std)", then its paired difference, interval, the talk's
    difference and the verdict) or the per-seed values of a row without a comparison (a control:
    the difference columns read '-'). Columns: "ours (mean ± std)", "ours Δ", "95% CI" (the
    effect's confidence), "talk Δ", "verdict", "seeds" (an int).
    """
    items = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    confidence = next((e.confidence for _, e in items if isinstance(e, Effect)), 0.95)
    ci_column = f"{100 * confidence:g}% CI"
    records = []
    for label, item in items:
        if isinstance(item, Effect):
            ours = "-" if item.n == 0 else (fmt(item.mean_b, digits) if item.n == 1 else
                                             f"{fmt(item.mean_b, digits)} ± {fmt(item.std_b, digits)}")
            records.append({"": label, "ours (mean ± std)": ours, "ours Δ": signed(item.diff_mean, digits),
                            ci_column: interval_text(item.ci_low, item.ci_high, digits),
                            "talk Δ": signed(item.talk_effect, digits), "verdict": item.verdict, "seeds": item.n})
        else:
            records.append({"": label, "ours (mean ± std)": mean_std(item, digits), "ours Δ": "-", ci_column: "-",
                            "talk Δ": "-", "verdict": "-", "seeds": _seeds(item)})
    return pd.DataFrame(records, dtype=object).set_index("").rename_axis(None)


def comparison_table(rows, *, digits: int = 1) -> pd.DataFrame:
    """Ours (mean ± std over seeds) next to the talk's number, as text for the page.

    ``rows``: ``(label, ours, talk)`` triples; ``ours`` a number, per-seed numbers or a summary
    mapping; ``talk`` a number or None ('-'). Columns "ours (mean ± std)", "talk", "seeds".
    """
    records = [{"": label, "ours (mean ± std)": mean_std(ours, digits), "talk": fmt(talk, digits),
                "seeds": _seeds(ours)} for label, ours, talk in rows]
    return pd.DataFrame(records, dtype=object).set_index("").rename_axis(None)


def metrics_table(per_seed: Mapping[str, Sequence[Mapping]], *, ranges: Sequence[str] | None = None,
                  digits: int = 1) -> pd.DataFrame:
    """Per model, the columns that matter of its per-seed ``evaluate`` outputs, as "mean ± std" text.

    ``per_seed``: model name -> list of ``o365lib.evaluation.evaluate`` dicts (one per seed). Columns
    "mAP", "AP <range>" for each of ``ranges`` (default: the first model's ranges), "zero-AP <last
    range>" and "seeds".
    """
    first = next(iter(per_seed.values()), [])
    if ranges is None:
        ranges = list(first[0].get("ranges", {})) if first else []
    records = []
    for name, runs in per_seed.items():
        row = {"": name, "mAP": mean_std([m["mAP"] for m in runs], digits)}
        for spec in ranges:
            row[f"AP {spec}"] = mean_std([m["ranges"][spec]["mAP"] for m in runs], digits)
        if ranges:
            row[f"zero-AP {ranges[-1]}"] = mean_std([int(m["ranges"][ranges[-1]]["zero_ap"]) for m in runs], digits)
        row["seeds"] = len(runs)
        records.append(row)
    return pd.DataFrame(records, dtype=object).set_index("").rename_axis(None)


def page_table(frame: pd.DataFrame, digits: int = 2, *,
               integer_columns: Sequence[str] = ()) -> pd.DataFrame | Styler:
    """A table for the page: numbers as fixed-digit text, ints as ints, '-' where a value is missing.

    Integer columns (an int dtype, nullable ``Int64`` included, or Python ints in an object column)
    print without decimals; ``integer_columns`` names float columns that hold counts (a count column
    with a missing value becomes float in pandas), so that 16.0 prints "16". A table whose index
    only numbers its rows (pandas' default, or what is left of it after a filter) is returned as a
    ``Styler`` with that index hidden, so the page shows no meaningless first column.
    """
    unknown = [c for c in integer_columns if c not in frame.columns]
    if unknown:
        raise KeyError(f"page_table: integer_columns {unknown} are not columns of the table ({list(frame.columns)})")

    def cell(value, as_int: bool):
        if _missing(value):
            return "-"
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return fmt(round(float(value)) if as_int else value, digits)
        return value

    table = frame.apply(lambda column: column.map(lambda v: cell(v, column.name in integer_columns)))
    return table.style.hide(axis="index") if row_numbers_only(frame.index) else table


def row_numbers_only(index: pd.Index) -> bool:
    """True when ``index`` carries no meaning: unnamed and integer (a RangeIndex, or one a filter left)."""
    return index.nlevels == 1 and index.name is None and pd.api.types.is_integer_dtype(index.dtype)


def trimmed(frame: pd.DataFrame, *, columns: Sequence[str], rename: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The named columns of a wide table, in that order, optionally renamed; unknown names raise KeyError."""
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise KeyError(f"trimmed: {unknown} are not columns of the table ({list(frame.columns)})")
    return frame.loc[:, list(columns)].rename(columns=dict(rename or {}))
