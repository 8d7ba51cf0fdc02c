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
# # Scaling object detection to more categories
#
# In 2019 the ByteDance AI Lab team (Y. Lu, B. Xiao, Z. Gong, X. Zhang, H. Guo, L. Wen) entered
# the Objects365 detection challenge with a talk titled *Scaling Object Detection up to More
# Categories*. Objects365 has 365 classes instead of COCO's 80 and about 600k training images
# instead of 110k, but its class distribution has a far longer tail: the most frequent class
# has over two million boxes, the rarest a few dozen. A detector that scores 44.7 mAP on COCO
# (Cascade R-CNN, ResNeXt-101 64x4d, FPN, deformable convolutions) reached only 29.5 on
# Objects365, and 39 of the 65 rarest classes (ranks 301-365) had an AP of zero.
#
# The team tried two remedies for the tail, **expert models** fine-tuned on a class-rank range
# and **data resampling** that down-samples the head classes, then stacked the usual tricks
# (a better pre-trained backbone, multi-scale training and testing, soft-NMS, ensembles) and
# pre-trained the 65-class *tiny track* on the full track.
#
# This book reproduces each step with one library, `o365lib`, at three scales chosen by a
# parameter profile: `smoke` (CI, minutes), `default` (an embedded synthetic long-tailed
# data set with 365 classes, the whole book, several random seeds per comparison, on a 2-core CPU) and
# `gpu` / `objects365` (the talk's recipe on real Objects365 files you provide). Every model a
# comparison rests on is trained with several random seeds, and every verdict comes from the
# interval of the paired differences, not from a fixed threshold.
#
# **How to use it.** Every chapter is a notebook that runs alone: it generates the data or
# trains the models it needs when they are missing, and writes its results and the exact
# parameters it ran with under `results/<profile>/<chapter>/`. Run one with papermill, e.g.
# `papermill book/03_experts.ipynb out.ipynb -p profile default -p classes 301-365`, or the
# whole book with `make book`. The chapters:
#
# ```{tableofcontents}
# ```

# %% tags=["parameters"]
profile = "default"

# %% tags=["hide-input"]
import o365lib.book
from o365lib.book.present import comparisons, report
from o365lib.book.run import records

ctx = o365lib.book.setup_chapter("00_intro", profile=profile, namespace=globals())

# %% [markdown]
# ## Results at a glance
#
# Our numbers (profile shown below, mean ± std over random seeds) next to the talk's on
# Objects365 v1 val, with the verdict of each tested effect. Rows no chapter
# has measured yet read "not run". The synthetic data is much smaller than Objects365, so
# compare directions and gaps, not absolute values.

# %% tags=["remove-input"]
report.markdown("Profile **{profile}**, results read from `{folder}`.",
                             profile=ctx.profile, folder=ctx.shown(ctx.profile_dir))

# %% tags=["remove-input"]
failed = report.failed_runs(ctx.profile_dir)
failed if len(failed) else report.markdown("Every chapter's latest run succeeded.")

# %% tags=["remove-input"]
report.results_summary(ctx.profile_dir)

# %% [markdown]
# ## What this book cost
#
# The time of each chapter in its latest run, on the machine that ran it, from
# `results/<profile>/timings.json` (the runner writes it after every chapter; a chapter that found
# its models cached takes seconds), and every trained model with its own training time.
# %% tags=["remove-input"]
comparisons.page_table(o365lib.book.run.timings.chapter_table(ctx.profile_dir), digits=1)
# %% tags=["remove-input"]
comparisons.page_table(o365lib.book.run.timings.artefact_table(ctx.profile_dir), digits=1)
# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(ctx, summary={})
