"""The command: ``python -m o365lib.evaluation`` / ``o365-eval``, its JSON, HTML and errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from o365lib.evaluation import evaluate
from o365lib.evaluation.cli import main
from tests.support.coco_workload import random_workload
from tests.support.lvis_reference import lvis_workload


@pytest.fixture
def files(tmp_path):
    gt, dets = random_workload(0, num_images=50, num_classes=12)
    rng = np.random.default_rng(1)
    other = [dict(d, score=float(np.clip(d["score"] + rng.normal(0, 0.1), 0, 1))) for d in dets]
    paths = {"gt": tmp_path / "gt.json", "a": tmp_path / "a.json", "b": tmp_path / "b.json"}
    for key, obj in (("gt", gt), ("a", dets), ("b", other)):
        paths[key].write_text(json.dumps(obj))
    return paths, gt, dets, other


def test_json_has_the_standard_numbers_on_the_0_100_scale(files, tmp_path, capsys):
    paths, gt, dets, _ = files
    out = tmp_path / "out" / "m.json"
    assert main([str(paths["gt"]), str(paths["a"]), "--train", str(paths["gt"]), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    reference = evaluate(gt, dets, train_gt=gt, ranges=("1-4", "5-8", "9-12"))
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"):
        assert key in data
        assert data[key] == reference[key]
    assert data["AP"] == reference["mAP"] and 1 < data["AP"] < 100  # 0-100, not 0-1
    assert data["protocol"] == "coco" and list(data["ranges"]) == ["1-4", "5-8", "9-12"]
    printed = capsys.readouterr().out
    assert re.search(r"a\.json\s+" + f"{data['AP']:.2f}", printed)
    assert "zero-AP classes:" in printed and "rank range" in printed
    assert not list(out.parent.glob(".*tmp"))


def test_compare_gives_paired_intervals(files, tmp_path, capsys):
    paths, gt, _, other = files
    out = tmp_path / "m.json"
    assert main([str(paths["gt"]), str(paths["a"]), "--compare", str(paths["b"]), "--bootstrap", "50",
                 "--labels", "base,new", "--ranges", "1-6,7-12", "--json", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    data = json.loads(out.read_text())
    diff = data["compare"]["differences"]
    b = evaluate(gt, other, ranges=("1-6", "7-12"))
    assert data["compare"]["metrics"]["AP"] == b["mAP"]
    assert diff["overall"]["delta"] == pytest.approx(b["mAP"] - data["AP"])
    lo, hi = diff["overall"]["interval"]
    assert lo < diff["overall"]["delta"] < hi
    for spec in ("1-6", "7-12"):
        assert diff["ranges"][spec]["interval"][0] <= diff["ranges"][spec]["interval"][1]
    assert len(diff["most_changed"]) == 10
    deltas = [abs(m["delta"]) for m in diff["most_changed"]]
    assert deltas == sorted(deltas, reverse=True)
    # comparing a file with itself: every difference and interval is exactly 0
    assert main([str(paths["gt"]), str(paths["a"]), "--compare", str(paths["a"]), "--bootstrap", "20",
                 "--json", str(out), "--quiet"]) == 0
    same = json.loads(out.read_text())["compare"]["differences"]
    assert same["overall"]["interval"] == [0.0, 0.0] and same["improved"] == same["worse"] == 0


def test_lvis_ground_truth_picks_the_lvis_protocol(tmp_path):
    gt, dets = lvis_workload(2, num_images=15)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "d.json").write_text(json.dumps(dets))
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "d.json"), "--json", str(tmp_path / "m.json"), "--quiet"]) == 0
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["protocol"] == "lvis" and data["max_dets"] == 300
    assert data["AP"] == evaluate(gt, dets, protocol="lvis", ranges=data["ranges"].keys())["AP"]
    assert {"APr", "APc", "APf", "AR@300"} <= set(data)
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "d.json"), "--protocol", "coco", "--json",
                 str(tmp_path / "c.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["protocol"] == "coco"


def test_html_is_self_contained(files, tmp_path):
    paths, *_ = files
    page = tmp_path / "r.html"
    assert main([str(paths["gt"]), str(paths["a"]), "--compare", str(paths["b"]), "--bootstrap", "20",
                 "--fixed-ap", "--html", str(page), "--quiet"]) == 0
    text = page.read_text()
    assert text.count("plotly-graph-div") >= 5
    assert not re.search(r"<script[^>]+src=", text)  # plotly.js is inline
    assert not re.search(r"""<(script|link)\b[^>]*(src|href)=["'](https?:)?//""", text)
    for heading in ("Per-class AP against", "AP by rank range", "Zero-AP classes", "Precision-recall",
                    "Classes that changed most", "fixed AP"):
        assert heading in text


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: p["a"].write_text(""), "a.json.*the file is empty"),
    (lambda p: p["a"].write_text('{"a": 1}'), "a.json.*JSON object, expected a JSON list"),
    (lambda p: p["gt"].write_text('{"images": [], "annotations": []}'), "gt.json.*no 'categories'"),
    (lambda p: p["a"].write_text('[{"image_id": 1e9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]'),
     "a.json.*index=0 field 'image_id'"),
])
def test_bad_input_exits_2_and_writes_nothing(files, tmp_path, capsys, make, expected):
    paths, *_ = files
    make(paths)
    out = tmp_path / "m.json"
    assert main([str(paths["gt"]), str(paths["a"]), "--json", str(out), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert re.search(expected, err.replace("\n", " ")), err
    assert not out.exists() and not (tmp_path / "r.html").exists()


def test_module_and_console_script_run(files):
    paths, *_ = files
    run = subprocess.run([sys.executable, "-m", "o365lib.evaluation", str(paths["gt"]), str(paths["a"])],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert "AP50" in run.stdout
    assert "o365-eval = \"o365lib.evaluation.cli:main\"" in (Path(__file__).parents[2] / "pyproject.toml").read_text()


def test_library_entry_takes_in_memory_data_and_names_figures(files):
    """What the book page does: CocoData-like objects and result lists, then figures by name."""
    from types import SimpleNamespace

    from o365lib.evaluation import evaluate_files

    _, gt, dets, other = files
    report = evaluate_files(SimpleNamespace(dataset=gt), dets, train=SimpleNamespace(dataset=gt), compare=other,
                            labels=("baseline", "expert"), fixed_ap=True, bootstrap=10, seed=0)
    assert report.metrics["AP"] == evaluate(gt, dets, ranges=("1-4",))["AP"]
    assert report.counts_label == "training images" and report.labels == ("baseline", "expert")
    for name in ("frequency", "groups", "pr_curves", "range_change", "class_change"):
        assert len(report.figure(name).data) >= 1
    with pytest.raises(ValueError, match="unknown figure"):
        report.figure("nope")
    assert "baseline" in report.text and "expert" in report.text


def test_a_reader_that_stops_early_gets_no_traceback(files, tmp_path):
    """``o365-eval gt dets --json out | head``: the pipe closes, the JSON is still written, exit 0."""
    paths, *_ = files
    out = tmp_path / "out.json"
    cmd = (f"'{sys.executable}' -m o365lib.evaluation '{paths['gt']}' '{paths['a']}' --json '{out}' "
           "| true")  # `true` exits without reading: every write to the pipe fails
    run = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=300,
                         check=False)
    assert "BrokenPipeError" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["AP"] >= 0
