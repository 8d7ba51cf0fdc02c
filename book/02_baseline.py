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
# # 2. The baseline: a COCO recipe on 365 classes
#
# The seed starts from what worked on COCO: Cascade R-CNN (three stages at IoU 0.5, 0.6 and
# 0.7, each refining the previous stage's boxes) with an FPN on a ResNeXt-101 64x4d backbone.
# That model reaches 44.7 mAP on COCO but only 29.5 on Objects365 val, and the loss is not
# spread evenly: AP falls with the class rank, and 39 of the 65 rarest classes (ranks 301-365)
# score exactly zero.
#
# This chapter trains the same architecture on the profile's data, evaluates it on the
# validation split and looks at where it fails. On the default profile the backbone is a small
# ResNet-like network at 128 px, sized for a 2-core CPU; like the seed's ImageNet-pretrained
# backbone it starts from weights pretrained on a class-balanced recognition task (here:
# generated object crops, see `o365lib.pretrain`), and the detector is then trained for one
# epoch. The checkpoint it saves is the starting point of the expert and resampling chapters.

# %% tags=["parameters"]
profile = "default"
examples_per_group = 2

# %%
import o365lib.book
from o365lib import data, evaluation, viz
from o365lib.book import steps
from o365lib.book.seed import SEED

ctx = o365lib.book.setup_chapter("02_baseline", profile=profile, examples_per_group=examples_per_group)

# %% [markdown]
# ## Training
#
# The baseline trains from the profile's initialisation with the profile's schedule (SGD with
# momentum, linear warm-up, two 10x learning-rate drops). When a checkpoint with the same
# specification exists in the results folder it is loaded instead.

# %%
baseline = steps.ensure_baseline(ctx)
viz.plot_loss_curve(baseline.losses, title="Baseline training loss", smooth=0.9)

# %% [markdown]
# ## Overall and per-range AP
#
# COCO box AP (IoU 0.5:0.95) on the validation split, and the mean AP of the classes in each
# class-rank range (ranks from training instance counts).

# %%
results = steps.ensure_predictions(ctx, baseline, split="val")
metrics = steps.evaluate_results(ctx, results, split="val", name=baseline.key)
ranges = ctx.cfg["eval"]["ranges"]
o365lib.book.compare.comparison_table(
    [("mAP (all classes)", metrics["mAP"], SEED["baseline_map"])]
    + [(f"AP ranks {r}", metrics["ranges"][r]["mAP"], SEED["expert_tail_before"] if r == "301-365" else None)
       for r in ranges]
    + [("zero-AP classes in 301-365", metrics["ranges"]["301-365"]["zero_ap"], SEED["tail_zero_ap"])])

# %%
head, tail = metrics["ranges"][ranges[0]], metrics["ranges"][ranges[-1]]
o365lib.book.report.markdown(
    "Our baseline reaches **{map}** mAP (seed: {seed_map} on Objects365). The head ranks {head_r} score "
    "**{head_ap}** and the tail ranks {tail_r} **{tail_ap}** (seed: {seed_tail}), a gap of {gap} points: "
    "**{verdict}** that AP falls with the class rank. {zero} of the {n_tail} tail classes have zero AP "
    "(seed: {seed_zero} of {seed_n}).",
    map=metrics["mAP"], seed_map=SEED["baseline_map"], head_r=ranges[0], head_ap=head["mAP"],
    tail_r=ranges[-1], tail_ap=tail["mAP"], seed_tail=SEED["expert_tail_before"],
    gap=head["mAP"] - tail["mAP"],
    verdict="the seed's finding reproduces" if head["mAP"] > tail["mAP"] else "the seed's finding does not reproduce",
    zero=tail["zero_ap"], n_tail=tail["num_classes"], seed_zero=SEED["tail_zero_ap"], seed_n=SEED["tail_num_classes"])

# %% [markdown]
# ## AP along the class ranking
#
# Each bar is one class, ordered by its training instance count (line, right axis).

# %%
train = steps.load_split(ctx, "train")
rank_of = steps.ranking(ctx)
names = {c["id"]: c["name"] for c in train.dataset["categories"]}
per_class = evaluation.per_class_table(metrics, rank_of, names)
viz.plot_per_class_ap(per_class, counts=data.tail_stats(train), ranges=ranges,
                      title="Baseline AP per class, by training-instance rank")

# %% [markdown]
# ## The zero-AP tail classes
#
# The classes of ranks 301-365 that the baseline never detects at any IoU threshold, with
# their training instances and the style the generator gave them.

# %%
tail_table = o365lib.book.tail_tour.tail_class_table(per_class, train, spec="301-365")
tail_table[tail_table["ap"] == 0]

# %% [markdown]
# ## Easiest and hardest tail classes
#
# The seed found the zero-AP tail classes to be small, heavily clustered objects (okra,
# scallop) and the best ones large animals with simple appearance (donkey, polar bear). Below,
# the hardest and easiest classes of ranks 301-365 by measured AP, with validation images: the
# ground-truth boxes of the class and the baseline's detections of it (score >= 0.3).

# %%
extremes = o365lib.book.tail_tour.extreme_classes(tail_table, per_group=ctx.params["examples_per_group"])
extremes

# %%
val = steps.load_split(ctx, "val")
example_ids = data.example_image_ids(val, extremes["category_id"].tolist(), per_class=1)
viz.plot_image_examples(val, example_ids, highlight_category_ids=extremes["category_id"].tolist(),
                        detections=results, score_threshold=0.3, cols=4,
                        title="Hardest (first) and easiest tail classes: ground truth and detections")

# %%
o365lib.book.report.markdown(
    "Mean box area of the {n} hardest tail classes: **{hard_area}** px; of the {n} easiest: "
    "**{easy_area}** px. Objects per image for the hardest: **{hard_obj}**, for the easiest: **{easy_obj}**.",
    n=ctx.params["examples_per_group"],
    hard_area=extremes[extremes.group == "hardest"]["mean box area"].mean(),
    easy_area=extremes[extremes.group == "easiest"]["mean box area"].mean(),
    hard_obj=extremes[extremes.group == "hardest"]["objects per image"].mean(),
    easy_obj=extremes[extremes.group == "easiest"]["objects per image"].mean())

# %%
metrics_file = steps.write_chapter_metrics(
    ctx,
    summary={"baseline mAP": metrics["mAP"], "tail 301-365 AP": tail["mAP"],
             "tail 301-365 zero-AP classes": tail["zero_ap"]},
    details={"model": baseline.key, "metrics": metrics["ranges"], "AP50": metrics["AP50"]})
