"""One self-contained, offline HTML page for an evaluation report.

plotly.js is embedded once, inline, from the installed plotly package (no CDN, no network): the
page works opened from disk, mailed, or served by any static web server.
"""

from __future__ import annotations

import html

from o365lib.evaluation.report import zero_ap_classes

STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 12px; line-height: 1.35; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f0f0f0; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 13px; }
"""


def _esc(value) -> str:
    return html.escape(str(value))


def _table(header, rows) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i else ""}">{_esc(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _zero_ap_section(report) -> str:
    zero = zero_ap_classes(report.metrics, report.ranking)
    evaluated = sum(v is not None for v in report.metrics["per_class"].values())
    rows = [[report.names.get(c, c), report.ranking.get(c, "-"), report.counts.get(c, 0)] for c in zero]
    intro = f"<p>{len(zero)} of {evaluated} classes with ground truth have AP exactly 0 ({_esc(report.labels[0])}).</p>"
    return intro + (_table(["class", "rank", report.counts_label], rows) if rows else "")


def _changed_section(report) -> str:
    cmp = report.comparison
    level = round(100 * cmp["level"])
    rows = []
    for m in cmp["most_changed"]:
        lo, hi = m["interval"]
        interval = "-" if lo is None else f"[{lo:+.2f}, {hi:+.2f}]"
        rows.append([m["name"], m["rank"], f"{m['a']:.2f}", f"{m['b']:.2f}", f"{m['delta']:+.2f}", interval])
    intro = (f"<p>{cmp['improved']} classes improved ({cmp['significant_improved']} with the {level}% interval above 0), "
             f"{cmp['worse']} got worse ({cmp['significant_worse']} below 0). Intervals: paired bootstrap over images, "
             f"{cmp['samples']} samples, seed {cmp['seed']}; both detectors are scored on the same resampled images.</p>")
    return intro + _table(["class", "rank", f"AP {report.labels[0]}", f"AP {report.labels[1]}", "change",
                           f"{level}% interval"], rows)


def report_html(report, *, title: str = "Long-tail evaluation report") -> str:
    """The whole page as one string."""
    from plotly.offline import get_plotlyjs

    parts = [f"<h1>{_esc(title)}</h1>",
             f'<p class="note">ground truth <code>{_esc(report.files.get("ground_truth"))}</code>, detections '
             f'<code>{_esc(report.files.get("detections"))}</code>'
             + (f', compared with <code>{_esc(report.files.get("compare"))}</code>' if report.other is not None else "")
             + f"; protocol {_esc(report.metrics['protocol'])}; AP on the 0-100 scale.</p>",
             "<h2>Summary</h2>", f"<pre>{_esc(report.text)}</pre>"]
    for i, (heading, fig) in enumerate(report.figures()):
        parts += [f"<h2>{_esc(heading)}</h2>",
                  fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}",
                              config={"displaylogo": False, "responsive": True})]
        if i == 1:
            parts += ["<h2>Zero-AP classes</h2>", _zero_ap_section(report)]
    if report.comparison is not None:
        parts += ["<h2>Classes that changed most</h2>", _changed_section(report)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{STYLE}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
