"""The HTML report drawn in headless Chromium, offline (all network sent to a dead proxy)."""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from o365lib.evaluation.cli import main
from tests.support.coco_workload import random_workload

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _browser_check():
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tools" / "browser_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_draws_offline(tmp_path):
    check = _browser_check()
    chromium = check.find_chromium()
    if chromium is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("Chromium is missing in CI: apt-get install -y chromium (make chromium)")
        pytest.skip("Chromium not installed (make chromium); the browser check runs in CI")
    gt, dets = random_workload(3, num_images=120, num_classes=30, dets_per_image=30)
    rng = np.random.default_rng(0)
    other = [dict(d, score=float(np.clip(d["score"] + rng.normal(0, 0.15), 0, 1))) for d in dets]
    for name, obj in (("gt", gt), ("a", dets), ("b", other)):
        (tmp_path / f"{name}.json").write_text(json.dumps(obj))
    page = tmp_path / "report.html"
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "a.json"), "--compare", str(tmp_path / "b.json"),
                 "--fixed-ap", "--bootstrap", "50", "--labels", "baseline,rescored", "--html", str(page),
                 "--quiet"]) == 0
    dom = check.dump_dom(chromium, page, budget_ms=20000)
    graphs = len(check.GRAPH_DIV.findall(dom))
    assert graphs == 5
    assert len(check.DRAWN_DIV.findall(dom)) == graphs  # every figure drew, with no network
    assert len(check.MAIN_SVG.findall(dom)) >= graphs
    shot = check.screenshot(chromium, page, tmp_path / "report.png", width=1200, height=4200)
    keep = ROOT / "_build" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "evaluation_report.png")
    assert Path(shot).stat().st_size > 20000
