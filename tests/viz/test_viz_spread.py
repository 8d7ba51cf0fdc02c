"""Figures that show the spread over random seeds: error bars, seeds as points, the talk's effect."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

from o365lib.book.present.comparisons import effects_records, paired_effect
from o365lib.viz.eval_plots import plot_range_bars
from o365lib.viz.spread_plots import plot_effects, plot_ranked_remedies


def _ev(overall, head, tail):
    return {"mAP": overall, "ranges": {"1-2": {"mAP": head}, "3-5": {"mAP": tail}}}


def test_range_bars_draw_mean_std_and_the_seeds():
    fig = plot_range_bars({"uniform": [_ev(10.0, 20.0, 1.0), _ev(12.0, 22.0, 3.0), _ev(14.0, 24.0, float("nan"))],
                           "rfs": _ev(11.0, 19.0, 4.0)},
                          talk={"uniform": {"overall": 31.3, "3-5": 18.4}, "peer": {"overall": 22.6}})
    assert [t.name for t in fig.data] == ["uniform", "rfs", "uniform (seeds)", "uniform (talk)", "peer (talk)"]
    bars, single, seeds, talk, peer = fig.data
    assert isinstance(bars, go.Bar) and list(bars.x) == ["overall", "1-2", "3-5"]
    assert list(bars.y) == [12.0, 22.0, 2.0]  # the NaN seed is left out of 3-5
    assert bars.error_y.visible and list(bars.error_y.array) == pytest.approx([2.0, 2.0, math.sqrt(2)])
    assert list(bars.customdata) == [3, 3, 2] and bars.text[0] == "12.0 ± 2.0"
    assert not single.error_y.visible and single.text[0] == "11.0"  # one value: no spread drawn
    assert list(seeds.x) == ["overall"] * 3 + ["1-2"] * 3 + ["3-5"] * 2
    assert list(seeds.y) == [10.0, 12.0, 14.0, 20.0, 22.0, 24.0, 1.0, 3.0] and seeds.offsetgroup == "uniform"
    assert list(talk.y) == [31.3, None, 18.4] and talk.offsetgroup == "uniform" and peer.offsetgroup is None


def test_effects_forest_plot():
    effects = [("expert, AP 3-5", paired_effect([1.0, 2.0, 3.0], [3.0, 4.5, 5.2], talk_effect=11.1)),
               ("merge", paired_effect([10.0, 11.0, 12.0], [10.1, 10.9, 12.05], talk_effect=0.3)),
               ("rfs vs uniform", paired_effect([5.0], [6.0], talk_effect=None))]
    fig = plot_effects(effects, title="T")
    names = [t.name for t in fig.data]
    assert names == ["reproduced", "inconclusive", "inconclusive (1 seed)", "per seed", "the talk"]
    reproduced = fig.data[0]
    e = effects[0][1]
    assert list(reproduced.y) == ["expert, AP 3-5"] and reproduced.x[0] == pytest.approx(e.diff_mean)
    assert reproduced.error_x.array[0] == pytest.approx(e.ci_high - e.diff_mean)
    assert reproduced.error_x.arrayminus[0] == pytest.approx(e.diff_mean - e.ci_low)
    assert reproduced.marker.color == "#2ca02c"
    assert list(fig.data[2].error_x.array) == [0.0]  # one seed: no interval to draw
    per_seed = fig.data[3]
    assert list(per_seed.x) == pytest.approx([2.0, 2.5, 2.2, 0.1, -0.1, 0.05, 1.0])
    assert list(per_seed.y) == ["expert, AP 3-5"] * 3 + ["merge"] * 3 + ["rfs vs uniform"]
    assert list(fig.data[4].x) == [11.1, 0.3] and fig.data[4].marker.symbol == "diamond"
    assert list(fig.layout.yaxis.categoryarray) == ["rfs vs uniform", "merge", "expert, AP 3-5"]  # first on top
    assert any(s.x0 == 0 and s.line.dash == "dash" for s in fig.layout.shapes)
    # the records written to metrics.json draw the same figure
    again = plot_effects(effects_records(effects))
    assert [t.name for t in again.data] == names and list(again.data[3].x) == list(per_seed.x)
    with pytest.raises(ValueError, match="no effects"):
        plot_effects([])


def test_ranked_remedies_from_values_and_from_effects():
    fig = plot_ranked_remedies({"uniform": [10.0, 12.0], "rfs": [13.0, 15.0, 14.0], "eqlv2": [10.5]},
                               control="uniform", metric="AP 3-5")
    bar, points = fig.data
    assert list(bar.y) == ["eqlv2", "uniform", "rfs"]
    assert list(fig.layout.yaxis.categoryarray) == ["eqlv2", "uniform", "rfs"]  # the last category is drawn on top
    means = dict(zip(bar.y, bar.x))
    assert means == {"uniform": 11.0, "rfs": 14.0, "eqlv2": 10.5}
    errors = dict(zip(bar.y, bar.error_x.array))
    assert errors["rfs"] == pytest.approx(1.0) and errors["uniform"] == pytest.approx(math.sqrt(2)) \
        and errors["eqlv2"] == 0.0
    assert dict(zip(bar.y, bar.marker.color))["uniform"] == "#7f7f7f"
    assert sorted(points.x) == [10.0, 10.5, 12.0, 13.0, 14.0, 15.0]
    assert fig.layout.shapes[0].x0 == 11.0 and fig.layout.xaxis.title.text == "AP 3-5"

    e_good = paired_effect([1.0, 2.0, 3.0], [2.0, 3.5, 4.0], talk_effect=None)
    e_bad = paired_effect([1.0, 2.0, 3.0], [0.5, 2.0, 2.5], talk_effect=None)
    fig = plot_ranked_remedies([("rfs", e_good), ("downsample", e_bad)], metric="Δ AP")
    bar = fig.data[0]
    assert list(bar.y) == ["downsample", "rfs"]
    assert bar.error_x.arrayminus[1] == pytest.approx(e_good.diff_mean - e_good.ci_low)
    assert sorted(fig.data[1].x) == sorted(e_good.diffs + e_bad.diffs)
    assert list(plot_ranked_remedies({"a": [1.0], "b": [2.0]}, higher_is_better=False).data[0].y) == ["b", "a"]
    columns = {"rfs": {"mAP": [3.0, 5.0], "AP 3-5": [1.0, 2.0]}, "ce": {"mAP": [1.0, None], "AP 3-5": [0.0, 0.0]}}
    by_column = plot_ranked_remedies(columns, metric="AP 3-5").data[0]
    assert list(by_column.y) == ["ce", "rfs"] and list(by_column.x) == [0.0, 1.5]
    assert list(plot_ranked_remedies(columns, metric="mAP").data[0].x) == [1.0, 4.0]  # the missing seed left out
    with pytest.raises(ValueError, match="neither 'values' nor a 'AP 1-2' column"):
        plot_ranked_remedies(columns, metric="AP 1-2")
    with pytest.raises(ValueError, match="control 'x'"):
        plot_ranked_remedies({"a": [1.0]}, control="x")
    with pytest.raises(ValueError, match="row 'a' has no values"):
        plot_ranked_remedies({"a": []})
