"""Text and tables for the book, built from measured values so that no chapter types a number.

- :func:`markdown` fills a sentence template with values from the run and returns an
  ``IPython.display.Markdown`` the chapter displays.
- :func:`markdown_table` turns a DataFrame into a Markdown table (for prose-style tables).
- :func:`results_summary` collects the ``summary`` rows every chapter wrote to
  ``results/<profile>/<chapter>/metrics.json`` into the intro's table: ours (mean ± std over random
  seeds) next to the ByteDance talk's number (Lu et al. 2019), with the chapter's verdict, and flags
  the rows of chapters whose latest run failed (:func:`failed_runs` lists those runs).

**Summary values.** A chapter's ``metrics.json`` holds ``{"chapter": ..., "summary": {row name:
value}}``; a value is one of

- a number: one measurement (a single seed, or a number that no random seed changes);
- a list of numbers: one value per random seed, shown as mean ± std (``ddof=1``);
- a mapping with ``"values"`` (the per-seed list), or with ``"mean"``, ``"std"`` and ``"n"`` when the
  values are not kept; optional ``"verdict"`` (the verdict of the comparison the row reports,
  ``o365lib.book.present.comparisons``), ``"ci"`` (``[low, high]``) and ``"seeds"`` (the random seed ids).
  ``o365lib.book.present.comparisons.Effect.summary()`` writes one; so does a ``{"mean", "std", "n", "values"}``
  statistic with a ``"verdict"`` added;
- any other JSON value: shown as text.

**Failed runs.** The book runner writes ``results/<profile>/<chapter>/FAILED.json`` (``{"chapter",
"error", "notebook", "when"}``, ``o365lib.book.run.records.mark_failed``) when a chapter's latest run
failed, and removes it after a successful run; the last good ``metrics.json`` stays in place. The
rows of such a chapter read "latest run failed; showing the last good record" (or "latest run
failed; no good record yet") in a "note" column, which appears only when a chapter failed.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from IPython.display import Markdown

from o365lib.book.present.comparisons import fmt, mean_std
from o365lib.book.present.talk import TALK
from o365lib.book.run.records import failed_chapters

#: Value shown for a summary row no chapter has measured yet.
NOT_RUN = "not run"
#: Notes of the rows of a chapter whose latest run failed.
FAILED_WITH_RECORD = "latest run failed; showing the last good record"
FAILED_WITHOUT_RECORD = "latest run failed; no good record yet"


class SummaryRow(NamedTuple):
    """A row of the intro's table: the talk's number (None: it has none) and the chapter that measures it."""

    talk: Any
    chapter: str


#: Rows of the results summary, in book order, with the talk's number (Objects365 v1 val unless the
#: name says otherwise) and the chapter (results folder) that writes them. Chapters write these
#: names as keys of the ``summary`` dict of their ``metrics.json``; other keys are shown after
#: these, with no talk number.
SUMMARY_ROWS: dict[str, SummaryRow] = {
    "baseline mAP": SummaryRow(TALK["baseline_map"], "02_baseline"),
    "tail 301-365 AP": SummaryRow(TALK["expert_tail_before"], "02_baseline"),
    "tail 301-365 zero-AP classes": SummaryRow(TALK["tail_zero_ap"], "02_baseline"),
    "tail 301-365 AP, expert": SummaryRow(TALK["expert_tail_after"], "03_experts"),
    "301-365 classes improved by expert": SummaryRow(TALK["expert_classes_improved"], "03_experts"),
    "mAP, experts merged": SummaryRow(TALK["experts_overall"][-1], "03_experts"),
    "tail 301-365 AP, resampling": SummaryRow(TALK["resample_tail"][-1], "04_resampling"),
    "mAP, resampling": SummaryRow(TALK["resample_overall"][-1], "04_resampling"),
    "mAP gain, pretrained backbone": SummaryRow(TALK["trick_pretrained"], "05_tricks"),
    "mAP gain, multi-scale training": SummaryRow(TALK["trick_multiscale_train"], "05_tricks"),
    "mAP gain, multi-scale test + soft-NMS": SummaryRow(TALK["trick_multiscale_test_softnms"], "05_tricks"),
    "mAP gain, ensemble": SummaryRow(TALK["trick_ensemble"], "05_tricks"),
    "mAP, all tricks": SummaryRow(TALK["final_full_val"], "05_tricks"),
    "tiny track mAP": SummaryRow(TALK["final_tiny_val"], "06_tiny_track"),
    "final: Validation set (full track)": SummaryRow(TALK["final_full_val"], "06_tiny_track"),
    "final: Test set (full track)": SummaryRow(TALK["final_full_test"], "06_tiny_track"),
    "final: Validation set (tiny track)": SummaryRow(TALK["final_tiny_val"], "06_tiny_track"),
    "final: Test set (tiny track)": SummaryRow(TALK["final_tiny_test"], "06_tiny_track"),
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



def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_numbers(values, *, where: str) -> list:
    if not isinstance(values, (list, tuple)) or not all(_is_number(v) for v in values):
        raise ValueError(f"{where}: per-seed values must be a list of numbers, got {values!r}")
    return list(values)


def summary_cells(value: Any, *, count: bool = False, digits: int = 1, where: str = "summary") -> dict:
    """The "ours", "seeds" and "verdict" cells of one summary value (formats in the module docstring).

    ``count``: the row counts something (the talk's number is an int), so whole per-seed values and
    a whole mean print without decimals. ``where`` names the file and row in error messages.
    """
    verdict = "-"
    if isinstance(value, Mapping):
        verdict = str(value.get("verdict") or "-")
        if "values" in value:
            value = _check_numbers(value["values"], where=where)
        elif "mean" in value:
            if value["mean"] is not None and not _is_number(value["mean"]):
                raise ValueError(f"{where}: 'mean' must be a number, got {value['mean']!r}")
            n = value.get("n")
            return {"ours": NOT_RUN if value["mean"] is None else mean_std(dict(value), digits),
                    "seeds": int(n) if _is_number(n) else "-", "verdict": verdict}
        else:
            raise ValueError(f"{where}: a summary mapping needs 'values' or 'mean', got keys {sorted(value)}")
    if value is None:
        return {"ours": NOT_RUN, "seeds": "-", "verdict": verdict}
    if isinstance(value, list):
        values = _check_numbers(value, where=where)
        if count and all(float(v).is_integer() for v in values):
            values = [int(v) for v in values]
        text = mean_std(values, digits) if values else NOT_RUN
        return {"ours": text, "seeds": len(values) if values else "-", "verdict": verdict}
    if _is_number(value):
        if count and not math.isnan(value) and float(value).is_integer():
            value = int(value)
        return {"ours": fmt(value, digits), "seeds": 1, "verdict": verdict}
    return {"ours": str(value), "seeds": "-", "verdict": verdict}


def results_summary(profile_dir: str | Path, *, digits: int = 1) -> pd.DataFrame:
    """The book's results, ours next to the ByteDance talk's: one row per :data:`SUMMARY_ROWS` entry.

    Columns: "ours (mean ± std)" (over random seeds; one value alone; "not run" when no chapter
    measured it), "seeds" (how many, an int, or '-'), "talk" (the talk's number, '-' when it has
    none), "verdict" (the chapter's, '-' when it wrote none), "chapter" (the chapter that measured the
    row, or that would), and "note" only when some chapter's latest run failed (module docstring).
    Rows a chapter wrote that are not in :data:`SUMMARY_ROWS` follow, in chapter order.
    """
    measured: dict[str, tuple[Any, str, Path]] = {}
    for record in read_metrics(profile_dir):
        for name, value in record["summary"].items():
            measured.setdefault(str(name), (value, record["chapter"], record["path"]))
    failed = failed_chapters(Path(profile_dir))
    names = list(SUMMARY_ROWS) + [n for n in measured if n not in SUMMARY_ROWS]
    rows = []
    for name in names:
        talk, expected = SUMMARY_ROWS.get(name, SummaryRow(None, "-"))
        value, chapter, path = measured.get(name, (None, expected, None))
        count = isinstance(talk, numbers.Integral)
        cells = summary_cells(value, count=count, digits=digits, where=f"{path}: summary row {name!r}")
        row = {"result": name, "ours (mean ± std)": cells["ours"], "seeds": cells["seeds"],
               "talk": "-" if talk is None else (int(talk) if count else talk), "verdict": cells["verdict"],
               "chapter": chapter}
        if failed:
            row["note"] = ("-" if chapter not in failed else
                           FAILED_WITH_RECORD if path is not None else FAILED_WITHOUT_RECORD)
        rows.append(row)
    frame = pd.DataFrame(rows, dtype=object).set_index("result")  # object: counts stay ints
    frame.index.name = None  # a header row of its own in HTML otherwise
    return frame


def failed_runs(profile_dir: str | Path) -> pd.DataFrame:
    """One row per chapter whose latest run failed: when, and the last line of its error.

    Empty (with the same columns) when every chapter's latest run succeeded.
    """
    rows = []
    for chapter, record in failed_chapters(Path(profile_dir)).items():
        lines = [line for line in str(record.get("error", "")).splitlines() if line.strip()]
        rows.append({"chapter": chapter, "failed at": str(record.get("when", "-")),
                     "error": lines[-1] if lines else "-"})
    return pd.DataFrame(rows, columns=["chapter", "failed at", "error"], dtype=object).set_index("chapter")
