"""Ours-versus-seed tables and plain verdicts for the chapters.

A chapter never types a number: it passes measured values and the seed's (``o365lib.book.seed``)
to these helpers, which lay them side by side and say whether an effect reproduced. An effect
*reproduced* when ours points the same way as the seed's and is at least ``min_effect`` large;
it is *reversed* when it points the other way by more than ``min_effect``; otherwise *not
reproduced (within noise)*.
"""

from __future__ import annotations

import math

import pandas as pd


def fmt(value, digits: int = 1) -> str:
    """A number for prose: fixed digits, '-' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def effect_verdict(ours: float | None, seed: float, *, min_effect: float = 0.3) -> str:
    """Whether an effect (a difference in AP points) reproduced the seed's direction."""
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "not measured"
    same_sign = (ours > 0) == (seed > 0) if seed != 0 else abs(ours) < min_effect
    if seed == 0:
        return "reproduced (no change)" if same_sign else "not reproduced"
    if same_sign and abs(ours) >= min_effect:
        return "reproduced"
    if not same_sign and abs(ours) >= min_effect:
        return "reversed"
    return "not reproduced (within noise)"


def comparison_table(rows, *, columns=("ours", "seed")) -> pd.DataFrame:
    """DataFrame from ``(label, ours, seed)`` rows, numbers rounded to 0.1 for display."""
    frame = pd.DataFrame([(label, ours, seed) for label, ours, seed in rows],
                         columns=["", *columns]).set_index("")
    return frame.round(1)


def delta_table(rows, *, seed_label: str = "seed") -> pd.DataFrame:
    """Ablation table from ``(label, ours_map, ours_delta, seed_delta)`` rows, with verdicts."""
    records = []
    for label, ours_map, ours_delta, seed_delta in rows:
        records.append({
            "": label,
            "ours mAP": ours_map,
            "ours delta": ours_delta,
            f"{seed_label} delta": seed_delta,
            "verdict": "-" if seed_delta is None else effect_verdict(ours_delta, seed_delta),
        })
    return pd.DataFrame(records).set_index("").round(2)


def shown(frame: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A table for the page: numbers as fixed-digit text and '-' where a value is missing (NaN)."""
    return frame.apply(lambda column: column.map(
        lambda v: fmt(v, digits) if isinstance(v, (int, float)) and not isinstance(v, bool) else v))
