"""o365lib.book.studies.remedies: expert range pairs and folder keys (no training)."""

import pytest

from o365lib.book.artefacts import datasets
from o365lib.book.studies import remedies


@pytest.fixture
def ctx(monkeypatch):
    monkeypatch.setattr(datasets, "ranking", lambda ctx, track="full": {c: c for c in range(1, 366)})
    return object()


def test_pairs_follow_the_talk(ctx):
    assert remedies.expert_pair(ctx, "301-365") == ("301-365", "151-300")
    assert remedies.expert_pair(ctx, "151-300") == ("151-300", "301-365")
    assert remedies.expert_pair(ctx, 301) == ("301", "151-300")
    assert remedies.expert_pair(ctx, "1-100") == ("1-100", "301-365")
    with pytest.raises(ValueError, match="overlaps both of the talk's ranges"):
        remedies.expert_pair(ctx, "200-320")


def test_other_range_must_be_disjoint(ctx):
    with pytest.raises(ValueError, match="overlap"):
        remedies.expert_pair(ctx, "301-365", "300-310")
    with pytest.raises(ValueError, match="'abc'"):
        remedies.expert_pair(ctx, "abc")
    with pytest.raises(ValueError, match="en dash"):  # the typographic dash is named in the error
        remedies.expert_pair(ctx, "301–365")


def test_range_keys_and_bounds():
    assert remedies.range_key("1-150, 301-365") == "1-150_301-365"
    assert remedies.rank_bounds("301-365") == (301, 365)
