from o365lib.viz.data_plots import plot_image_examples, plot_instance_distribution, plot_tiny_distribution
from o365lib.viz.eval_plots import (
    plot_ap_change,
    plot_class_distribution_compare,
    plot_loss_curve,
    plot_per_class_ap,
    plot_range_bars,
)
