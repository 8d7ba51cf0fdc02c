"""Plotly figures that show the spread over random seeds: effects with intervals, and ranked remedies.

- :func:`plot_effects`: a forest plot of paired effects (the mean per-seed difference with its
  confidence interval, the difference of each random seed as a point, and the ByteDance talk's effect as a
  diamond), coloured by verdict.
- :func:`plot_ranked_remedies`: remedies ranked by their mean over seeds as horizontal bars, with
  error bars (std over seeds, or the interval of an effect) and the seeds as points.

Effects are ``o365lib.book.present.comparisons.Effect`` objects or their ``as_dict()`` / ``effects_records``
mappings; nothing here imports the book. Every function returns a ``go.Figure`` and never shows or
writes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from o365lib.spread import mean_std_n

__all__ = ["plot_effects", "plot_ranked_remedies"]

#: Colour of each verdict (``o365lib.book.present.comparisons``); others are grey.
VERDICT_COLOURS = {"reproduced": "#2ca02c", "reversed": "#d62728", "contradicted": "#d62728",
                   "higher": "#1f77b4", "lower": "#ff7f0e"}
GREY, TALK = "#7f7f7f", "black"


#: a horizontal legend between the title and the plot: below the plot it met the x-axis title on short figures
LEGEND_ABOVE = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0}


def _field(effect: Any, name: str, default=None):
    """A field of an Effect object or of its mapping form."""
    if isinstance(effect, Mapping):
        return effect.get(name, default)
    return getattr(effect, name, default)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _is_effect(item: Any) -> bool:
    return _field(item, "diff_mean") is not None


def _labelled(items) -> list[tuple[str, Any]]:
    """``(label, item)`` pairs from a mapping, a sequence of pairs, or records carrying a "label"."""
    if isinstance(items, Mapping):
        return [(str(k), v) for k, v in items.items()]
    out = []
    for item in items:
        if isinstance(item, Mapping) and "label" in item:
            out.append((str(item["label"]), item))
        else:
            label, value = item
            out.append((str(label), value))
    return out


def _errors(means, lows, highs) -> tuple[list[float], list[float]]:
    """Asymmetric error-bar lengths (0 where the interval is undefined)."""
    plus = [h - m if np.isfinite(h) and np.isfinite(m) else 0.0 for m, h in zip(means, highs)]
    minus = [m - lo if np.isfinite(lo) and np.isfinite(m) else 0.0 for m, lo in zip(means, lows)]
    return plus, minus


def plot_effects(effects, *, title: str = "Paired effects over random seeds",
                 unit: str = "AP points") -> go.Figure:
    """Forest plot: one row per effect, the mean paired difference with its confidence interval.

    ``effects``: ``(label, Effect)`` pairs, a mapping label -> Effect, or ``effects_records``
    output. Per row: the mean difference as a marker with the interval as an error bar (one trace
    per verdict, coloured by it, named by it in the legend), the difference of each random seed as a hollow
    point ("per seed"), and the talk's effect as a black diamond ("the talk", left out when no row
    has one). A dashed line marks no effect. The first effect is drawn at the top.
    """
    rows = _labelled(effects)
    if not rows:
        raise ValueError("plot_effects: no effects given")
    labels = [label for label, _ in rows]
    confidence = _number(_field(rows[0][1], "confidence", 0.95))
    fig = go.Figure()
    verdicts = list(dict.fromkeys(str(_field(e, "verdict", "-")) for _, e in rows))
    for verdict in verdicts:
        chosen = [(label, e) for label, e in rows if str(_field(e, "verdict", "-")) == verdict]
        means = [_number(_field(e, "diff_mean")) for _, e in chosen]
        lows = [_number(_field(e, "ci_low")) for _, e in chosen]
        highs = [_number(_field(e, "ci_high")) for _, e in chosen]
        plus, minus = _errors(means, lows, highs)
        hover = [f"{label}<br>mean difference {m:+.2f} {unit}<br>"
                 + (f"{100 * confidence:g}% interval [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) else "no interval")
                 + f"<br>{_field(e, 'n', '?')} seeds: {verdict}"
                 for (label, e), m, lo, hi in zip(chosen, means, lows, highs)]
        fig.add_trace(go.Scatter(
            x=means, y=[label for label, _ in chosen], mode="markers", name=verdict,
            marker={"color": VERDICT_COLOURS.get(verdict, GREY), "size": 11, "symbol": "square"},
            error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 2,
                     "width": 6}, hovertext=hover, hoverinfo="text"))
    seed_x, seed_y = [], []
    for label, e in rows:
        diffs = [_number(d) for d in (_field(e, "diffs") or ())]
        seed_x += diffs
        seed_y += [label] * len(diffs)
    if seed_x:
        fig.add_trace(go.Scatter(x=seed_x, y=seed_y, mode="markers", name="per seed",
                                 marker={"color": "rgba(0,0,0,0)", "size": 7, "line": {"color": GREY, "width": 1.5}},
                                 hovertemplate="%{y}<br>one seed: %{x:+.2f}<extra></extra>"))
    talk = [(label, _field(e, "talk_effect")) for label, e in rows if _field(e, "talk_effect") is not None]
    if talk:
        fig.add_trace(go.Scatter(x=[t for _, t in talk], y=[label for label, _ in talk], mode="markers",
                                 name="the talk", marker={"symbol": "diamond", "size": 12, "color": TALK},
                                 hovertemplate="%{y}<br>the talk: %{x:+.1f}<extra></extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color=GREY)
    fig.update_yaxes(categoryorder="array", categoryarray=labels[::-1], automargin=True)
    fig.update_layout(title=title, xaxis_title=f"difference, treated minus control ({unit})",
                      template="plotly_white", height=max(260, 60 * len(labels) + 170),
                      legend=LEGEND_ABOVE, margin={"t": 110})
    return fig


def plot_ranked_remedies(rows, *, control: str | None = None, title: str = "Remedies ranked",
                         metric: str = "mAP", higher_is_better: bool = True) -> go.Figure:
    """Horizontal bars of remedies ranked by their mean over seeds, best at the top.

    ``rows``: a mapping (or ``(name, item)`` pairs) where an item is either the per-seed values of a
    metric, as a list, a summary mapping with "values", or a mapping of columns (column name -> per-seed
    values) from which the ``metric`` column is taken (bar = mean, error bar = std over seeds with
    ``ddof=1``; missing values are left out), or an effect against a control (``Effect`` or its mapping: bar = mean paired
    difference, error bar = its confidence interval, points = per-seed differences). The seeds are drawn as points over each bar. ``control`` names
    the row drawn grey, with a dashed line at its mean. ``higher_is_better=False`` ranks ascending.
    """
    items = _labelled(rows)
    if not items:
        raise ValueError("plot_ranked_remedies: no rows given")
    if control is not None and control not in dict(items):
        raise ValueError(f"plot_ranked_remedies: control {control!r} is not one of {[n for n, _ in items]}")
    stats = []
    for name, item in items:
        if _is_effect(item):
            mean = _number(_field(item, "diff_mean"))
            low, high = _number(_field(item, "ci_low")), _number(_field(item, "ci_high"))
            points = [_number(d) for d in (_field(item, "diffs") or ())]
            spread = f"interval [{low:+.2f}, {high:+.2f}]" if np.isfinite(low) else "no interval"
        else:
            if isinstance(item, Mapping):
                if "values" not in item and metric not in item:
                    raise ValueError(f"plot_ranked_remedies: row {name!r} has neither 'values' nor a {metric!r} column")
                values = item["values"] if "values" in item else item[metric]
            else:
                values = item
            points = [float(v) for v in values if v is not None and np.isfinite(v)]
            if not points:
                raise ValueError(f"plot_ranked_remedies: row {name!r} has no values")
            mean, std, _ = mean_std_n(points)
            low, high = mean - std, mean + std
            spread = f"std {std:.2f}" if np.isfinite(std) else "one seed"
        stats.append({"name": name, "mean": mean, "low": low, "high": high, "points": points, "spread": spread})
    stats.sort(key=lambda s: s["mean"], reverse=not higher_is_better)  # plotly draws the first bar at the bottom
    names = [s["name"] for s in stats]
    plus, minus = _errors([s["mean"] for s in stats], [s["low"] for s in stats], [s["high"] for s in stats])
    fig = go.Figure(go.Bar(
        x=[s["mean"] for s in stats], y=names, orientation="h", name="mean over seeds",
        marker_color=[GREY if s["name"] == control else "#1f77b4" for s in stats],
        error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 2},
        customdata=[[s["spread"], len(s["points"])] for s in stats],
        hovertemplate="%{y}: %{x:.2f} (%{customdata[0]}, %{customdata[1]} seeds)<extra></extra>"))
    xs = [p for s in stats for p in s["points"]]
    ys = [s["name"] for s in stats for _ in s["points"]]
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="per seed",
                                 marker={"color": "black", "size": 6, "opacity": 0.7},
                                 hovertemplate="%{y}, one seed: %{x:.2f}<extra></extra>"))
    if control is not None:
        fig.add_vline(x=next(s["mean"] for s in stats if s["name"] == control), line_dash="dash",
                      line_color=GREY, annotation_text=control)
    fig.update_yaxes(categoryorder="array", categoryarray=names, automargin=True)
    fig.update_layout(title=title, xaxis_title=metric, template="plotly_white",
                      height=max(260, 45 * len(names) + 170), legend=LEGEND_ABOVE,
                      margin={"t": 110})
    return fig
