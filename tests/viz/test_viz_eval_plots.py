"""What a reader sees in the evaluation plots: labels that do not overlap, axes that are not cut off."""

from __future__ import annotations

import pandas as pd

from o365lib.viz.eval_plots import plot_per_class_ap, plot_range_bars


def _ev(overall, tail):
    return {"mAP": overall, "ranges": {"1-150": {"mAP": overall + 5}, "301-365": {"mAP": tail}}}


def test_grouped_bar_labels_stand_upright_with_room_above():
    fig = plot_range_bars({"general": [_ev(20.0, 2.0), _ev(22.0, 4.0)], "+ expert": [_ev(21.0, 9.0)],
                           "+ both": [_ev(23.0, 8.0)]})
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 3 and all(b.textangle == -90 and b.cliponaxis is False for b in bars)
    highest = max(m + s for b in bars for m, s in zip(b.y, b.error_y.array))
    assert fig.layout.yaxis.range[1] > 1.3 * highest


def test_the_training_instances_axis_gets_its_own_margin():
    per_class = pd.DataFrame({"category_id": [1, 2, 3], "name": ["a", "b", "c"], "rank": [1, 2, 3],
                              "ap": [30.0, 10.0, 0.0]})
    fig = plot_per_class_ap(per_class, counts={1: 1000, 2: 100, 3: 10}, ranges=("1-2", "3-3"))
    assert fig.layout.yaxis2.automargin is True and fig.layout.yaxis2.title.text == "training instances"
    assert fig.layout.margin.r >= 60


def test_every_plot_function_is_exported_by_viz():
    """A ``plot_*`` defined in a viz module but missing from ``o365lib.viz`` is a figure chapters cannot reach."""
    import inspect

    from o365lib import viz
    from o365lib.viz import budget_plots, data_plots, eval_plots, spread_plots

    defined = {name for module in (budget_plots, data_plots, eval_plots, spread_plots)
               for name, fn in inspect.getmembers(module, inspect.isfunction)
               if name.startswith("plot_") and fn.__module__ == module.__name__}
    assert defined == set(viz.__all__)
    assert all(getattr(viz, name) is getattr(module, name) for module in (budget_plots, data_plots, eval_plots, spread_plots)
               for name in defined if hasattr(module, name) and getattr(module, name).__module__ == module.__name__)
