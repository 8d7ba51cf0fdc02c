"""``results/<profile>/timings.json``: chapter seconds, artefacts found or made, the plan of the next run."""

from __future__ import annotations

import json

from o365lib.book.run.timings import expected_seconds, plan_lines, read_timings, record_chapter, snapshot


def _model(results, name, *, seconds=None, images_per_s=None, checkpoint="final.pt"):
    folder = results / "models" / name
    folder.mkdir(parents=True)
    (folder / checkpoint).write_bytes(b"x")
    if seconds is not None:
        (folder / "cost.json").write_text(json.dumps({"seconds": seconds, "images_per_s": images_per_s}))
    return folder


def test_made_and_cached_artefacts_and_chapter_seconds(tmp_path):
    _model(tmp_path, "pretrained-backbone-abc", seconds=50.0, images_per_s=900.0, checkpoint="backbone.pt")
    (tmp_path / "models" / "unfinished-s0-k").mkdir()  # no checkpoint: not an artefact yet
    start = snapshot(tmp_path)
    _model(tmp_path, "baseline-s0-k1", seconds=300.0, images_per_s=62.5)
    timings = record_chapter(tmp_path, chapter="02_baseline", seconds=321.04, ok=True, run_start=start, profile="p")
    by_name = {a["name"]: a for a in timings["artefacts"]}
    assert set(by_name) == {"pretrained-backbone-abc", "baseline-s0-k1"}
    assert by_name["baseline-s0-k1"] == {"kind": "model", "name": "baseline-s0-k1", "seconds": 300.0,
                                         "images_per_second": 62.5, "made": True, "chapter": "02_baseline"}
    _model(tmp_path, "expert-s0-k2", seconds=20.0, images_per_s=60.0)
    later = record_chapter(tmp_path, chapter="03_experts", seconds=30, ok=True, run_start=start, profile="p")
    chapters = {a["name"]: a["chapter"] for a in later["artefacts"]}
    assert chapters["baseline-s0-k1"] == "02_baseline" and chapters["expert-s0-k2"] == "03_experts"
    assert by_name["pretrained-backbone-abc"]["made"] is False and by_name["pretrained-backbone-abc"]["kind"] == "backbone"
    assert timings["chapters"]["02_baseline"]["seconds"] == 321.0
    assert read_timings(tmp_path)["chapters"]["02_baseline"]["ok"] is True


def test_partial_runs_keep_other_chapters_and_plan_from_them(tmp_path):
    record_chapter(tmp_path, chapter="02_baseline", seconds=100, ok=True, run_start={}, profile="p")
    record_chapter(tmp_path, chapter="03_experts", seconds=30, ok=True, run_start={}, profile="p")
    record_chapter(tmp_path, chapter="03_experts", seconds=12, ok=True, run_start={}, profile="p")  # a re-run
    data = read_timings(tmp_path)
    assert data["total_seconds"] == 112 and set(data["chapters"]) == {"02_baseline", "03_experts"}
    expected = expected_seconds(tmp_path, ["02_baseline", "03_experts", "04_resampling"])
    assert expected == {"02_baseline": 100, "03_experts": 12, "04_resampling": None}
    lines = plan_lines(expected)
    assert "1 min 52 s" in lines[-1] and "never timed" in lines[-1] and "never ran" in lines[2]


def test_unreadable_timings_start_empty(tmp_path):
    (tmp_path / "timings.json").write_text("{not json")
    assert read_timings(tmp_path)["chapters"] == {}


def test_chapters_never_run_here_are_planned_from_the_reference_run(tmp_path):
    from o365lib.book.run.timings import REFERENCE, fill_from_reference, read_reference

    root, results = tmp_path / "project", tmp_path / "results"
    reference_file = root / REFERENCE.format(profile="p")
    reference_file.parent.mkdir(parents=True)
    reference_file.write_text(json.dumps({"date": "2026-12-05", "machine": "m",
                                          "chapters": {"02_baseline": 500.0, "03_experts": 140.0}}))
    record_chapter(results, chapter="02_baseline", seconds=20, ok=True, run_start={}, profile="p")  # cached here
    reference = read_reference(root, "p")
    names = ["02_baseline", "03_experts", "04_resampling"]
    expected, marked = fill_from_reference(expected_seconds(results, names), reference)
    assert expected == {"02_baseline": 20, "03_experts": 140.0, "04_resampling": None}
    assert marked == {"03_experts"}
    lines = plan_lines(expected, from_reference=marked)
    assert "(reference run)" in lines[1] and "(reference run)" not in lines[0] and "never ran" in lines[2]
    assert read_reference(root, "other") == {}
    reference_file.write_text("[1, 2]")
    assert read_reference(root, "p") == {}
    reference_file.write_text("{broken")
    assert read_reference(root, "p") == {}


def test_the_shipped_default_reference_names_every_chapter():
    from pathlib import Path

    from o365lib.book.run.timings import read_reference

    root = Path(__file__).resolve().parents[3]
    reference = read_reference(root, "default")
    chapters = {p.stem for p in (root / "book").glob("[0-9][0-9]_*.py")}
    assert set(reference["chapters"]) == chapters and all(v > 0 for v in reference["chapters"].values())
