"""The runner: a chapter's record is written only when it succeeds; a failure keeps the last good one."""

from __future__ import annotations

import json

import pytest

from o365lib.book.run.records import failed_chapters
from o365lib.book.run.runner import execute_chapter

#: starts subprocesses (torchrun / papermill kernels): minutes, not seconds
pytestmark = pytest.mark.slow

HEADER = '# %% tags=["parameters"]\nprofile = "default"\nfail = False\n\n'
GOOD = ("# %%\nimport o365lib.book\n"
        "ctx = o365lib.book.setup_chapter('97_good', profile=profile, namespace=globals(), fail=fail)\n"
        "if ctx.params['fail']:\n    raise RuntimeError('boom 42')\n"
        "o365lib.book.run.records.write_chapter_record(ctx, summary={'x': 1.0})\nctx.profile\n")


def _chapter(folder, name, body):
    source = folder / "book" / f"{name}.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(HEADER + body)
    return source


def test_good_chapter_runs_and_a_failure_keeps_the_last_good_record(tmp_project):
    good = _chapter(tmp_project, "97_good", GOOD)
    build = tmp_project / "_build"
    run = execute_chapter(good, profile="smoke", build_dir=build, root=tmp_project, progress=False)
    assert run.ok, run.error
    executed = build / "executed" / "smoke" / "97_good.ipynb"
    assert "'smoke'" in json.dumps(json.loads(executed.read_text())["cells"][-1]["outputs"])
    record = tmp_project / "results" / "smoke" / "97_good" / "parameters.json"
    good_record, good_page = record.read_bytes(), executed.read_bytes()

    good.write_text(HEADER.replace("fail = False", "fail = True") + GOOD)  # the chapter's own default
    run = execute_chapter(good, profile="smoke", build_dir=build, root=tmp_project, progress=False)
    assert not run.ok and "boom 42" in run.error
    assert record.read_bytes() == good_record and executed.read_bytes() == good_page
    assert (build / "executed" / "smoke" / "failed" / "97_good.ipynb").is_file()
    assert "boom 42" in failed_chapters(tmp_project / "results" / "smoke")["97_good"]["error"]

    good.write_text(HEADER + GOOD)
    assert execute_chapter(good, profile="smoke", build_dir=build, root=tmp_project, progress=False).ok
    assert failed_chapters(tmp_project / "results" / "smoke") == {}


def test_a_chapter_that_writes_no_record_fails(tmp_project):
    lazy = _chapter(tmp_project, "98_lazy", "# %%\nx = 1\n")
    run = execute_chapter(lazy, profile="smoke", build_dir=tmp_project / "_build", root=tmp_project, progress=False)
    assert not run.ok and "write_chapter_record" in run.error
    assert not (tmp_project / "book" / "98_lazy.ipynb").exists()  # sources are never written
