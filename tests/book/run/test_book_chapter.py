"""setup_chapter: parameters checked (papermill typos are errors), overrides, seeds, device, renderer."""

from __future__ import annotations

import types
from pathlib import Path

import plotly.io as pio
import pytest
import torch

import o365lib.book
from o365lib.book.config.mapping import ConfigError
from o365lib.book.run.plotly_offline import DEFAULT_RENDERERS
from o365lib.book.run.records import write_chapter_record


def test_setup_chapter_merges_yaml_defaults_and_overrides(tmp_project):
    ctx = o365lib.book.setup_chapter("99_check", profile="smoke", namespace={"train__epochs": 5},
                                     alpha=None, beta="three")
    assert ctx.profile == "smoke" and ctx.device == "cpu"
    assert ctx.profile_dir == tmp_project / "results" / "smoke"
    assert ctx.results_dir == tmp_project / "results" / "smoke" / "99_check"
    assert ctx.params == {"alpha": 1, "beta": "three"}
    assert ctx.cfg.train.epochs == 5.0 and ctx.overrides == {"train__epochs": 5}
    assert ctx.cfg.data.root == str(tmp_project / "data" / "synthetic" / "smoke")
    assert ctx.path("x.json") == ctx.results_dir / "x.json"


def test_nothing_is_written_until_the_chapter_succeeds(tmp_project):
    ctx = o365lib.book.setup_chapter("99_check", profile="smoke", alpha=None, beta=None)
    assert not (ctx.results_dir / "parameters.json").exists()
    write_chapter_record(ctx, summary={"x": 1.0})
    import json

    record = json.loads((ctx.results_dir / "parameters.json").read_text())
    assert record["chapter"] == "99_check" and record["parameters"] == {"alpha": 1, "beta": "two"}
    assert record["config"]["train"]["epochs"] == ctx.cfg.train.epochs
    assert set(record["versions"]) >= {"python", "torch", "torchvision", "o365lib"}


def test_unknown_papermill_parameter_is_an_error_naming_the_known_ones(tmp_project):
    namespace = {"profile": "smoke", "alpha": 1, "beta": "x", "clases": "151-300", "np": types.ModuleType("np"),
                 "_i1": "kernel", "In": [], "get_ipython": print}
    with pytest.raises(ConfigError, match=r"clases.*this chapter's parameters: \['alpha', 'beta', 'profile'\]"):
        o365lib.book.setup_chapter("99_check", profile="smoke", namespace=namespace, alpha=1, beta="x")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("train__epochs", -1, r"train\.epochs: must be > 0"),
    ("train__batch_size", 0, r"train\.batch_size: must be >= 1"),
    ("train__lr", "abc", r"train\.lr: expected a number"),
    ("experts__epoch", 2, r"experts__epoch: not a profile value.*experts__epochs"),
])
def test_bad_overrides_fail_before_anything_runs(tmp_project, name, value, message):
    with pytest.raises(ConfigError, match=message):
        o365lib.book.setup_chapter("99_check", profile="smoke", namespace={name: value}, alpha=None, beta=None)
    assert not (tmp_project / "results").exists() or not any((tmp_project / "results").rglob("*.json"))


def test_a_default_the_call_does_not_declare_is_an_error(tmp_project):
    (tmp_project / "book" / "98_typo.py").write_text('# %% tags=["parameters"]\nclases = "151-300"\n')
    with pytest.raises(ConfigError, match=r"98_typo\.py: clases: not a parameter of chapter 98_typo"):
        o365lib.book.setup_chapter("98_typo", profile="smoke", classes="301-365")


def test_setup_chapter_seeds_and_renderer(tmp_project):
    o365lib.book.setup_chapter("99_check", profile="smoke", alpha=None, beta=None)
    first = torch.rand(3)
    pio.renderers.default = "json"
    o365lib.book.setup_chapter("99_check", profile="smoke", alpha=None, beta=None)
    assert torch.equal(first, torch.rand(3))
    assert pio.renderers.default == DEFAULT_RENDERERS


def test_relative_paths_resolve_against_the_project_not_the_cwd(tmp_project, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    ctx = o365lib.book.setup_chapter("99_check", profile="smoke", alpha=None, beta=None)
    assert Path(ctx.cfg.results_dir).is_absolute()
    assert ctx.results_dir.is_dir() and str(ctx.results_dir).startswith(str(tmp_project))


def test_bad_chapter_and_device(tmp_project):
    with pytest.raises(ValueError, match="plain folder name"):
        o365lib.book.setup_chapter("../escape", profile="smoke")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no GPU"):
            o365lib.book.setup_chapter("99_check", profile="smoke", namespace={"device": "cuda"}, alpha=None,
                                       beta=None)
