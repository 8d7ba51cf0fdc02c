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
# The talk's tiny-track baseline starts from a COCO-pretrained *detector*: backbone, RPN and box heads
# already find objects, only the 65 classes are new. This chapter does the same. On the `objects365`
# profile that detector is mmdet's COCO checkpoint (`model.weights`); on the synthetic profiles it is a
# stand-in (`model.coco_standin`, see chapter 2): the same Cascade R-CNN trained on a generated set of
# classes disjoint from the 365. The baseline ("COCO detector start") copies every tensor of it but the
# classifier's class rows (only the background row is kept), as none of its classes is a tiny-track
# class; from mmdet's COCO checkpoint the rows of same-named classes are copied too. The alternative ("full-track start")
# copies every tensor of the full-track baseline of the same seed, and takes the classifier rows of the
# 65 classes from its full classifier by category id. Both get the same schedule, for every seed.
#
# `-p backbone_only True` adds a third arm that starts from the pretrained backbone alone, with fresh
# RPN and heads: how much of the full-track start's gain is only "a trained detector against an
# untrained one".

# %% tags=["parameters"]
profile = "default"
backbone_only = False

# %% tags=["hide-input"]
import o365lib.book
from o365lib import viz
from o365lib.book.present import comparisons, report, seed_stats
from o365lib.book.run import records
from o365lib.book.studies import accuracy_tricks

ctx = o365lib.book.setup_chapter("06_tiny_track", profile=profile, namespace=globals(), backbone_only=backbone_only)

# %% [markdown]
# ## A COCO detector start, or the full-track model

# %% tags=["hide-input"]
rows = accuracy_tricks.tiny_study(ctx, backbone_only=backbone_only)
start = accuracy_tricks.tiny_start_record(ctx)
report.markdown(accuracy_tricks.tiny_start_sentence(start))

# %% tags=["hide-input"]
comparisons.comparison_table(accuracy_tricks.tiny_rows(rows))

# %% tags=["hide-input"]
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
                  **{f"tiny track mAP, {accuracy_tricks.TINY_LABELS[arm]}":
                     seed_stats.seed_stat(seed_stats.values(rows[arm])) for arm in accuracy_tricks.TINY_LABELS
                     if arm in rows and arm != "full"},
                  "tiny track mAP, from full track": {**seed_stats.seed_stat(seed_stats.values(rows["full"])),
                                                      "verdict": effects[0][1].verdict},
                  **{f"final: {label}": seed_stats.seed_stat(values) for label, values, _ in final}},
    details={"effects": comparisons.effects_records(effects), "tta": accuracy_tricks.tta_options(ctx),
             "coco_start": start})
