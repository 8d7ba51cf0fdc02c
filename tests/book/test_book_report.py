"""Report helpers: the results summary is read from metrics files, never typed."""

from __future__ import annotations

import json

import pytest

from o365lib.book.report import NOT_RUN, SUMMARY_ROWS, format_value, markdown, markdown_table, results_summary


def _metrics(folder, chapter, summary, sub=""):
    path = folder / chapter / sub / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"chapter": chapter, "summary": summary}))


def test_results_summary_reads_metrics_and_marks_missing(tmp_path):
    _metrics(tmp_path, "02_baseline", {"baseline mAP": 12.345, "tail 301-365 AP": -0.04,
                                       "tail 301-365 zero-AP classes": 40})
    _metrics(tmp_path, "03_experts", {"mAP, experts merged": 13.0, "expert count": 2})
    _metrics(tmp_path, "06_tiny", {"tiny track mAP": 20.0}, sub="full")
    (tmp_path / "01_data_tail").mkdir()
    (tmp_path / "01_data_tail" / "metrics.json").write_text(json.dumps({"details": {}}))  # no summary
    table = results_summary(tmp_path)
    assert list(table.columns) == ["ours", "seed", "chapter"]
    assert list(table.index) == list(SUMMARY_ROWS) + ["expert count"]
    assert table.loc["baseline mAP", "ours"] == 12.3 and table.loc["baseline mAP", "seed"] == 29.5
    assert str(table.loc["tail 301-365 AP", "ours"]) == "0.0"  # not "-0.0"
    assert str(table.loc["tail 301-365 zero-AP classes", "ours"]) == "40"  # counts stay ints
    assert table.loc["mAP, experts merged", "chapter"] == "03_experts"
    assert table.loc["tiny track mAP", "ours"] == 20.0 and table.loc["tiny track mAP", "seed"] == 34.8
    assert table.loc["mAP, resampling", "ours"] == NOT_RUN and table.loc["mAP, resampling", "chapter"] == "-"
    assert table.loc["expert count", "seed"] == "-"
    assert table.loc["tail 301-365 zero-AP classes", "seed"] == 39  # an int stays an int


def test_results_summary_of_an_empty_folder_is_all_not_run(tmp_path):
    table = results_summary(tmp_path / "absent")
    assert (table["ours"] == NOT_RUN).all() and len(table) == len(SUMMARY_ROWS)


def test_bad_metrics_file_names_the_file(tmp_path):
    (tmp_path / "02_x").mkdir()
    (tmp_path / "02_x" / "metrics.json").write_text(json.dumps({"summary": [1, 2]}))
    with pytest.raises(ValueError, match=r"02_x/metrics.json: field 'summary'"):
        results_summary(tmp_path)


def test_markdown_formats_numbers():
    text = markdown("{a} and {b} and {c:.3f} and {d}", a=1234567, b=0.25, c=2, d="x").data
    assert text == "1,234,567 and 0.2 and 2.000 and x"
    assert format_value(float("nan")) == "-" and format_value(True) == "True"
    with pytest.raises(KeyError, match="needs a value for 'missing'"):
        markdown("{missing}")


def test_markdown_table():
    import pandas as pd

    frame = pd.DataFrame({"n": [1000, 2], "ap": [1.25, None]}, index=pd.Index(["a", "b|c"], name="cls"))
    assert markdown_table(frame, caption="T").data == (
        "T\n\n| cls | n | ap |\n|---|---|---|\n| a | 1,000 | 1.2 |\n| b\\|c | 2 | - |")
    with pytest.raises(TypeError):
        markdown_table([1, 2])
