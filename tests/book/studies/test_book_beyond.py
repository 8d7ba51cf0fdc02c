"""Chapter 7's study: NorCal divides by training images per class unless the profile says instances."""

from __future__ import annotations

from types import SimpleNamespace

from o365lib.book.config.profiles import load_profile
from o365lib.book.studies import beyond


def test_norcal_counts_images_by_default_and_instances_on_request(root, monkeypatch):
    monkeypatch.setattr(beyond, "class_counts", lambda ctx: {"images": [5, 2], "instances": [50, 3]})
    ctx = SimpleNamespace(cfg=load_profile("smoke", root=root))
    assert beyond.norcal(ctx) == {"norcal_gamma": ctx.cfg.remedies.norcal_gamma, "class_counts": [5, 2]}
    ctx = SimpleNamespace(cfg=load_profile("smoke", root=root, overrides={"remedies__norcal_counts": "instances"}))
    assert beyond.norcal(ctx)["class_counts"] == [50, 3]
