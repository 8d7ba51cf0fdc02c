"""The tiny track's COCO start: which file a profile names, and what a start from it copies."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from o365lib.book.artefacts import coco_standin
from o365lib.book.studies import accuracy_tricks
from o365lib.data.synthetic_coco import CocoStandinSpec, standin_categories
from o365lib.engine.checkpoint import save_atomic
from o365lib.modeling import build_detector
from o365lib.modeling.transfer import CLASSIFIER_SUFFIXES, init_detector_weights


def _ctx(*, weights=None, standin=None):
    model = SimpleNamespace(weights=weights, coco_standin=standin)
    return SimpleNamespace(cfg=SimpleNamespace(model=model), profile="test")


def test_coco_start_prefers_the_profile_weights_file(tmp_path):
    path = tmp_path / "coco.pth"
    path.write_bytes(b"x")
    assert coco_standin.coco_start(_ctx(weights=str(path), standin=object())) == path
    assert accuracy_tricks.tiny_baseline_start(_ctx(weights=str(path))) == "coco"
    with pytest.raises(FileNotFoundError, match="model.weights"):
        coco_standin.coco_start(_ctx(weights=str(tmp_path / "missing.pth")))


def test_without_a_detector_the_tiny_baseline_is_the_backbone_alone():
    ctx = _ctx()
    assert coco_standin.coco_start(ctx) is None
    assert accuracy_tricks.tiny_baseline_start(ctx) == "backbone"
    with pytest.raises(ValueError, match="no COCO detector start"):
        accuracy_tricks._coco_start(ctx)


def test_a_start_from_the_standin_copies_every_tensor_but_the_classes_rows(tmp_path):
    torch.manual_seed(0)
    standin_cats = standin_categories(CocoStandinSpec(num_classes=5))
    source = build_detector(len(standin_cats), backbone="tiny", fpn_channels=16, min_size=64, max_size=64)
    path: Path = save_atomic({"model": source.state_dict(), "iteration": 3, "finished": True}, tmp_path / "final.pt")
    target_cats = [{"id": 7, "name": "red solid circle"}, {"id": 9, "name": "blue striped star"}]
    target = build_detector(len(target_cats), backbone="tiny", fpn_channels=16, min_size=64, max_size=64)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    report = init_detector_weights(target, path, target_categories=target_cats)
    assert report["matched"] == {}  # no name in common
    mine, theirs = target.state_dict(), source.state_dict()
    classifiers = [k for k in mine if k.endswith(CLASSIFIER_SUFFIXES)]
    assert classifiers  # one per cascade stage (weight and bias)
    for name, tensor in mine.items():
        if name in classifiers:
            assert torch.equal(tensor[0], theirs[name][0]), name  # the background row is the start's
            assert torch.equal(tensor[1:], fresh[name][1:]), name  # the classes' rows stay fresh
        else:
            assert torch.equal(tensor, theirs[name]), name


def test_the_default_profile_standin_reaches_the_generated_set():
    from o365lib.book.config.profiles import load_profile

    cfg = load_profile("default")
    spec = coco_standin.standin_spec(SimpleNamespace(cfg=cfg))
    assert (spec.num_classes, spec.most, spec.fewest, spec.image_size) == (80, 500, 50, 128)
    changed = load_profile("default", overrides={"model__coco_standin__classes": 12})
    assert coco_standin.standin_spec(SimpleNamespace(cfg=changed)).num_classes == 12


def test_the_standin_draws_objects_as_large_as_the_detection_set(monkeypatch):
    from dataclasses import replace

    from o365lib.book.config.profiles import load_profile

    cfg = load_profile("default")
    name = cfg.data.synthetic_profile
    monkeypatch.setitem(coco_standin.PROFILES, name, replace(coco_standin.PROFILES[name], size_scale=1.5))
    assert coco_standin.standin_spec(SimpleNamespace(cfg=cfg)).size_scale == 1.5


def test_a_standin_needs_generated_data():
    from o365lib.book.config.mapping import ConfigError
    from o365lib.book.config.profiles import load_profile

    with pytest.raises(ConfigError, match="model.coco_standin"):
        load_profile("objects365", overrides={"model__coco_standin__classes": 12})
