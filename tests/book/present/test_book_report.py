"""Report helpers: the results summary is read from metrics files, never typed."""

from __future__ import annotations

import json

import pytest

from o365lib.book.present.report import (
    FAILED_WITH_RECORD,
    FAILED_WITHOUT_RECORD,
    NOT_RUN,
    SUMMARY_ROWS,
    failed_runs,
    format_value,
    markdown,
    markdown_table,
    results_summary,
    summary_cells,
)


def _metrics(folder, chapter, summary, sub=""):
    path = folder / chapter / sub / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"chapter": chapter, "summary": summary}))


def test_results_summary_reads_metrics_and_marks_missing(tmp_path):
    _metrics(tmp_path, "02_baseline", {"baseline mAP": 12.345, "tail 301-365 AP": -0.04,
                                       "tail 301-365 zero-AP classes": 40})
    _metrics(tmp_path, "03_experts", {"mAP, experts merged": 13.0, "expert count": 2})
    _metrics(tmp_path, "06_tiny_track", {"tiny track mAP": 20.0}, sub="full")
    (tmp_path / "01_data_tail").mkdir()
    (tmp_path / "01_data_tail" / "metrics.json").write_text(json.dumps({"details": {}}))  # no summary
    table = results_summary(tmp_path)
    assert list(table.columns) == ["ours (mean ± std)", "seeds", "talk", "verdict", "chapter"]  # no failure: no note
    assert list(table.index) == list(SUMMARY_ROWS) + ["expert count"]
    ours = table["ours (mean ± std)"]
    assert ours["baseline mAP"] == "12.3" and table.loc["baseline mAP", "talk"] == 29.5
    assert ours["tail 301-365 AP"] == "0.0"  # not "-0.0"
    assert ours["tail 301-365 zero-AP classes"] == "40"  # counts stay ints
    assert table.loc["mAP, experts merged", "chapter"] == "03_experts"
    assert ours["tiny track mAP"] == "20.0" and table.loc["tiny track mAP", "talk"] == 34.8
    assert ours["mAP, resampling"] == NOT_RUN and table.loc["mAP, resampling", "chapter"] == "04_resampling"
    assert table.loc["mAP, resampling", "seeds"] == "-" and table.loc["baseline mAP", "seeds"] == 1
    assert table.loc["expert count", "talk"] == "-" and table.loc["expert count", "chapter"] == "03_experts"
    assert table.loc["tail 301-365 zero-AP classes", "talk"] == 39  # an int stays an int
    assert (table["verdict"] == "-").all()


def test_results_summary_shows_the_spread_over_seeds_and_the_verdict(tmp_path):
    from o365lib.book.present.comparisons import paired_effect

    gain = paired_effect([10.0, 11.0, 12.0], [11.0, 12.5, 13.2], talk_effect=0.6)
    _metrics(tmp_path, "02_baseline", {
        "baseline mAP": [10.0, 11.0, 12.0],  # a list: one value per seed
        "tail 301-365 zero-AP classes": {"mean": 40.0, "std": 1.0, "n": 3, "values": [39.0, 40.0, 41.0]},
        "tail 301-365 AP": {"mean": 2.5, "std": 0.31, "n": 4},  # statistics without the values
    })
    _metrics(tmp_path, "04_resampling", {"mAP, resampling": {"values": [9.0], "verdict": "inconclusive (1 seed)"}})
    _metrics(tmp_path, "05_tricks", {"mAP gain, pretrained backbone": gain.summary()})
    table = results_summary(tmp_path).set_axis(["ours", "seeds", "talk", "verdict", "chapter"], axis=1)
    assert table.loc["baseline mAP"].tolist() == ["11.0 ± 1.0", 3, 29.5, "-", "02_baseline"]
    assert table.loc["tail 301-365 zero-AP classes", "ours"] == "40.0 ± 1.0"  # sample std of 39, 40, 41
    assert table.loc["tail 301-365 AP"].tolist()[:2] == ["2.5 ± 0.3", 4]
    assert table.loc["mAP, resampling"].tolist()[:4] == ["9.0", 1, 31.0, "inconclusive (1 seed)"]
    # the per-seed differences 1.0, 1.5, 1.2: mean 1.23, sample std 0.25
    assert table.loc["mAP gain, pretrained backbone"].tolist()[:4] == ["1.2 ± 0.3", 3, 0.6, "reproduced"]


def test_results_summary_flags_chapters_whose_latest_run_failed(tmp_path):
    from o365lib.book.run.records import mark_failed

    _metrics(tmp_path, "02_baseline", {"baseline mAP": [10.0, 12.0]})
    _metrics(tmp_path, "03_experts", {"mAP, experts merged": [13.0, 13.5]})
    mark_failed(tmp_path, chapter="02_baseline", error="Traceback ...\nValueError: boom", notebook="x.ipynb")
    mark_failed(tmp_path, chapter="04_resampling", error="KeyError: 'x'", notebook="y.ipynb")
    table = results_summary(tmp_path)
    assert table.columns[-1] == "note"
    assert table.loc["baseline mAP", "note"] == FAILED_WITH_RECORD
    assert table.loc["baseline mAP", "ours (mean ± std)"] == "11.0 ± 1.4"  # the last good record, still shown
    assert table.loc["tail 301-365 AP", "note"] == FAILED_WITHOUT_RECORD  # 02_baseline never wrote this row
    assert table.loc["mAP, resampling", "note"] == FAILED_WITHOUT_RECORD
    assert table.loc["mAP, experts merged", "note"] == "-"
    runs = failed_runs(tmp_path)
    assert list(runs.index) == ["02_baseline", "04_resampling"] and list(runs.columns) == ["failed at", "error"]
    assert runs.loc["02_baseline", "error"] == "ValueError: boom"
    assert failed_runs(tmp_path / "absent").empty


def test_summary_cells_formats_and_errors():
    assert summary_cells([16.0], count=True)["ours"] == "16"
    assert summary_cells([16.0])["ours"] == "16.0"
    assert summary_cells({"values": [], "mean": None})["ours"] == NOT_RUN
    assert summary_cells("n/a") == {"ours": "n/a", "seeds": "-", "verdict": "-"}
    with pytest.raises(ValueError, match="row 'x': per-seed values must be a list of numbers"):
        summary_cells({"values": [1.0, "a"]}, where="m.json: summary row 'x'")
    with pytest.raises(ValueError, match="needs 'values' or 'mean'"):
        summary_cells({"std": 1.0})


def test_results_summary_of_an_empty_folder_is_all_not_run(tmp_path):
    table = results_summary(tmp_path / "absent")
    assert (table["ours (mean ± std)"] == NOT_RUN).all() and len(table) == len(SUMMARY_ROWS)


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
