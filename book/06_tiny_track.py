# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. The tiny track, and the final results
#
# The 2019 challenge had a second track with 65 classes and far fewer training images. The ByteDance
# talk's finding there: the general model helps. Initialising from the full-track model instead of
# the usual COCO-pretrained one gave +4.2 mAP, and the other tricks another +5.3. Here the tiny
# track's 65 classes are the full track's ranks 301-365 (the rarest ones), with a training set of
# their own.
#
# The talk's tiny-track baseline starts from COCO-pretrained weights; ours starts from the profile's
# pretrained backbone alone ("backbone only" below). The alternative starts from the full-track
# baseline of the same seed: every tensor is copied and the classifier rows of the 65 classes are
# taken from the full classifier by category id. Both get the same schedule, for every seed.

# %% tags=["parameters"]
profile = "default"

# %% tags=["hide-input"]
import o365lib.book
from o365lib import viz
from o365lib.book.present import comparisons, seed_stats
from o365lib.book.run import records
from o365lib.book.studies import accuracy_tricks

ctx = o365lib.book.setup_chapter("06_tiny_track", profile=profile, namespace=globals())

# %% [markdown]
# ## Backbone only, or the full-track model

# %% tags=["hide-input"]
rows = accuracy_tricks.tiny_study(ctx)
effects = accuracy_tricks.tiny_effects(rows)
comparisons.effects_table(effects)

# %% tags=["hide-input"]
viz.plot_effects(effects, title="Tiny track: paired effects (mean over seeds, 95% interval)")

# %% [markdown]
# ## Final results
#
# The final systems (full track: chapter 5's ensemble with TTA; tiny track: the one above) on the
# validation split and on a held-out test split that no choice in this book looked at, mean ± std
# over seeds.

# %% tags=["hide-input"]
final = accuracy_tricks.final_rows(ctx)
comparisons.comparison_table(final)

# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(
    ctx, summary={"tiny track mAP": seed_stats.seed_stat(seed_stats.values(rows["tricks"])),
                  "tiny track mAP, backbone only": seed_stats.seed_stat(seed_stats.values(rows["backbone"])),
                  "tiny track mAP, from full track": {**seed_stats.seed_stat(seed_stats.values(rows["full"])),
                                                      "verdict": effects[0][1].verdict},
                  **{f"final: {label}": seed_stats.seed_stat(values) for label, values, _ in final}},
    details={"effects": comparisons.effects_records(effects), "tta": accuracy_tricks.tta_options(ctx)})
