"""Plotly figures for the data chapter: the class-instance distribution and example images.

Inputs are :func:`o365lib.data.tail_stats` tables and :class:`o365lib.data.CocoData`. Images are
embedded as base64 PNG data URIs, so the figures render offline. Every function returns a
``go.Figure`` and never shows or writes it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

__all__ = ["plot_image_examples", "plot_instance_distribution", "plot_tiny_distribution"]

_RANGE_COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b")
_HIGHLIGHT, _OTHER = "#ffd400", "rgba(255,255,255,0.55)"
_DETECTION = "#00e5ff"


def _bounds(spec: tuple[int, int] | str) -> tuple[int, int]:
    """(lo, hi) from a ``(lo, hi)`` pair or a ``"lo-hi"`` string (the outer bounds of a multi-part spec)."""
    if isinstance(spec, str):
        numbers = [int(n) for part in spec.split(",") for n in part.strip().split("-") if n.strip()]
        if not numbers:
            raise ValueError(f"invalid rank range {spec!r}")
        return min(numbers), max(numbers)
    lo, hi = spec
    return int(lo), int(hi)


def _require(stats_df: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in stats_df.columns]
    if missing:
        raise ValueError(f"stats_df lacks columns {missing}: pass an o365lib.data.tail_stats table")


def plot_instance_distribution(
    stats_df: pd.DataFrame,
    *,
    ranges: Sequence[tuple[int, int] | str] = ((1, 150), (151, 300), (301, 365)),
    log_y: bool = True,
    title: str = "Training instances per class, sorted by rank",
) -> go.Figure:
    """Bars of training instances per class in rank order (the talk's long-tail plot).

    Each rank range is shaded and annotated with its number of classes and its share of all
    instances. ``ranges`` takes ``(lo, hi)`` pairs or ``"lo-hi"`` strings; ranges beyond the
    number of classes are clipped or dropped.
    """
    _require(stats_df, ("rank", "instances", "name", "category_id"))
    df = stats_df.sort_values("rank")
    total = max(int(df["instances"].sum()), 1)
    fig = go.Figure(go.Bar(
        x=df["rank"], y=df["instances"], marker_color="#4c72b0", marker_line_width=0,
        customdata=np.stack([df["name"].astype(str), df["category_id"]], axis=-1),
        hovertemplate="rank %{x}: %{customdata[0]} (id %{customdata[1]})<br>%{y} instances<extra></extra>",
        name="instances",
    ))
    num = int(df["rank"].max()) if len(df) else 0
    for i, spec in enumerate(ranges):
        lo, hi = _bounds(spec)
        hi = min(hi, num)
        if lo > hi:
            continue
        part = df[(df["rank"] >= lo) & (df["rank"] <= hi)]
        share = 100.0 * part["instances"].sum() / total
        fig.add_vrect(x0=lo - 0.5, x1=hi + 0.5, fillcolor=_RANGE_COLOURS[i % len(_RANGE_COLOURS)], opacity=0.12,
                      line_width=0, layer="below")
        fig.add_annotation(x=(lo + hi) / 2, y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                           text=f"ranks {lo}-{hi}<br>{len(part)} classes, {share:.1f}% of instances")
    fig.update_layout(title=title, xaxis_title="class rank (1 = most training instances)",
                      yaxis_title="training instances" + (" (log scale)" if log_y else ""),
                      yaxis_type="log" if log_y else "linear", bargap=0, showlegend=False,
                      margin={"t": 100}, template="plotly_white")
    return fig


def plot_tiny_distribution(
    stats_df: pd.DataFrame,
    *,
    log_y: bool = False,
    title: str = "Tiny track: training instances per class",
) -> go.Figure:
    """Bars of the tiny track's training instances per class, labelled by class name, rank order."""
    _require(stats_df, ("rank", "instances", "name", "category_id"))
    df = stats_df.sort_values("rank")
    colours = ["#d62728" if s == "small_clustered" else "#2ca02c" if s == "large_plain" else "#4c72b0"
               for s in df.get("style", pd.Series(["normal"] * len(df)))]
    fig = go.Figure(go.Bar(
        x=df["name"].astype(str), y=df["instances"], marker_color=colours,
        customdata=np.stack([df["rank"], df["category_id"]], axis=-1),
        hovertemplate="%{x} (id %{customdata[1]}, rank %{customdata[0]})<br>%{y} instances<extra></extra>",
    ))
    if "style" in df:
        fig.add_annotation(x=1.0, y=1.0, xref="paper", yref="paper", xanchor="right", yanchor="bottom",
                           showarrow=False, text="red: small and clustered, green: large and plain")
    fig.update_layout(title=title, xaxis_title="class (sorted by training instances)",
                      yaxis_title="training instances", yaxis_type="log" if log_y else "linear",
                      xaxis_tickangle=-60, showlegend=False, template="plotly_white")
    return fig


def _png_data_uri(path) -> tuple[str, int, int]:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), rgb.width, rgb.height


def plot_image_examples(
    coco_data,
    image_ids: Sequence[int],
    *,
    highlight_category_ids: Iterable[int] | None = None,
    cols: int = 4,
    title: str = "Example training images",
    panel_px: int = 220,
    detections: Sequence[dict] | None = None,
    score_threshold: float = 0.3,
) -> go.Figure:
    """A grid of images with their ground-truth boxes drawn and labelled.

    ``coco_data`` is a :class:`o365lib.data.CocoData` (images are read from its
    ``image_root``). Boxes of ``highlight_category_ids`` are drawn thick and yellow with their
    class name; the others thin and white. Each image becomes a ``go.Image`` trace in its own
    subplot, embedded as a base64 PNG so the figure works offline. ``detections`` (COCO results)
    adds a model's boxes of the highlighted classes scoring at least ``score_threshold``, dashed
    in cyan with their score on hover.
    """
    image_ids = [int(i) for i in image_ids]
    if not image_ids:
        raise ValueError("plot_image_examples: no image ids given")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    highlight = {int(c) for c in (highlight_category_ids or [])}
    cols = min(cols, len(image_ids))
    rows = (len(image_ids) + cols - 1) // cols
    subtitles = []
    for iid in image_ids:
        names = sorted({coco_data.categories[a["category_id"]]["name"] for a in coco_data.anns_by_image[iid]
                        if a["category_id"] in highlight})
        label = names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "") if names else f"image {iid}"
        subtitles.append(label)
    dets_by_image: dict[int, list[dict]] = {}
    for det in detections or ():
        if det["image_id"] in image_ids and det["category_id"] in highlight and det["score"] >= score_threshold:
            dets_by_image.setdefault(int(det["image_id"]), []).append(det)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=subtitles, horizontal_spacing=0.02,
                        vertical_spacing=0.08)
    for k, iid in enumerate(image_ids):
        row, col = k // cols + 1, k % cols + 1
        uri, width, height = _png_data_uri(coco_data.image_path(iid, must_exist=True))
        fig.add_trace(go.Image(source=uri, hoverinfo="skip"), row=row, col=col)
        axis = "" if k == 0 else str(k + 1)
        anns = coco_data.anns_by_image[iid]
        for ann in anns:
            x, y, w, h = ann["bbox"]
            hot = ann["category_id"] in highlight
            fig.add_shape(type="rect", x0=x, y0=y, x1=x + w, y1=y + h, xref=f"x{axis}", yref=f"y{axis}",
                          line={"color": _HIGHLIGHT if hot else _OTHER, "width": 2 if hot else 1})
        if anns:  # labels: every box on hover; each highlighted class once as text above a box
            names = [coco_data.categories[a["category_id"]]["name"] for a in anns]
            first = {}
            for j, a in enumerate(anns):
                first.setdefault(a["category_id"], j)
            fig.add_trace(go.Scatter(
                x=[a["bbox"][0] + a["bbox"][2] / 2 for a in anns], y=[a["bbox"][1] for a in anns],
                mode="markers+text", marker={"size": 6, "opacity": 0},
                text=[n if a["category_id"] in highlight and first[a["category_id"]] == j else ""
                      for j, (n, a) in enumerate(zip(names, anns))],
                textposition="top center", textfont={"color": _HIGHLIGHT, "size": 9},
                hovertext=[f"{n} (id {a['category_id']})" for n, a in zip(names, anns)], hoverinfo="text",
            ), row=row, col=col)
        for det in dets_by_image.get(iid, []):
            x, y, w, h = det["bbox"]
            fig.add_shape(type="rect", x0=x, y0=y, x1=x + w, y1=y + h, xref=f"x{axis}", yref=f"y{axis}",
                          line={"color": _DETECTION, "width": 2, "dash": "dot"})
        fig.update_xaxes(visible=False, range=[0, width], row=row, col=col)
        fig.update_yaxes(visible=False, range=[height, 0], scaleanchor=f"x{axis}", row=row, col=col)
    fig.update_layout(title=title, height=rows * panel_px + 90, width=cols * panel_px + 40,
                      margin={"l": 10, "r": 10, "t": 80, "b": 10}, showlegend=False, template="plotly_white")
    fig.update_annotations(font_size=10)
    return fig
