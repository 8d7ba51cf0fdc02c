"""Plotly figures for evaluation results: per-class AP along the class ranking, AP changes,
per-range AP of several models (mean ± std over random seeds, seeds as points), samplers'
effective class distributions, loss curves.

Inputs are the plain outputs of ``o365lib.evaluation`` (``per_class_table`` DataFrames and
``evaluate`` dicts) and ``o365lib.longtail.effective_class_distribution``. Every function returns
a ``go.Figure`` and never shows or writes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from o365lib.spread import mean_std_n

__all__ = [
    "plot_ap_change",
    "plot_class_distribution_compare",
    "plot_loss_curve",
    "plot_per_class_ap",
    "plot_range_bars",
]

GREEN, RED, GREY, BLUE, ORANGE = "#2ca02c", "#d62728", "#9e9e9e", "#1f77b4", "#ff7f0e"


def _range_bounds(spec: str) -> list[tuple[int, int]]:
    bounds = []
    for part in str(spec).split(","):
        lo, _, hi = part.strip().partition("-")
        bounds.append((int(lo), int(hi or lo)))
    return bounds


def _counts_by_category(counts: Any) -> dict[int, float]:
    """Instance counts from a dict cat_id -> n or a DataFrame with category_id and instances."""
    if counts is None:
        return {}
    if isinstance(counts, pd.DataFrame):
        column = "instances" if "instances" in counts else counts.columns[-1]
        return {int(c): float(n) for c, n in zip(counts["category_id"], counts[column])}
    return {int(c): float(n) for c, n in counts.items()}


def plot_per_class_ap(per_class_df: pd.DataFrame, *, counts: Any = None,
                      ranges: Sequence[str] = ("1-150", "151-300", "301-365"),
                      title: str = "Per-class AP along the class ranking") -> go.Figure:
    """AP of each class (bars) against its rank, training instances on a second (log) axis.

    ``per_class_df``: ``o365lib.evaluation.per_class_table`` output (category_id, name, rank, ap;
    AP NaN = no ground truth). ``counts``: dict category id -> training instances or a
    ``tail_stats`` DataFrame. Each range of ``ranges`` is shaded and labelled with its mean AP.
    """
    df = per_class_df.dropna(subset=["rank"]).sort_values("rank")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=df["rank"], y=df["ap"], name="AP", marker_color=BLUE,
                         customdata=np.stack([df["name"].astype(str), df["category_id"]], axis=1),
                         hovertemplate="rank %{x}: %{customdata[0]} (id %{customdata[1]})<br>AP %{y:.1f}"
                                       "<extra></extra>"), secondary_y=False)
    by_cat = _counts_by_category(counts)
    if by_cat:
        fig.add_trace(go.Scatter(x=df["rank"], y=[by_cat.get(int(c)) for c in df["category_id"]],
                                 name="training instances", mode="lines", line={"color": ORANGE}),
                      secondary_y=True)
        # the right axis needs its own margin, or its tick labels and title are cut off at the edge
        fig.update_yaxes(type="log", title_text="training instances", secondary_y=True, automargin=True)
    max_rank = int(df["rank"].max()) if len(df) else 0
    for k, spec in enumerate(ranges):
        ranks = [r for lo, hi in _range_bounds(spec) for r in range(lo, hi + 1)]
        if not ranks or min(ranks) > max_rank:
            continue
        mean_ap = df.loc[df["rank"].isin(ranks), "ap"].mean()
        for lo, hi in _range_bounds(spec):
            fig.add_vrect(x0=lo - 0.5, x1=min(hi, max_rank) + 0.5, line_width=0, opacity=0.08,
                          fillcolor=GREY if k % 2 else BLUE)
        label = f"{spec}: mAP {mean_ap:.1f}" if np.isfinite(mean_ap) else f"{spec}: no gt"
        fig.add_annotation(x=(min(ranks) + min(max(ranks), max_rank)) / 2, y=1.04, yref="paper",
                           text=label, showarrow=False)
    fig.update_layout(title=title, xaxis_title="class rank (1 = most training instances)", bargap=0,
                      legend={"orientation": "h", "y": -0.2}, margin={"r": 80})
    fig.update_yaxes(title_text="AP (IoU 0.5:0.95)", secondary_y=False, rangemode="tozero")
    return fig


def plot_ap_change(before_df: pd.DataFrame, after_df: pd.DataFrame, *, title: str = "Per-class AP change",
                   rank_range: tuple[int, int] | None = None) -> go.Figure:
    """Bars of AP(after) - AP(before) per class, ordered by rank: improved green, worse red.

    Frames as from ``per_class_table``; classes missing or NaN in either are left out;
    ``rank_range=(lo, hi)`` keeps those ranks only. The title gets "n of m classes improved".
    """
    merged = before_df[["category_id", "name", "rank", "ap"]].merge(
        after_df[["category_id", "ap"]], on="category_id", suffixes=("_before", "_after"))
    merged = merged.dropna(subset=["ap_before", "ap_after", "rank"]).sort_values("rank")
    if rank_range is not None:
        merged = merged[(merged["rank"] >= rank_range[0]) & (merged["rank"] <= rank_range[1])]
    delta = merged["ap_after"] - merged["ap_before"]
    colours = np.where(delta > 0, GREEN, np.where(delta < 0, RED, GREY))
    improved = int((delta > 0).sum())
    fig = go.Figure(go.Bar(
        x=merged["rank"], y=delta, marker_color=colours,
        customdata=np.stack([merged["name"].astype(str), merged["ap_before"], merged["ap_after"]], axis=1),
        hovertemplate="rank %{x}: %{customdata[0]}<br>AP %{customdata[1]:.1f} -> %{customdata[2]:.1f}"
                      "<br>change %{y:+.1f}<extra></extra>"))
    fig.update_layout(title=f"{title} ({improved} of {len(merged)} classes improved)",
                      xaxis_title="class rank", yaxis_title="AP change (points)", bargap=0.1)
    return fig


def _per_seed(metrics: Mapping | Sequence[Mapping]) -> list[Mapping]:
    """One ``evaluate`` output, or a list of them (one per random seed), as a list."""
    return [metrics] if isinstance(metrics, Mapping) else list(metrics)


def _group_value(metrics: Mapping, group: str):
    value = metrics.get("mAP") if group == "overall" else metrics.get("ranges", {}).get(group, {}).get("mAP")
    return None if value is None or not np.isfinite(value) else float(value)


def plot_range_bars(metrics_by_name: Mapping[str, Mapping | Sequence[Mapping]], *,
                    talk: Mapping[str, Mapping] | None = None,
                    title: str = "AP per class-rank range") -> go.Figure:
    """Grouped bars: for each model its overall mAP and per-range mAP, with the spread over seeds.

    ``metrics_by_name``: model name -> an ``evaluate`` output, or a list of them (one per random
    seed). With several seeds a bar is the mean, its error bar the std over seeds (``ddof=1``), and
    the seeds are drawn as black points over it (one "<name> (seeds)" trace per model); a missing
    value (no such range, NaN) is left out of that seed. ``talk``: optional dict model name ->
    {"overall" or a range spec: value}, the ByteDance talk's numbers, drawn as diamond markers over
    the matching bar (a name not in ``metrics_by_name`` gets markers only).
    """
    runs = {name: _per_seed(metrics) for name, metrics in metrics_by_name.items()}
    groups: list[str] = ["overall"]
    for per_seed in runs.values():
        for metrics in per_seed:
            groups += [spec for spec in metrics.get("ranges", {}) if spec not in groups]
    fig = go.Figure()
    points = []
    for name, per_seed in runs.items():
        samples = [[v for v in (_group_value(m, g) for m in per_seed) if v is not None] for g in groups]
        spreads = [mean_std_n(s) for s in samples]
        means = [mean if n else None for mean, _, n in spreads]
        stds = [std if n > 1 else 0.0 for _, std, n in spreads]  # one seed: no error bar is drawn
        several = any(len(s) > 1 for s in samples)
        text = [None if m is None else (f"{m:.1f} ± {sd:.1f}" if len(s) > 1 else f"{m:.1f}")
                for m, sd, s in zip(means, stds, samples)]
        # value labels stand upright above their bar: side by side they would overlap in a group
        fig.add_trace(go.Bar(x=groups, y=means, name=name, offsetgroup=name, text=text, textposition="outside",
                             textangle=-90, cliponaxis=False,
                             error_y={"type": "data", "array": stds, "visible": several},
                             customdata=[len(s) for s in samples],
                             hovertemplate=f"{name}, %{{x}}: %{{y:.2f}} (%{{customdata}} seeds)<extra></extra>"))
        if several:
            points.append(go.Scatter(
                x=[g for g, s in zip(groups, samples) for _ in s], y=[v for s in samples for v in s],
                name=f"{name} (seeds)", offsetgroup=name, mode="markers", showlegend=False,
                marker={"color": "black", "size": 5, "opacity": 0.6},
                hovertemplate=f"{name}, %{{x}}, one seed: %{{y:.2f}}<extra></extra>"))
    for trace in points:
        fig.add_trace(trace)
    for name, values in (talk or {}).items():
        ys = [values.get(g) for g in groups]
        fig.add_trace(go.Scatter(x=groups, y=ys, name=f"{name} (talk)", mode="markers",
                                 offsetgroup=name if name in runs else None,
                                 marker={"symbol": "diamond", "size": 11, "color": "black"}))
    tops = [m + s for trace in fig.data if isinstance(trace, go.Bar)
            for m, s in zip(trace.y, trace.error_y.array) if m is not None]
    fig.update_layout(title=title, barmode="group", scattermode="group", xaxis_title="classes",
                      yaxis_title="mAP (IoU 0.5:0.95)")
    if tops:  # room above the highest bar for its upright label
        fig.update_yaxes(range=[0, max(tops) * 1.35 + 1e-9])
    return fig


def plot_class_distribution_compare(dists: Mapping[str, Mapping[int, float]], ranking: Mapping[int, int], *,
                                    title: str = "Images per class and epoch seen by each sampler") -> go.Figure:
    """One line per sampler: images containing each class drawn per epoch, by class rank, log y.

    ``dists``: sampler name -> ``effective_class_distribution`` output.
    """
    order = sorted(ranking, key=ranking.get)
    fig = go.Figure()
    for name, dist in dists.items():
        ys = [dist.get(c, dist.get(str(c), 0.0)) for c in order]
        fig.add_trace(go.Scatter(x=[ranking[c] for c in order], y=[y if y > 0 else None for y in ys],
                                 name=name, mode="lines"))
    fig.update_layout(title=title, xaxis_title="class rank", yaxis_title="images per epoch", yaxis_type="log")
    return fig


def _loss_records(data: Any) -> tuple[list[float], dict[str, list[float]]]:
    """x values and named series from the accepted loss formats."""
    if isinstance(data, Mapping) and "losses" in data:
        data = data["losses"]
    if isinstance(data, Mapping):  # {"loss": [...], "loss_cls": [...]}
        series = {k: [float(v) for v in vs] for k, vs in data.items() if isinstance(vs, list)}
        length = max((len(v) for v in series.values()), default=0)
        return list(range(length)), series
    data = list(data)
    if not data or not isinstance(data[0], Mapping):
        return list(range(len(data))), {"loss": [float(v) for v in data]}
    x_key = next((k for k in ("iteration", "iter", "step", "epoch") if k in data[0]), None)
    skip = {x_key, "lr", "time", "epoch", "iteration", "iter", "step", "images_per_s"}
    keys = [k for k, v in data[0].items() if k not in skip and isinstance(v, (int, float))]
    xs = [float(r[x_key]) for r in data] if x_key else list(range(len(data)))
    return xs, {k: [float(r.get(k, np.nan)) for r in data] for k in keys}


def plot_loss_curve(losses_json_or_list: Any, *, title: str = "Training loss", smooth: float = 0.0) -> go.Figure:
    """Loss curves from ``losses.json`` (path) or its content.

    Accepted: a list of numbers; a list of dicts (one per logged step, x from "iteration" / "iter"
    / "step" / "epoch" when present, one curve per other numeric key except lr/time); a dict of
    lists; any of these under a "losses" key. ``smooth`` in [0, 1) adds an exponential moving
    average (weight of the past) drawn over the raw curve.
    """
    if isinstance(losses_json_or_list, (str, os.PathLike)):
        with open(losses_json_or_list) as f:
            losses_json_or_list = json.load(f)
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    xs, series = _loss_records(losses_json_or_list)
    fig = go.Figure()
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines", opacity=0.35 if smooth else 1.0))
        if smooth:
            ema, acc = [], None
            for y in ys:
                acc = y if acc is None or not np.isfinite(acc) else smooth * acc + (1 - smooth) * y
                ema.append(acc)
            fig.add_trace(go.Scatter(x=xs, y=ema, name=f"{name} (EMA {smooth})", mode="lines"))
    fig.update_layout(title=title, xaxis_title="iteration", yaxis_title="loss")
    return fig
