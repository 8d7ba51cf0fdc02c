"""Paired sources: .py and .ipynb agree, notebooks carry no outputs, parameters are literals."""

from __future__ import annotations

import shutil

import nbformat
import pytest
import yaml

from o365lib.book.config.profiles import chapter_parameters
from o365lib.book.run.notebooks import (
    chapter_sources,
    check_pair,
    check_pairs,
    parameters_cell,
    source_to_notebook,
    strip_outputs,
)
from o365lib.book.run.runner import order_chapters, select_chapters


def test_committed_pairs_agree_and_have_no_outputs(root):
    assert check_pairs(root / "book") == []


def test_toc_lists_exactly_the_chapters(root):
    toc = yaml.safe_load((root / "book" / "_toc.yml").read_text())
    listed = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    assert listed == [s.stem for s in chapter_sources(root / "book")]


def test_parameters_cells_match_the_chapter_files(root):
    for source in chapter_sources(root / "book"):
        notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
        values = parameters_cell(notebook)
        assert values.get("profile") == "default", source.name
        assert {k: v for k, v in values.items() if k != "profile"} == chapter_parameters(source.stem, root=root)
        setup = next(c for c in notebook.cells[notebook.cells.index(
            next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))) + 1:]
            if c.cell_type == "code")
        assert f'setup_chapter("{source.stem}"' in setup.source, source.name


def test_check_pair_finds_differences_and_outputs(root, tmp_path):
    source = root / "book" / "01_data_tail.py"
    shutil.copy(source, tmp_path / source.name)
    shutil.copy(source.with_suffix(".ipynb"), tmp_path / source.with_suffix(".ipynb").name)
    copy = tmp_path / source.name
    assert check_pair(copy) == []
    notebook = nbformat.read(copy.with_suffix(".ipynb"), as_version=4)
    code = next(c for c in notebook.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hi")]
    code.execution_count = 3
    code.source += "\nx = 1"
    nbformat.write(notebook, copy.with_suffix(".ipynb"))
    problems = check_pair(copy)
    assert any("has outputs" in p for p in problems) and any("execution count" in p for p in problems)
    assert any("(source)" in p for p in problems)
    assert strip_outputs(copy.with_suffix(".ipynb")) is True
    assert not any("outputs" in p for p in check_pair(copy))
    copy.with_suffix(".ipynb").unlink()
    assert "missing" in check_pair(copy)[0]


def test_parameters_cell_accepts_only_literals():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1\nb = 'x'\nc = [1, 2]", metadata={"tags": ["parameters"]})]
    assert parameters_cell(nb) == {"a": 1, "b": "x", "c": [1, 2]}
    nb.cells[0].source = "a = 1\nb = a + 1"
    with pytest.raises(ValueError, match="b is not a plain literal"):
        parameters_cell(nb)
    nb.cells[0].source = "import os"
    with pytest.raises(ValueError, match="only 'name = literal'"):
        parameters_cell(nb)


def test_source_to_notebook_is_unpaired_with_python3(root, tmp_path):
    source = root / "book" / "01_data_tail.py"
    out = source_to_notebook(source, tmp_path / "x" / "nb.ipynb")
    notebook = nbformat.read(out, as_version=4)
    assert "jupytext" not in notebook.metadata and notebook.metadata.kernelspec.name == "python3"


def test_chapter_selection_runs_the_intro_last(tmp_path):
    for name in ("00_intro", "01_a", "02_b", "03_c"):
        (tmp_path / f"{name}.py").write_text("")
    (tmp_path / "notes.py").write_text("")
    sources = chapter_sources(tmp_path)
    assert [s.stem for s in order_chapters(sources)] == ["01_a", "02_b", "03_c", "00_intro"]
    assert [s.stem for s in select_chapters(sources, ["03", "01_a"])] == ["01_a", "03_c", "00_intro"]
    assert [s.stem for s in select_chapters(sources, None)][-1] == "00_intro"
    with pytest.raises(ValueError, match="no chapter '09'"):
        select_chapters(sources, ["09"])
