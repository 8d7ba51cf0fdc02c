"""Plotly figures of training budgets: metric against budget per remedy, and a probe over iterations.

- :func:`plot_budget_curve`: one line per remedy, the mean over seeds at each budget with the std as
  error bars and each seed as a point;
- :func:`plot_probe`: chosen columns of per-iteration records (e.g. chapter 7's EQLv2 probe) against the
  iteration, one line each.

Nothing here imports the book; every function returns a ``go.Figure`` and never shows or writes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from o365lib.spread import mean_std_n

__all__ = ["plot_budget_curve", "plot_probe"]


def plot_budget_curve(curve: Mapping[str, Mapping[float, Sequence[float]]], *, control: str | None = None,
                      title: str = "Metric against training budget", x_title: str = "budget (epochs)",
                      y_title: str = "mAP") -> go.Figure:
    """``curve``: remedy -> {budget: per-seed values}. ``control`` is drawn dashed."""
    if not curve:
        raise ValueError("plot_budget_curve: no rows given")
    fig = go.Figure()
    for name, points in curve.items():
        budgets = sorted(points)
        stats = [mean_std_n([float(v) for v in points[b]]) for b in budgets]
        fig.add_trace(go.Scatter(
            x=budgets, y=[m for m, _, _ in stats], mode="lines+markers", name=name,
            line={"dash": "dash" if name == control else "solid"},
            error_y={"type": "data", "array": [0.0 if math.isnan(s) else s for _, s, _ in stats], "thickness": 1.5},
            hovertemplate=f"{name}: %{{y:.2f}} at %{{x:g}}<extra></extra>"))
        xs = [b for b in budgets for _ in points[b]]
        ys = [float(v) for b in budgets for v in points[b]]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", showlegend=False, opacity=0.5,
                                 marker={"size": 5, "color": "black"},
                                 hovertemplate=f"{name}, one seed: %{{y:.2f}}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white", height=420,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def plot_probe(records: Sequence[Mapping], *, columns: Sequence[str], title: str = "Over the iterations",
               y_title: str = "share") -> go.Figure:
    """Each of ``columns`` of ``records`` (dicts with an ``iteration``) as a line against the iteration."""
    if not records:
        raise ValueError("plot_probe: no records given")
    missing = [c for c in columns if c not in records[0]]
    if missing:
        raise ValueError(f"plot_probe: records have no column(s) {missing}; they have {sorted(records[0])}")
    fig = go.Figure()
    x = [r["iteration"] for r in records]
    for column in columns:
        fig.add_trace(go.Scatter(x=x, y=[r[column] for r in records], mode="lines+markers", name=column))
    fig.update_layout(title=title, xaxis_title="iteration", yaxis_title=y_title, template="plotly_white",
                      height=380, legend={"orientation": "h", "y": -0.25})
    return fig
