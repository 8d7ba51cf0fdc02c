"""The library entry of ``python -m o365lib.evaluation`` / ``o365-eval``: evaluate one results file
(optionally against a second one) and collect everything the text, JSON and HTML reports show.

    report = evaluate_files("val.json", "dets.json", train="train.json", fixed_ap=True)
    print(report.text)
    report.write_json("metrics.json"); report.write_html("report.html")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from o365lib.evaluation.compare import paired_bootstrap
from o365lib.evaluation.evaluator import evaluate_arrays, resolve_protocol
from o365lib.evaluation.inputs import as_dataset, check_ground_truth, resolve_ranking
from o365lib.evaluation.report import default_ranges, summary_text
from o365lib.evaluation.summary import image_counts
from o365lib.io import write_json, write_text


@dataclass
class EvaluationReport:
    """What one command run computed. ``metrics`` is ``evaluate``'s dict for the first results file."""

    metrics: dict
    ranking: dict[int, int]
    names: dict[int, str]
    counts: dict[int, int]
    counts_label: str
    precision: Any  # [T, R, K, A] at the last max-dets setting, for PR curves
    category_ids: list[int]
    labels: tuple[str, str] = ("A", "B")
    files: dict = field(default_factory=dict)
    other: dict | None = None
    other_precision: Any = None
    comparison: dict | None = None
    pr_classes: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The plain-text summary the command prints."""
        return summary_text(self.metrics, ranking=self.ranking, names=self.names, label=self.labels[0],
                            other=self.other, other_label=self.labels[1], comparison=self.comparison)

    def to_json(self) -> dict:
        """The JSON document: the first file's metrics at the top level, the comparison under "compare"."""
        out = dict(self.metrics)
        out["files"] = dict(self.files)
        out["ranking"] = {str(c): r for c, r in sorted(self.ranking.items(), key=lambda item: item[1])}
        if self.other is not None:
            out["compare"] = {"metrics": self.other, "differences": self.comparison, "labels": list(self.labels)}
        return out

    def write_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` atomically."""
        write_json(path, self.to_json())

    def figures(self) -> list:
        """The report's plotly figures (:mod:`o365lib.evaluation.figures`)."""
        from o365lib.evaluation.figures import report_figures

        return report_figures(self)

    def figure(self, name: str):
        """One figure by name: "frequency", "groups", "pr_curves", "range_change", "class_change"."""
        from o365lib.evaluation import figures

        makers = {"frequency": figures.fig_ap_vs_frequency, "groups": figures.fig_groups,
                  "pr_curves": figures.fig_pr_curves, "range_change": figures.fig_range_deltas,
                  "class_change": figures.fig_class_deltas}
        if name not in makers:
            raise ValueError(f"unknown figure {name!r}; one of {sorted(makers)}")
        if name.endswith("_change") and self.comparison is None:
            raise ValueError(f"figure {name!r} needs a comparison (compare=...)")
        return makers[name](self)

    def html(self, *, title: str = "Long-tail evaluation report") -> str:
        """One self-contained offline HTML page (plotly.js inline)."""
        from o365lib.evaluation.html_page import report_html

        return report_html(self, title=title)

    def write_html(self, path: str | os.PathLike, *, title: str = "Long-tail evaluation report") -> None:
        """Write :meth:`html` atomically."""
        write_text(path, self.html(title=title))


def choose_pr_classes(metrics: Mapping, ranking: Mapping[int, int], count: int = 6) -> list[int]:
    """``count`` classes with ground truth spread evenly over the ranking (head to tail)."""
    present = sorted((ranking.get(int(c), 10 ** 9), int(c)) for c, v in metrics["per_class"].items() if v is not None)
    if len(present) <= count:
        return [c for _, c in present]
    step = (len(present) - 1) / (count - 1)
    return [present[round(i * step)][1] for i in range(count)]


def evaluate_files(
    gt: Any,
    detections: Any,
    *,
    train: Any = None,
    ranges: Sequence[str] | None = None,
    protocol: str = "auto",
    max_dets: int | None = None,
    fixed_ap: bool = False,
    fixed_ap_k: int | None = None,
    compare: Any = None,
    labels: tuple[str, str] | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
    pr_classes: Sequence[int] | None = None,
    engine: str = "numpy",
) -> EvaluationReport:
    """Evaluate ``detections`` (and ``compare``, a second detector's results) against ``gt``.

    Args:
        gt, detections, train: as :func:`o365lib.evaluation.evaluate` (paths, dicts, columns).
        ranges: rank ranges; default :func:`o365lib.evaluation.report.default_ranges`.
        protocol: "auto" (LVIS when the images carry LVIS's lists), "coco" or "lvis".
        compare: a second results input on the same ground truth; adds paired bootstrap
            differences (``bootstrap`` samples over images, ``seed``, interval ``level``).
        labels: names of the two detectors in the reports; default the file names.
        pr_classes: category ids whose PR curves the HTML shows; default six spread over the ranking.
        engine: "numpy" or "ultrafast" (COCO protocol; see :func:`o365lib.evaluation.evaluate_arrays`).
    """
    gt_source = str(gt) if isinstance(gt, (str, os.PathLike)) else "ground truth"
    gt_data = as_dataset(gt)
    check_ground_truth(gt_data, source=gt_source)
    train_data = as_dataset(train) if train is not None else None
    protocol = resolve_protocol(protocol, gt_data)
    ranking, ranking_source = resolve_ranking(None, train_data=train_data, gt_data=gt_data)
    ranges = list(ranges) if ranges is not None else default_ranges(len(ranking))
    kwargs = {"ranking": ranking, "train_gt": train_data, "ranges": ranges, "max_dets": max_dets,
              "fixed_ap": fixed_ap, "fixed_ap_k": fixed_ap_k, "protocol": protocol, "outcomes": compare is not None,
              "engine": engine if protocol == "coco" else "numpy"}
    metrics, arrays = evaluate_arrays(gt_data, detections, **kwargs)
    metrics["ranking_source"] = ranking_source
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in gt_data["categories"]}
    if train_data is not None:
        counts, counts_label = image_counts(train_data), "training images"
    else:
        counts, counts_label = image_counts(gt_data), "evaluation images (no --train given)"
    labels = labels or (_label(detections, "A"), _label(compare, "B"))
    report = EvaluationReport(
        metrics=metrics, ranking=ranking, names=names, counts=counts, counts_label=counts_label,
        precision=arrays["precision"][..., -1], category_ids=[int(c) for c in arrays["category_ids"]],
        labels=tuple(labels), files={"ground_truth": gt_source, "detections": _label(detections, "detections"),
                                     "train": _label(train, None) if train is not None else None})
    if compare is not None:
        other, other_arrays = evaluate_arrays(gt_data, compare, **kwargs)
        other["ranking_source"] = ranking_source
        report.other, report.other_precision = other, other_arrays["precision"][..., -1]
        report.files["compare"] = _label(compare, "compare")
        report.comparison = paired_bootstrap(metrics, other, arrays, other_arrays, ranking=ranking, ranges=ranges,
                                             names=names, samples=bootstrap, seed=seed, level=level)
    report.pr_classes = list(pr_classes) if pr_classes else choose_pr_classes(metrics, ranking)
    return report


def _label(source: Any, default: str | None) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(str(source))
    return default
