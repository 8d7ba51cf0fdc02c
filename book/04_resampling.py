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
# # 4. Resampling the training data
#
# The ByteDance talk's second remedy changes what the model sees rather than which model answers:
# down-sample the images of the classes with huge instance counts. On Objects365 this lifted the
# tail (ranks 301-365) from 18.4 to 23.3 mAP but cost overall mAP (31.3 to 31.0): no gain overall.
# We compare it with the two samplers the field uses since: repeat-factor sampling (LVIS /
# detectron2: an image is repeated by the rarest class it contains, r(c) = max(1, sqrt(t / f(c))))
# and class-aware sampling (uniform over classes, then over their images).
#
# Every sampler starts from the same initialisation (the chapter 2 baseline of the same seed) and
# gets the same budget (the same number of iterations at the same learning rate); the uniform sampler
# is the control, so each sampler's effect is measured against more training of the same kind,
# paired by seed.

# %% tags=["parameters"]
profile = "default"

# %% tags=["hide-input"]
import o365lib.book
from o365lib import viz
from o365lib.book.artefacts import datasets
from o365lib.book.present import comparisons
from o365lib.book.run import records
from o365lib.book.studies import remedies

ctx = o365lib.book.setup_chapter("04_resampling", profile=profile, namespace=globals())
samplers = list(ctx.cfg.resampling.samplers)

# %% [markdown]
# ## What each sampler feeds the model
#
# Images containing each class drawn per epoch (the mean over several epochs of the actual draws),
# by class rank.

# %% tags=["hide-input"]
distributions = remedies.sampler_distributions(ctx, samplers)
viz.plot_class_distribution_compare(distributions, datasets.ranking(ctx),
                                    title="Images per class and epoch, by sampler")

# %% tags=["hide-input"]
comparisons.page_table(remedies.sampler_summary_table(ctx, distributions))

# %% [markdown]
# ## Same start, same budget, paired seeds

# %% tags=["hide-input"]
study = remedies.resampling_study(ctx, samplers)
effects = remedies.resampling_effects(ctx, study, control="uniform")
comparisons.effects_table(effects)

# %% tags=["hide-input"]
viz.plot_effects(effects, title="Each sampler against uniform sampling (mean over seeds, 95% interval)")

# %% tags=["hide-input"]
viz.plot_range_bars(study, title="Overall and per-range AP by sampler (mean ± std over seeds)")

# %% tags=["hide-input"]
comparisons.comparison_table(remedies.resampling_rows(ctx, study))

# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(
    ctx, summary=remedies.resampling_summary(study, effects),
    details={"effects": comparisons.effects_records(effects)})
