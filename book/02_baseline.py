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
# The ByteDance talk starts from what worked on COCO: Cascade R-CNN (three stages at IoU 0.5, 0.6
# and 0.7, each refining the previous stage's boxes) with an FPN on a ResNeXt-101 64x4d backbone.
# That model reaches 44.7 mAP on COCO but only 29.5 on Objects365 val, and the loss is not spread
# evenly: AP falls with the class rank, and 39 of the 65 rarest classes (ranks 301-365) score
# exactly zero.
#
# This chapter trains the same architecture on the profile's data, once per random seed of the
# profile, evaluates it on the validation split and looks at where it fails. On the default profile
# the backbone is a small ResNet-like network sized for a 2-core CPU. Like the talk's
# ImageNet-pretrained backbone, it starts from weights pretrained on a recognition task whose
# classes are *disjoint* from the 365 detection classes (generated shapes the detector never has
# to find, see `o365lib.pretrain`), so no detection class is seen before detection training.
# Every number below is the mean over the seeds, with its standard deviation.
#
# The talk goes one step further: ImageNet, then 12 epochs of COCO, then Objects365. The `objects365`
# profile does the same with mmdet's COCO Cascade R-CNN checkpoint (`model.weights`). The synthetic
# profiles have no COCO, so they make a **stand-in** (`model.coco_standin`,
# `o365lib.book.artefacts.coco_standin`): this detector, trained from the same pretrained backbone
# on a generated detection set whose classes are made of those disjoint shapes (80 classes on the
# default profile, as many as COCO's). On the default profile the full-track baseline below
# starts from the backbone, as before; the stand-in is the start of the tiny track's baseline in
# chapter 6, where the talk's comparison (COCO start against full-track start) needs it.

# %% tags=["parameters"]
profile = "default"
examples_per_group = 2

# %% tags=["hide-input"]
import o365lib.book
from o365lib import data, evaluation, viz
from o365lib.book.artefacts import datasets, models, predictions
from o365lib.book.present import comparisons, report, seed_stats
from o365lib.book.run import records
from o365lib.book.studies import tail_tour

ctx = o365lib.book.setup_chapter("02_baseline", profile=profile, namespace=globals(),
                                 examples_per_group=examples_per_group)

# %% [markdown]
# ## Training
#
# The baseline trains from the profile's initialisation with the profile's schedule (SGD with
# momentum, linear warm-up, two 10x learning-rate drops), once per seed. A checkpoint with the same
# specification (settings, seed, data content, initial weights) is loaded instead of retrained.

# %% tags=["hide-input"]
baselines = models.ensure_baselines(ctx)
viz.plot_loss_curve(baselines[0].losses, title=f"Baseline training loss (seed {baselines[0].seed})", smooth=0.9)

# %% [markdown]
# ## The regime: overall, per-range and fixed AP
#
# COCO box AP (IoU 0.5:0.95) on the validation split, the mean AP of the classes in each class-rank
# range (ranks from training instance counts), the number of tail classes at exactly zero AP, and
# *fixed AP* (Dave et al. 2021): per class the top-K detections over the whole split, with no
# per-image cap, so that classes do not compete for an image's 100 slots.

# %% tags=["hide-input"]
per_seed = [predictions.model_metrics(ctx, run) for run in baselines]
regime = seed_stats.regime_rows(ctx, per_seed)
comparisons.comparison_table(regime)

# %% tags=["hide-input"]
report.markdown(seed_stats.regime_sentence(ctx, per_seed))

# %% [markdown]
# ## AP along the class ranking
#
# Each bar is one class (first seed), ordered by its training instance count (line, right axis).

# %% tags=["hide-input"]
train = datasets.load_split(ctx, "train")
rank_of = datasets.ranking(ctx)
per_class = evaluation.per_class_table(per_seed[0], rank_of, datasets.category_names(ctx))
viz.plot_per_class_ap(per_class, counts=data.tail_stats(train), ranges=list(ctx.cfg.eval.ranges),
                      title="Baseline AP per class, by training-instance rank")

# %% [markdown]
# ## The zero-AP tail classes
#
# The classes of ranks 301-365 that the baseline (first seed) never detects at any IoU threshold,
# with their training instances and the style the generator gave them.

# %% tags=["hide-input"]
tail_table = tail_tour.tail_class_table(per_class, train, spec="301-365")
comparisons.page_table(tail_table[tail_table["ap"] == 0])

# %% [markdown]
# ## Easiest and hardest tail classes
#
# The talk found the zero-AP tail classes to be small, heavily clustered objects (okra, scallop)
# and the best ones large animals with simple appearance (donkey, polar bear). Below, the hardest
# and easiest classes of ranks 301-365 by measured AP, with validation images: the ground-truth
# boxes of the class and the baseline's detections of it (score >= 0.3).

# %% tags=["hide-input"]
extremes = tail_tour.extreme_classes(tail_table, per_group=ctx.params["examples_per_group"])
comparisons.page_table(extremes)

# %% tags=["hide-input"]
val = datasets.load_split(ctx, "val")
example_ids = data.example_image_ids(val, extremes["category_id"].tolist(), per_class=1)
viz.plot_image_examples(val, example_ids, highlight_category_ids=extremes["category_id"].tolist(),
                        detections=predictions.ensure_predictions(ctx, baselines[0], split="val"),
                        score_threshold=0.3, cols=4,
                        title="Hardest (first) and easiest tail classes: ground truth and detections")

# %% tags=["hide-input"]
report.markdown(
    "Mean box area of the {n} hardest tail classes: **{hard_area}** px; of the {n} easiest: "
    "**{easy_area}** px. Objects per image for the hardest: **{hard_obj}**, for the easiest: **{easy_obj}**.",
    n=ctx.params["examples_per_group"],
    hard_area=extremes[extremes.group == "hardest"]["mean box area"].mean(),
    easy_area=extremes[extremes.group == "easiest"]["mean box area"].mean(),
    hard_obj=extremes[extremes.group == "hardest"]["objects per image"].mean(),
    easy_obj=extremes[extremes.group == "easiest"]["objects per image"].mean())

# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(
    ctx, summary=seed_stats.regime_summary(ctx, per_seed),
    details={"models": [run.key for run in baselines], "regime": regime})
