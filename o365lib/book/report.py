"""Text and tables for the book, built from measured values so that no chapter types a number.

- :func:`markdown` fills a sentence template with values from the run and returns an
  ``IPython.display.Markdown`` the chapter displays.
- :func:`markdown_table` turns a DataFrame into a Markdown table (for prose-style tables).
- :func:`results_summary` collects the ``summary`` rows every chapter wrote to
  ``results/<profile>/<chapter>/metrics.json`` into the ours-versus-seed table of the intro.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import Markdown

from o365lib.book.seed import SEED

#: Value shown for a summary row no chapter has measured yet.
NOT_RUN = "not run"

#: Rows of the results summary, in book order, with the seed's value (Objects365 v1 val unless
#: the name says otherwise). Chapters write these names as keys of the ``summary`` dict of
#: their ``metrics.json``; other keys are shown after these, with no seed value.
SUMMARY_ROWS: dict[str, Any] = {
    "baseline mAP": SEED["baseline_map"],
    "tail 301-365 AP": SEED["expert_tail_before"],
    "tail 301-365 zero-AP classes": SEED["tail_zero_ap"],
    "tail 301-365 AP, expert": SEED["expert_tail_after"],
    "301-365 classes improved by expert": SEED["expert_classes_improved"],
    "mAP, experts merged": SEED["experts_overall"][-1],
    "tail 301-365 AP, resampling": SEED["resample_tail"][-1],
    "mAP, resampling": SEED["resample_overall"][-1],
    "mAP gain, pretrained backbone": SEED["trick_pretrained"],
    "mAP gain, multi-scale training": SEED["trick_multiscale_train"],
    "mAP gain, multi-scale test + soft-NMS": SEED["trick_multiscale_test_softnms"],
    "mAP gain, ensemble": SEED["trick_ensemble"],
    "mAP, all tricks": SEED["final_full_val"],
    "tiny track mAP": SEED["final_tiny_val"],
    "final: Validation set (full track)": SEED["final_full_val"],
    "final: Test set (full track)": SEED["final_full_test"],
    "final: Validation set (tiny track)": SEED["final_tiny_val"],
    "final: Test set (tiny track)": SEED["final_tiny_test"],
}


def format_value(value: Any, *, digits: int = 1) -> str:
    """A number for prose and tables: ints with thousands separators, floats with ``digits``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):,.{digits}f}"
    return str(value)


def markdown(template: str, *, digits: int = 1, **values: Any) -> Markdown:
    """``Markdown(template.format(**values))``; numbers without a format spec get :func:`format_value`.

    Example: ``markdown("The rarest class has {n} instances.", n=stats.instances.min())``.
    A placeholder with an explicit spec (``{ratio:.0f}``) is formatted by Python as written.
    """
    shown = {k: (_Number(v, digits) if isinstance(v, numbers.Number) else v) for k, v in values.items()}
    try:
        return Markdown(template.format(**shown))
    except KeyError as exc:
        raise KeyError(f"markdown template needs a value for {exc.args[0]!r}") from None


class _Number:
    """A number that prints through :func:`format_value` unless given an explicit format spec."""

    def __init__(self, value, digits):
        self.value, self.digits = value, digits

    def __format__(self, spec):
        return format(self.value, spec) if spec else format_value(self.value, digits=self.digits)


def markdown_table(frame: pd.DataFrame, *, digits: int = 1, index: bool = True,
                   caption: str | None = None) -> Markdown:
    """A DataFrame as a Markdown pipe table (numbers through :func:`format_value`)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"markdown_table needs a pandas DataFrame, got {type(frame).__name__}")
    columns = ([str(frame.index.name or "")] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] * len(columns)) + "|"]
    for label, *values in frame.itertuples(index=True, name=None):  # keeps each column's dtype
        cells = ([format_value(label, digits=digits)] if index else [])
        cells += [format_value(v, digits=digits) for v in values]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    text = "\n".join(lines)
    if caption:
        text = f"{caption}\n\n{text}"
    return Markdown(text)


def read_metrics(profile_dir: str | Path) -> list[dict]:
    """All chapter ``metrics.json`` files under ``profile_dir`` that hold a ``summary`` mapping.

    Each item: ``{"chapter": str, "path": Path, "summary": dict}``; sorted by path so chapter
    order decides which chapter is listed first for a row.
    """
    found = []
    for path in sorted(Path(profile_dir).glob("*/**/metrics.json")):
        try:
            record = json.loads(path.read_text(encoding="utf8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable metrics file: {exc}") from exc
        summary = record.get("summary") if isinstance(record, Mapping) else None
        if summary is None:
            continue
        if not isinstance(summary, Mapping):
            raise ValueError(f"{path}: field 'summary' must be a mapping of row name -> value")  # noqa: TRY004
        chapter = record.get("chapter") or path.relative_to(profile_dir).parts[0]
        found.append({"chapter": str(chapter), "path": path, "summary": dict(summary)})
    return found


def results_summary(profile_dir: str | Path, *, digits: int = 1) -> pd.DataFrame:
    """The book's results, ours next to the seed's: one row per :data:`SUMMARY_ROWS` entry.

    Columns ``ours`` (rounded to ``digits``, or ``"not run"``), ``seed`` (the talk's number,
    ``"-"`` when it has none) and ``chapter`` (which chapter measured it). Rows a chapter wrote
    that are not in :data:`SUMMARY_ROWS` follow, in chapter order.
    """
    measured: dict[str, tuple[Any, str]] = {}
    for record in read_metrics(profile_dir):
        for name, value in record["summary"].items():
            measured.setdefault(str(name), (value, record["chapter"]))
    names = list(SUMMARY_ROWS) + [n for n in measured if n not in SUMMARY_ROWS]
    rows = []
    for name in names:
        value, chapter = measured.get(name, (None, "-"))
        if value is None:
            ours = NOT_RUN
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            ours = int(value)
        elif isinstance(value, numbers.Real):
            ours = round(float(value), digits) + 0.0  # + 0.0: no "-0.0"
        else:
            ours = value
        rows.append({"result": name, "ours": ours, "seed": SUMMARY_ROWS.get(name, "-"), "chapter": chapter})
    frame = pd.DataFrame(rows, dtype=object).set_index("result")  # object: counts stay ints
    frame.index.name = None  # a header row of its own in HTML otherwise
    return frame
