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
# # 5. The remaining gains: pretraining, multi-scale, soft-NMS, ensembles
#
# The ByteDance talk's ablation, in its order, each row adding one trick to the row above: a better
# pretrained backbone (+0.6 mAP), multi-scale training (+0.9), multi-scale testing with soft-NMS
# (+1.4) and a model ensemble (+0.9).
#
# No weights can be downloaded here. On the generated data the baseline's backbone is pretrained as
# a classifier of generated shapes that are *disjoint* from the 365 detection classes (the role
# ImageNet plays for Objects365: a recognition task without Objects365's label set); "better
# pretrained" means a larger and longer pretraining of the same kind (`accuracy_tricks.pretrain` in the
# profile; the table below compares the two). With real data, `accuracy_tricks.backbone_weights` names a
# local weights file instead. Each row is trained with every seed of the profile and compared with
# the row before it, paired by seed.

# %% tags=["parameters"]
profile = "default"

# %% tags=["hide-input"]
import o365lib.book
from o365lib import viz
from o365lib.book.present import comparisons
from o365lib.book.run import records
from o365lib.book.studies import accuracy_tricks

ctx = o365lib.book.setup_chapter("05_tricks", profile=profile, namespace=globals())

# %% [markdown]
# ## Two pretrainings
#
# The crop classifier's accuracy on held-out crops after the last epoch.

# %% tags=["hide-input"]
comparisons.page_table(accuracy_tricks.pretraining_table(ctx), integer_columns=["crops per class", "epochs"])

# %% [markdown]
# ## The ablation
#
# Validation mAP of each row, and each trick's paired gain over the row above (mean over seeds,
# 95% interval); the verdict follows from the interval.

# %% tags=["hide-input"]
rows = accuracy_tricks.ablation_study(ctx)
effects = accuracy_tricks.ablation_effects(rows)
comparisons.effects_table(effects)

# %% tags=["hide-input"]
viz.plot_effects(effects, title="Each trick against the row before it (mean over seeds, 95% interval)")

# %% tags=["hide-input"]
viz.plot_range_bars(rows, title="Overall and per-range AP along the ablation (mean ± std over seeds)")

# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(
    ctx, summary=accuracy_tricks.ablation_summary(rows, effects),
    details={"effects": comparisons.effects_records(effects), "tta": accuracy_tricks.tta_options(ctx)})
