"""The artefact resolver: found and verified, else made once and timed; planning makes nothing."""

from __future__ import annotations

import json

import pytest

from o365lib.book.artefacts import resolver
from o365lib.book.artefacts.plan import plan_artefacts, plan_text
from o365lib.io import write_json


def _resolve(tmp_path, name="a", **kwargs):
    calls = []

    def make():
        calls.append(name)
        return {"value": len(calls)}

    value = resolver.resolve(tmp_path, kind="metrics", name=name, path=tmp_path / f"{name}.json", make=make,
                             write=lambda v, p: write_json(p, v), read=lambda p: json.loads(p.read_text()), **kwargs)
    return value, calls


def test_a_missing_artefact_is_made_once_then_found(tmp_path):
    first, calls = _resolve(tmp_path)
    again, calls_again = _resolve(tmp_path)
    assert first == again == {"value": 1}
    assert calls == ["a"] and calls_again == []
    made, found = resolver.LEDGER[-2:]
    assert made.made and made.seconds >= 0 and not found.made
    timings = resolver.last_timings(tmp_path)
    assert timings["a.json"]["kind"] == "metrics" and timings["a.json"]["made"] is True


def test_a_found_artefact_is_verified_before_reuse(tmp_path):
    _resolve(tmp_path)

    def broken(path):
        raise ValueError(f"{path} is truncated")

    with pytest.raises(ValueError, match="truncated"):
        _resolve(tmp_path, verify=broken)


def test_planning_lists_a_missing_artefact_without_making_it(tmp_path):
    with resolver.planning() as seen:
        value, calls = _resolve(tmp_path, name="b", planned="not yet")
    assert value == "not yet" and calls == [] and not (tmp_path / "b.json").exists()
    assert [(r.name, r.exists) for r in seen] == [("b", False)]


def test_planning_makes_cheap_artefacts(tmp_path):
    with resolver.planning():
        value, calls = _resolve(tmp_path, name="c", cheap=True)
    assert calls == ["c"] and value == {"value": 1}


def test_the_plan_gives_the_last_cost_of_a_missing_artefact(tmp_path):
    _resolve(tmp_path, name="d")
    timings = resolver.last_timings(tmp_path)
    timings["d.json"]["seconds"] = 42.0
    write_json(tmp_path / resolver.TIMINGS_FILE, timings)
    (tmp_path / "d.json").unlink()
    planned = plan_artefacts(tmp_path, [("02_x", lambda: _resolve(tmp_path, name="d")),
                                        ("03_y", lambda: _resolve(tmp_path, name="d"))])
    assert len(planned) == 1 and planned[0].chapter == "02_x" and planned[0].last_seconds == 42.0
    assert "to make" in plan_text(planned, profile_dir=tmp_path) and "last time 42 s" in plan_text(planned, profile_dir=tmp_path)


def test_an_unknown_kind_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown artefact kind"):
        resolver.resolve(tmp_path, kind="weights", name="x", path=tmp_path / "x", make=lambda: None)
