"""setup_chapter: merged parameters on disk, seeds, device, offline plotly renderer."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.io as pio
import pytest
import torch

import o365lib.book
from o365lib.book.plotly_offline import DEFAULT_RENDERERS


def test_setup_chapter_writes_parameters_json(tmp_project):
    ctx = o365lib.book.setup_chapter("99_check", profile="smoke", beta="three", train__epochs=5, gamma=None)
    assert ctx.profile == "smoke" and ctx.device == "cpu"
    assert ctx.profile_dir == tmp_project / "results" / "smoke"
    assert ctx.results_dir == tmp_project / "results" / "smoke" / "99_check"
    assert ctx.params == {"alpha": 1, "beta": "three", "train__epochs": 5}
    record = json.loads((ctx.results_dir / "parameters.json").read_text())
    assert record["chapter"] == "99_check" and record["profile"] == "smoke"
    assert record["parameters"] == ctx.params
    assert record["config"]["train"]["epochs"] == 5 and record["config"]["alpha"] == 1
    assert record["config"]["data"]["root"] == str(tmp_project / "data" / "synthetic" / "smoke")
    assert record["profile_file"].endswith("parameters/profiles/smoke.yaml")
    assert set(record["versions"]) >= {"python", "torch", "torchvision", "o365lib"}
    assert ctx.cfg == record["config"]
    assert ctx.path("x.json") == ctx.results_dir / "x.json"


def test_setup_chapter_seeds_and_renderer(tmp_project):
    o365lib.book.setup_chapter("99_check", profile="smoke")
    first = torch.rand(3)
    pio.renderers.default = "json"
    o365lib.book.setup_chapter("99_check", profile="smoke")
    assert torch.equal(first, torch.rand(3))
    assert pio.renderers.default == DEFAULT_RENDERERS


def test_relative_paths_resolve_against_the_project_not_the_cwd(tmp_project, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    ctx = o365lib.book.setup_chapter("99_check", profile="smoke")
    assert Path(ctx.cfg["results_dir"]).is_absolute()
    assert ctx.results_dir.is_dir() and str(ctx.results_dir).startswith(str(tmp_project))


def test_bad_chapter_and_device(tmp_project):
    with pytest.raises(ValueError, match="plain folder name"):
        o365lib.book.setup_chapter("../escape", profile="smoke")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no GPU"):
            o365lib.book.setup_chapter("99_check", profile="smoke", device="cuda")


def test_rank_other_than_zero_does_not_write(tmp_project, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    ctx = o365lib.book.setup_chapter("99_check", profile="smoke")
    assert not ctx.parameters_file.exists()
