"""Plotly figures of the book. Every ``plot_*`` returns a ``go.Figure`` and never shows or writes it.

Figures of results over several random seeds show the spread: error bars (std over seeds, or the
interval of a paired effect) and the seeds as points (``plot_range_bars``, ``plot_effects``,
``plot_ranked_remedies``).
"""

from o365lib.viz.budget_plots import plot_budget_curve, plot_probe
from o365lib.viz.data_plots import plot_image_examples, plot_instance_distribution, plot_tiny_distribution
from o365lib.viz.eval_plots import (
    plot_ap_change,
    plot_class_distribution_compare,
    plot_loss_curve,
    plot_per_class_ap,
    plot_range_bars,
)
from o365lib.viz.spread_plots import plot_effects, plot_ranked_remedies

__all__ = [
    "plot_ap_change",
    "plot_budget_curve",
    "plot_class_distribution_compare",
    "plot_effects",
    "plot_image_examples",
    "plot_instance_distribution",
    "plot_loss_curve",
    "plot_per_class_ap",
    "plot_probe",
    "plot_range_bars",
    "plot_ranked_remedies",
    "plot_tiny_distribution",
]
