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
# # 1. A longer tail
#
# The ByteDance talk's first observation: going from COCO to Objects365 brings more classes (80 to 365)
# and more images (110k to 600k), but also a much longer tail. Sorted by number of training
# instances, Objects365's classes fall from two million boxes to a few dozen; the ratio of the
# most to the least frequent class grows from about 1,300 on COCO to about 76,000. The talk
# then groups classes by this rank into 1-150, 151-300 and 301-365 and looks at the rarest
# group, where tiny clustered objects (okra, scallop) stay at zero AP while large plain animals
# (donkey, polar bear) are found easily.
#
# This chapter measures the same things on the data set of the chosen profile.

# %% tags=["parameters"]
profile = "default"
examples_per_class = 1
image_columns = 4

# %% tags=["hide-input"]
import o365lib.book
from o365lib import data, viz
from o365lib.book.artefacts import datasets
from o365lib.book.present import report
from o365lib.book.run import records
from o365lib.book.studies import tail_tour

ctx = o365lib.book.setup_chapter("01_data_tail", profile=profile, namespace=globals(),
                                 examples_per_class=examples_per_class, image_columns=image_columns)

# %% [markdown]
# ## The class-instance distribution
#
# Every class of the training split, sorted by its number of instances (rank 1 = most
# frequent), on a log scale; the shaded bands are the talk's three rank ranges.

# %%
train = datasets.load_split(ctx, "train")
stats = data.tail_stats(train)
viz.plot_instance_distribution(stats, ranges=list(ctx.cfg.eval.ranges), log_y=True,
                               title="Training instances per class, sorted by rank")

# %% [markdown]
# ## How imbalanced?
#
# The talk's table (COCO and Objects365 training sets) with this data set added.

# %%
imbalance = data.imbalance_table(train, name="this data")
imbalance

# %%
report.markdown(
    "The most frequent class here has **{top}** training instances and the rarest **{bottom}**, "
    "a ratio of **{ratio}** (COCO: {coco}, Objects365: {o365}). The {classes} classes hold "
    "{instances} instances in {images} training images.",
    top=int(imbalance.loc["Max #Instance", "this data"]), bottom=int(imbalance.loc["Min #Instance", "this data"]),
    ratio=int(imbalance.loc["Max / Min", "this data"]), coco=int(imbalance.loc["Max / Min", "COCO"]),
    o365=int(imbalance.loc["Max / Min", "Objects365"]), classes=len(stats), instances=int(stats.instances.sum()),
    images=len(train.images))

# %% [markdown]
# ## The three rank ranges
#
# The talk trains its experts on these ranges; the tail range 301-365 is the one that
# collapses.

# %%
ranges = tail_tour.range_summary(stats, ranges=list(ctx.cfg.eval.ranges))
ranges

# %%
report.markdown(
    "The head range {head} holds **{head_share:.1f}%** of all training instances; the tail range "
    "{tail} holds **{tail_share:.2f}%**, {tail_min} to {tail_max} instances per class.",
    head=ranges.index[0], head_share=ranges["share %"].iloc[0], tail=ranges.index[-1],
    tail_share=ranges["share %"].iloc[-1], tail_min=int(ranges["min per class"].iloc[-1]),
    tail_max=int(ranges["max per class"].iloc[-1]))

# %% [markdown]
# ## Head and tail classes in pictures
#
# Frequent head classes, then the tail classes that look hardest (small boxes, many per image,
# like the talk's okra and scallop) and easiest (large, alone, like its donkey and polar bear),
# picked from the measured box sizes and objects per image, not by hand.

# %%
examples = tail_tour.pick_example_classes(train, stats, per_group=2)
examples

# %%
example_ids = data.example_image_ids(train, examples["category_id"].tolist(),
                                     per_class=ctx.params["examples_per_class"])
viz.plot_image_examples(train, example_ids, highlight_category_ids=examples["category_id"].tolist(),
                        cols=ctx.params["image_columns"],
                        title="Head, hard tail and easy tail classes (highlighted boxes)")

# %% [markdown]
# ## The tiny track
#
# The challenge's second track has 65 classes and far fewer images. The talk pre-trained on
# the full track before fine-tuning on it (chapter 6).

# %%
tiny = datasets.load_split(ctx, "tiny_train")
tiny_stats = data.tail_stats(tiny)
viz.plot_tiny_distribution(tiny_stats, title="Tiny track: training instances per class")

# %%
report.markdown_table(data.imbalance_table(tiny, name="tiny track")[["tiny track"]],
                                   caption="Tiny-track imbalance (training split):")

# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(
    ctx, summary={"max / min training instances per class": int(imbalance.loc["Max / Min", "this data"])},
    details={"classes": len(stats), "instances": int(stats.instances.sum()), "images": len(train.images)})
