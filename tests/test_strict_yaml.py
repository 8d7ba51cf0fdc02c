"""``o365lib.strict_yaml``: a key given twice in a parameter file is an error naming file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from o365lib.book.config.profiles import chapter_parameters, load_profile, read_yaml
from o365lib.strict_yaml import DuplicateKeyError, load_yaml, read_yaml_mapping

ROOT = Path(__file__).resolve().parents[1]


def _smoke_copy_with(tmp_path: Path, *, after: str, line: str) -> tuple[Path, int]:
    """A copy of the smoke profile with ``line`` inserted after the first line equal to ``after``;
    returns the path and the 1-based number of the inserted line."""
    lines = (ROOT / "parameters" / "profiles" / "smoke.yaml").read_text().splitlines()
    index = lines.index(after) + 1
    lines.insert(index, line)
    path = tmp_path / "mine.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, index + 1


def test_a_duplicated_profile_key_names_file_line_section_and_key(tmp_path):
    path, line = _smoke_copy_with(tmp_path, after="train:", line="  lr: 5.0")
    with pytest.raises(DuplicateKeyError) as caught:
        load_profile(path, root=ROOT)
    message = str(caught.value)
    first = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("  lr: 0.02"))
    assert f"{path}, line {first}: duplicate key 'lr' in section 'train' (first given at line {line})" in message
    assert isinstance(caught.value, ValueError)


def test_a_duplicated_top_level_section_is_refused(tmp_path):
    path, line = _smoke_copy_with(tmp_path, after="results_dir: results/smoke", line="device: cpu")
    with pytest.raises(DuplicateKeyError, match=re.escape(f"{path}, line {line}: duplicate key 'device' "
                                                          "in the top level")):
        load_profile(path, root=ROOT)


def test_every_duplicate_at_any_depth_is_listed():
    text = "a:\n  b:\n    c: 1\n    c: 2\n  l:\n    - {x: 1, x: 2}\na: 3\n"
    with pytest.raises(DuplicateKeyError) as caught:
        load_yaml(text, source="nested.yaml")
    assert [(line, where, key) for line, where, key, _ in caught.value.duplicates] == [
        (4, "section 'a.b'", "c"), (6, "section 'a.l.0'", "x"), (7, "the top level", "a")]


def test_keys_are_compared_as_values():
    with pytest.raises(DuplicateKeyError, match="duplicate key True"):
        load_yaml("yes: 1\ntrue: 2\n")
    with pytest.raises(DuplicateKeyError, match="duplicate key 1.0"):
        load_yaml("1: a\n1.0: b\n")


def test_merge_keys_may_be_overridden():
    text = "base: &base {lr: 1, epochs: 2}\ntrain:\n  <<: *base\n  lr: 3\n"
    assert load_yaml(text) == yaml.safe_load(text) == {"base": {"lr": 1, "epochs": 2},
                                                       "train": {"lr": 3, "epochs": 2}}


def test_a_duplicated_chapter_parameter_is_refused(tmp_path):
    """Chapter defaults live in the chapter's parameters cell: a name given twice there is an error too."""
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "03_experts.py").write_text('# %% tags=["parameters"]\nclasses = "301-365"\nclasses = "1-100"\n')
    with pytest.raises(ValueError, match="classes is given twice"):
        chapter_parameters("03_experts", root=tmp_path)


def test_the_shipped_parameter_files_read_as_before():
    files = sorted((ROOT / "parameters").glob("*/*.yaml"))
    assert len(files) >= 4
    for path in files:
        assert read_yaml(path) == (yaml.safe_load(path.read_text()) or {}), path


def test_invalid_yaml_and_non_mappings_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match=re.escape(f"{bad}: invalid YAML")):
        read_yaml_mapping(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping at the top level, got list"):
        read_yaml_mapping(bad)
