"""The runner executes a chapter with papermill and insists on its parameters.json."""

from __future__ import annotations

import json

from o365lib.book.runner import execute_chapter

HEADER = '# %% tags=["parameters"]\nprofile = "default"\n\n'


def _chapter(folder, name, body):
    source = folder / "book" / f"{name}.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(HEADER + body)
    return source


def test_good_chapter_runs_and_bad_ones_are_reported(tmp_project):
    good = _chapter(tmp_project, "97_good", "# %%\nimport o365lib.book\n"
                    "ctx = o365lib.book.setup_chapter('97_good', profile=profile)\nctx.profile\n")
    run = execute_chapter(good, profile="smoke", build_dir=tmp_project / "_build", root=tmp_project)
    assert run.ok, run.error
    executed = json.loads((tmp_project / "_build" / "executed" / "smoke" / "97_good.ipynb").read_text())
    assert "'smoke'" in json.dumps(executed["cells"][-1]["outputs"])
    assert (tmp_project / "results" / "smoke" / "97_good" / "parameters.json").is_file()

    lazy = _chapter(tmp_project, "98_lazy", "# %%\nx = 1\n")
    run = execute_chapter(lazy, profile="smoke", build_dir=tmp_project / "_build", root=tmp_project)
    assert not run.ok and "setup_chapter" in run.error

    broken = _chapter(tmp_project, "96_broken", "# %%\nraise RuntimeError('boom 42')\n")
    run = execute_chapter(broken, profile="smoke", build_dir=tmp_project / "_build", root=tmp_project)
    assert not run.ok and "boom 42" in run.error
    assert not (tmp_project / "book" / "96_broken.ipynb").exists()  # sources are never written
