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
# The seed's second remedy changes what the model sees rather than which model answers:
# down-sample the images of the classes with huge instance counts. On Objects365 this lifted
# the tail (ranks 301-365) from 18.4 to 23.3 mAP but cost overall mAP (31.3 to 31.0): no gain
# overall. We compare it with the two samplers the field uses since: repeat-factor sampling
# (LVIS / detectron2: an image is repeated by the rarest class it contains, r(c) = max(1,
# sqrt(t / f(c)))) and class-aware sampling (uniform over classes, then over their images).
#
# Every sampler starts from the same initialisation (the chapter 2 baseline) and gets the
# same budget (the same number of iterations at the same learning rate); the uniform sampler
# is the control, so each sampler's effect is measured against more training of the same kind.

# %% tags=["parameters"]
profile = "default"

# %%
import o365lib.book
from o365lib import viz
from o365lib.book import remedies, steps
from o365lib.book.seed import SEED

ctx = o365lib.book.setup_chapter("04_resampling", profile=profile)
samplers = ctx.cfg["resampling"]["samplers"]

# %% [markdown]
# ## What each sampler feeds the model
#
# Images containing each class drawn per epoch (the mean over several epochs of the actual
# draws), by class rank.

# %%
distributions = remedies.sampler_distributions(ctx, samplers)
viz.plot_class_distribution_compare(distributions, steps.ranking(ctx),
                                    title="Images per class and epoch, by sampler")

# %%
remedies.sampler_summary_table(ctx, distributions)

# %% [markdown]
# ## Same start, same budget
#
# Fine-tuning the baseline with each sampler.

# %%
baseline = steps.ensure_baseline(ctx)
runs = {name: remedies.ensure_resampled(ctx, name, base=baseline) for name in samplers}
metrics = {name: steps.evaluate_results(ctx, steps.ensure_predictions(ctx, run, split="val"), split="val",
                                        name=run.key) for name, run in runs.items()}
table = remedies.resampling_table(ctx, metrics, control="uniform")
table

# %%
viz.plot_range_bars(metrics, title="Overall and per-range AP by sampler (same start, same budget)")

# %%
head = table.loc["head_downsample"] if "head_downsample" in table.index else None
o365lib.book.report.markdown(
    "Head-class downsampling against the uniform control: tail 301-365 AP {tail_delta:+.1f} (seed: "
    "{seed_tail:+.1f}), overall mAP {all_delta:+.1f} (seed: {seed_all:+.1f}). Tail effect: **{tail_verdict}**; "
    "overall effect: **{all_verdict}**.",
    tail_delta=head["tail delta"], seed_tail=SEED["resample_tail"][1] - SEED["resample_tail"][0],
    all_delta=head["mAP delta"], seed_all=SEED["resample_overall"][1] - SEED["resample_overall"][0],
    tail_verdict=o365lib.book.compare.effect_verdict(head["tail delta"],
                                                     SEED["resample_tail"][1] - SEED["resample_tail"][0]),
    all_verdict=o365lib.book.compare.effect_verdict(head["mAP delta"],
                                                    SEED["resample_overall"][1] - SEED["resample_overall"][0]))

# %%
metrics_file = steps.write_chapter_metrics(
    ctx,
    summary={"tail 301-365 AP, resampling": float(head["AP 301-365"]), "mAP, resampling": float(head["mAP"]),
             "tail 301-365 AP, repeat factor": float(table.loc["repeat_factor", "AP 301-365"]),
             "mAP, repeat factor": float(table.loc["repeat_factor", "mAP"])},
    details={"table": table.reset_index().to_dict("records"), "models": {n: r.key for n, r in runs.items()}})
