"""Plotly figures of an :class:`o365lib.evaluation.command.EvaluationReport`.

Each function returns a ``go.Figure`` and never shows or writes it; :func:`report_figures` gives
the report's figures in page order as ``(heading, figure)`` pairs.
"""

from __future__ import annotations

import plotly.graph_objects as go

from o365lib.evaluation.engine import RECALL_THRESHOLDS

BLUE, ORANGE, GREEN, RED, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9e9e9e"
RANGE_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _range_of(report) -> dict[int, str]:
    from o365lib.data import parse_class_range, ranks_to_category_ids

    out = {}
    for spec in report.metrics["ranges"]:
        for cat in ranks_to_category_ids(parse_class_range(spec, len(report.ranking)), report.ranking):
            out.setdefault(cat, spec)
    return out


def fig_ap_vs_frequency(report) -> go.Figure:
    """Per-class AP against the class's image count (log x), coloured by rank range."""
    range_of = _range_of(report)
    fig = go.Figure()
    specs = list(report.metrics["ranges"]) + ["other"]
    for i, spec in enumerate(specs):
        cats = [int(c) for c, v in report.metrics["per_class"].items() if v is not None
                and range_of.get(int(c), "other") == spec and report.counts.get(int(c), 0) > 0]
        if not cats:
            continue
        fig.add_trace(go.Scatter(
            x=[report.counts[c] for c in cats], y=[report.metrics["per_class"][str(c)] for c in cats],
            mode="markers", name=f"ranks {spec}" if spec != "other" else "unranked",
            marker={"color": RANGE_COLOURS[i % len(RANGE_COLOURS)], "size": 7, "opacity": 0.75},
            text=[f"{report.names.get(c, c)} (rank {report.ranking.get(c)})" for c in cats],
            hovertemplate="%{text}<br>%{x} images<br>AP %{y:.1f}<extra></extra>"))
    fig.update_layout(title=f"Per-class AP against {report.counts_label}", height=420,
                      xaxis={"type": "log", "title": report.counts_label},
                      yaxis={"title": "AP (IoU 0.5:0.95)", "range": [-3, 103]}, legend={"orientation": "h", "y": -0.2})
    return fig


def _groups(metrics) -> list[tuple[str, float | None, float | None]]:
    """(label, AP, fixed AP) per rank range, then r/c/f when known."""
    fixed = metrics.get("fixed_ap")
    rows = [("all", metrics["AP"], fixed["mAP"] if fixed else None)]
    rows += [(f"ranks {s}", r["mAP"], fixed["ranges"][s]["mAP"] if fixed else None) for s, r in metrics["ranges"].items()]
    for key, name in (("APr", "rare"), ("APc", "common"), ("APf", "frequent")):
        if key in metrics:
            rows.append((name, metrics.get(key), fixed.get(key) if fixed else None))
    return rows


def fig_groups(report) -> go.Figure:
    """AP by rank range and frequency bucket; fixed AP next to it, and the second detector's AP."""
    rows = _groups(report.metrics)
    labels = [r[0] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[r[1] for r in rows], name=f"AP ({report.labels[0]})", marker_color=BLUE,
                         texttemplate="%{y:.1f}", textposition="outside", cliponaxis=False))
    if report.metrics.get("fixed_ap"):
        fig.add_trace(go.Bar(x=labels, y=[r[2] for r in rows], name=f"fixed AP ({report.labels[0]})",
                             marker_color="#aec7e8", texttemplate="%{y:.1f}", textposition="outside", cliponaxis=False))
    if report.other is not None:
        other = _groups(report.other)
        fig.add_trace(go.Bar(x=labels, y=[r[1] for r in other], name=f"AP ({report.labels[1]})", marker_color=ORANGE,
                             texttemplate="%{y:.1f}", textposition="outside", cliponaxis=False))
    fig.update_layout(title="AP by class-rank range and frequency bucket", barmode="group", height=400,
                      yaxis={"title": "AP"}, legend={"orientation": "h", "y": -0.2})
    return fig


def fig_pr_curves(report) -> go.Figure:
    """Precision-recall curves at IoU 0.5 (solid) and 0.75 (dotted) of the chosen classes."""
    fig = go.Figure()
    column = {c: k for k, c in enumerate(report.category_ids)}
    for i, cat in enumerate(report.pr_classes):
        k = column.get(int(cat))
        if k is None or report.precision[0, 0, k, 0] < 0:
            continue
        colour = RANGE_COLOURS[i % len(RANGE_COLOURS)]
        name = f"{report.names.get(cat, cat)} (rank {report.ranking.get(cat)}, AP {report.metrics['per_class'][str(cat)]:.1f})"
        for t, dash, suffix in ((0, "solid", "IoU 0.5"), (5, "dot", "IoU 0.75")):
            fig.add_trace(go.Scatter(x=RECALL_THRESHOLDS, y=report.precision[t, :, k, 0], mode="lines",
                                     line={"color": colour, "dash": dash}, name=f"{name}, {suffix}",
                                     legendgroup=str(cat), showlegend=t == 0))
    fig.update_layout(title="Precision-recall curves (solid IoU 0.5, dotted IoU 0.75)", height=440,
                      xaxis={"title": "recall", "range": [0, 1]}, yaxis={"title": "precision", "range": [0, 1.02]},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _error_bars(entries) -> tuple[list, dict]:
    deltas = [e["delta"] for e in entries]
    lo = [e["delta"] - e["interval"][0] if e["interval"][0] is not None else 0 for e in entries]
    hi = [e["interval"][1] - e["delta"] if e["interval"][1] is not None else 0 for e in entries]
    return deltas, {"type": "data", "array": hi, "arrayminus": lo, "visible": True}


def fig_class_deltas(report) -> go.Figure:
    """Per-class AP difference (B - A) along the ranking, with paired bootstrap intervals."""
    cmp = report.comparison
    items = sorted(cmp["per_class"].items(), key=lambda item: (item[1]["rank"] or 10 ** 9))
    entries = [v for _, v in items]
    deltas, errors = _error_bars(entries)
    colours = [GREEN if e["interval"][0] is not None and e["interval"][0] > 0 else
               RED if e["interval"][1] is not None and e["interval"][1] < 0 else GREY for e in entries]
    fig = go.Figure(go.Scatter(
        x=[e["rank"] for e in entries], y=deltas, mode="markers", error_y=errors,
        marker={"color": colours, "size": 6}, text=[e["name"] for e in entries],
        hovertemplate="%{text} (rank %{x})<br>B - A %{y:+.2f}<extra></extra>", showlegend=False))
    fig.add_hline(y=0, line={"color": "black", "width": 1})
    level = round(100 * cmp["level"])
    fig.update_layout(title=(f"Per-class AP change, {report.labels[1]} - {report.labels[0]} ({level}% paired bootstrap "
                             "interval; green/red: interval excludes 0)"), height=420,
                      xaxis={"title": "class rank (1 = most training instances)"}, yaxis={"title": "AP change"})
    return fig


def fig_range_deltas(report) -> go.Figure:
    """AP difference per rank range and overall, with paired bootstrap intervals."""
    cmp = report.comparison
    entries = [("all", cmp["overall"])] + [(f"ranks {s}", v) for s, v in cmp["ranges"].items()]
    entries = [(name, e) for name, e in entries if e["delta"] is not None]
    deltas, errors = _error_bars([e for _, e in entries])
    fig = go.Figure(go.Bar(x=[n for n, _ in entries], y=deltas, error_y=errors, texttemplate="%{y:+.2f}",
                           marker_color=[GREEN if d > 0 else RED for d in deltas]))
    fig.update_layout(title=f"AP change per rank range, {report.labels[1]} - {report.labels[0]}", height=380,
                      yaxis={"title": "AP change"})
    return fig


def report_figures(report) -> list[tuple[str, go.Figure]]:
    """The figures of the report in page order, each with its section heading."""
    out = [("Per-class AP against training frequency", fig_ap_vs_frequency(report)),
           ("AP by rank range and frequency bucket", fig_groups(report)),
           ("Precision-recall curves", fig_pr_curves(report))]
    if report.comparison is not None:
        out += [("Per-range change with intervals", fig_range_deltas(report)),
                ("Per-class change with intervals", fig_class_deltas(report))]
    return out

