"""End to end: the smoke book runs, builds with warnings as errors, and draws in headless Chromium.

One runner call (module fixture) executes every chapter on the smoke profile into a temporary
``_build``; the tests then check its outputs, a fresh-clone build of the committed notebooks,
and the pages in Chromium. The screenshot is kept in ``_build/screenshots/`` for humans.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from o365lib.book.run.notebooks import chapter_sources
from o365lib.book.run.runner import build_html

ROOT = Path(__file__).resolve().parents[3]
CHAPTERS = [s.stem for s in chapter_sources(ROOT / "book")]
pytestmark = pytest.mark.slow


def _browser_check_module():
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tools" / "browser_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smoke_profile(folder: Path) -> Path:
    """The smoke profile with its results and data under ``folder`` (tests never write the repo's results/)."""
    raw = yaml.safe_load((ROOT / "parameters" / "profiles" / "smoke.yaml").read_text())
    raw["results_dir"] = str(folder / "results")
    raw["data"]["root"] = str(folder / "data")
    path = folder / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """``python -m o365lib.book run --profile <tmp>/smoke.yaml`` into a temporary output root."""
    out = tmp_path_factory.mktemp("smoke_book")
    profile = smoke_profile(out)
    command = [sys.executable, "-m", "o365lib.book", "run", "--profile", str(profile), "--output-root", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    return out / "_build", result


def test_smoke_run_succeeds(smoke_run):
    build, result = smoke_run
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
    run = json.loads((build / "executed" / "smoke" / "run.json").read_text())
    assert [c["chapter"] for c in run["chapters"]] == CHAPTERS[1:] + CHAPTERS[:1]  # intro last
    assert all(c["ok"] for c in run["chapters"])
    print({c["chapter"]: round(c["seconds"], 1) for c in run["chapters"]})


def test_every_trained_model_has_its_cost_in_timings(smoke_run):
    """Every model the run trained, the EQLv2 probe's segments included, reports seconds and images/s."""
    build, _ = smoke_run
    timings = json.loads((build.parent / "results" / "timings.json").read_text())
    made = [a for a in timings["artefacts"] if a["made"] and a["kind"] == "model"]
    assert made and any(a["name"].startswith("probe-") for a in made)
    assert all(a["seconds"] > 0 and a["images_per_second"] > 0 for a in made), [a for a in made if not a["seconds"]]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_executed_with_outputs_and_parameters(smoke_run, chapter):
    build, result = smoke_run
    assert result.returncode == 0
    executed = nbformat.read(build / "executed" / "smoke" / f"{chapter}.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "smoke.yaml" in injected[0].source
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(c.outputs for c in executed.cells if c.cell_type == "code")
    streams = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "it/s]" not in streams and "s/it]" not in streams, "progress bars leaked into the page"
    records = list((build.parent / "results" / chapter).glob("**/parameters.json"))
    assert records, f"{chapter} wrote no parameters.json"
    record = json.loads(records[0].read_text())
    assert record["chapter"] == chapter and record["profile"] == "smoke"
    assert not (build.parent / "results" / chapter / "FAILED.json").exists()
    assert not (ROOT / "book" / f"{chapter}.ipynb").read_text().count('"output_type"')  # sources untouched


def test_fresh_clone_build_has_no_warnings(tmp_path):
    """The committed, output-free notebooks build with -W -n --keep-going and no executed copies."""
    result = build_html(root=ROOT, executed_dir=tmp_path / "none", output_root=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for chapter in CHAPTERS:
        assert (tmp_path / "_build" / "html" / f"{chapter}.html").is_file()


def test_book_in_headless_chromium(smoke_run):
    build, result = smoke_run
    assert result.returncode == 0
    check = _browser_check_module()
    chromium = check.find_chromium()
    if chromium is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("Chromium is missing in CI: apt-get install -y chromium (make chromium)")
        pytest.skip("Chromium not installed (make chromium); the browser check runs in CI")
    shot = build / "screenshots" / "01_data_tail.png"
    report = check.check_book(build / "html", pages=CHAPTERS, min_figures=1, screenshot_page="01_data_tail"
                              if "01_data_tail" in CHAPTERS else None, screenshot_path=shot, chromium=chromium)
    keep = ROOT / "_build" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / shot.name)
    (keep / "browser_check.json").write_text(json.dumps(report, indent=1))
    assert report["ok"], report["problems"]
    assert report["cdn"] == {}
    assert report["figures_drawn"] >= 1


@pytest.mark.skipif("01_data_tail" not in CHAPTERS, reason="chapter 01 absent")
def test_plain_papermill_runs_a_committed_chapter(tmp_path):
    """Users run a committed notebook with papermill from the book folder; a typo is an error."""
    profile = smoke_profile(tmp_path)
    out = tmp_path / "out.ipynb"
    command = [sys.executable, "-m", "papermill", "01_data_tail.ipynb", str(out), "-p", "profile", str(profile),
               "-p", "image_columns", "3", "-p", "eval__max_dets", "20", "-k", "python3"]
    result = subprocess.run(command, cwd=ROOT / "book", capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads((tmp_path / "results" / "01_data_tail" / "parameters.json").read_text())
    assert record["parameters"] == {"examples_per_class": 1, "image_columns": 3}
    assert record["config"]["eval"]["max_dets"] == 20
    assert "plotly-graph-div" in out.read_text()
    before = (tmp_path / "results" / "01_data_tail" / "parameters.json").read_bytes()
    typo = [*command[:-2], "-p", "image_colums", "2", "-k", "python3"]
    result = subprocess.run(typo, cwd=ROOT / "book", capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode != 0 and "image_colums" in result.stderr + result.stdout
    assert (tmp_path / "results" / "01_data_tail" / "parameters.json").read_bytes() == before
