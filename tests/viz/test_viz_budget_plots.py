"""Budget curves (mean ± std over seeds at each budget, seeds as points) and probe lines."""

from __future__ import annotations

import pytest

from o365lib.viz import plot_budget_curve, plot_probe


def test_budget_curve_draws_the_mean_the_std_and_every_seed():
    fig = plot_budget_curve({"softmax CE": {0.2: [40.0, 42.0], 2.0: [46.0, 48.0]},
                             "EQLv2": {2.0: [50.0], 0.2: [20.0]}}, control="softmax CE")
    ce, ce_seeds, eql, eql_seeds = fig.data
    assert list(ce.x) == [0.2, 2.0] and list(ce.y) == [41.0, 47.0]
    assert list(ce.error_y.array) == pytest.approx([2 ** 0.5, 2 ** 0.5]) and ce.line.dash == "dash"
    assert list(ce_seeds.y) == [40.0, 42.0, 46.0, 48.0]
    assert list(eql.x) == [0.2, 2.0] and list(eql.y) == [20.0, 50.0]  # budgets sorted
    assert list(eql.error_y.array) == [0.0, 0.0] and eql.line.dash == "solid"  # one seed: no spread drawn
    assert len(eql_seeds.y) == 2
    with pytest.raises(ValueError, match="no rows"):
        plot_budget_curve({})


def test_probe_draws_each_column_against_the_iteration():
    records = [{"iteration": 0, "a": 1.0, "b": 0.5}, {"iteration": 10, "a": 0.4, "b": 0.2}]
    fig = plot_probe(records, columns=["a", "b"])
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == [0.5, 0.2]
    assert list(fig.data[0].x) == [0, 10]
    with pytest.raises(ValueError, match="no column"):
        plot_probe(records, columns=["c"])
