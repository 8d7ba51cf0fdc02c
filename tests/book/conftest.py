"""Shared fixtures of the book tests: the project root and a throw-away project with a profile."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def tmp_project(tmp_path, monkeypatch) -> Path:
    """A minimal project (parameters/ copied from the real one) that setup_chapter resolves against."""
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "99_check.py").write_text('# %% tags=["parameters"]\nprofile = "default"\nalpha = 1\nbeta = "two"\n\n# %%\nx = 1\n')
    monkeypatch.setenv("O365BOOK_ROOT", str(tmp_path))
    return tmp_path
