"""A chapter that fails where its failure cannot be recorded: both errors are shown, the exit code is 1."""

from __future__ import annotations

from pathlib import Path

import papermill
import yaml

from o365lib.book.run import records, runner, timings
from o365lib.strict_yaml import read_yaml_mapping

ROOT = Path(__file__).resolve().parents[3]


def _profile(tmp_path: Path) -> str:
    """The smoke profile with its results under ``tmp_path`` (nothing is written to the real results)."""
    raw = read_yaml_mapping(ROOT / "parameters" / "profiles" / "smoke.yaml")
    raw["results_dir"] = str(tmp_path / "results")
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_a_failed_failure_record_shows_both_errors(tmp_path, monkeypatch):
    def chapter_fails(*args, **kwargs):
        raise RuntimeError("cell 5: ZeroDivisionError: the chapter's own error")

    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(papermill, "execute_notebook", chapter_fails)
    monkeypatch.setattr(records, "write_json", read_only)  # mark_failed writes FAILED.json through it
    monkeypatch.setattr(timings, "write_json", read_only)  # and the runner its timings.json
    shown: list[str] = []
    code = runner.run_book(profile=_profile(tmp_path), chapters=["02"], build=False, output_root=tmp_path,
                           echo=shown.append)
    output = "\n".join(shown)
    assert code == 1
    assert "02_baseline: FAILED" in output
    assert "RuntimeError: cell 5: ZeroDivisionError: the chapter's own error" in output
    assert "recording this failure failed too (PermissionError: [Errno 13] Permission denied: " in output
    assert "FAILED.json" in output
    assert "02_baseline: its time was not recorded (PermissionError: [Errno 13] Permission denied: " in output


def test_the_failure_is_recorded_when_it_can_be(tmp_path, monkeypatch):
    def chapter_fails(*args, **kwargs):
        raise RuntimeError("the chapter's own error")

    marked: list[dict] = []
    monkeypatch.setattr(papermill, "execute_notebook", chapter_fails)
    monkeypatch.setattr(records, "write_json", lambda path, obj, **kw: marked.append(obj) or path)
    shown: list[str] = []
    assert runner.run_book(profile=_profile(tmp_path), chapters=["02"], build=False, output_root=tmp_path,
                           echo=shown.append) == 1
    assert [m["chapter"] for m in marked] == ["02_baseline"]
    assert "recording this failure failed" not in "\n".join(shown)

