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
# # Evaluate your own detector
#
# Everything this book measures about the long tail is one command away for any detector that writes
# COCO results (mmdetection, detectron2, torchvision, ...):
#
# ```bash
# o365-eval val.json results.json --train train.json --fixed-ap --html report.html --json metrics.json
# o365-eval val.json baseline.json --compare expert.json --train train.json --html change.html
# ```
#
# (`python -m o365lib.evaluation` is the same command.) It prints the standard COCO numbers, the
# per-class AP read along the class ranking of the training set (rank ranges, zero-AP classes),
# LVIS's rare / common / frequent buckets, fixed AP, and, with `--compare`, the per-class and
# per-range differences between two result files with paired bootstrap intervals over images. On
# LVIS-format ground truth (images with `neg_category_ids` / `not_exhaustive_category_ids`) it
# switches to the LVIS protocol, whose numbers equal lvis-api's. `--html` writes one self-contained
# page that works offline.
#
# This page runs the command's library entry, `o365lib.evaluation.evaluate_files`, on the book's
# own results: the chapter 2 baseline (first random seed) against the same model with the chapter 3
# expert for one class-rank range merged in.

# %% tags=["parameters"]
profile = "default"
classes = "301-365"
bootstrap = 200

# %% tags=["hide-input"]
import o365lib.book
from o365lib import evaluation
from o365lib.book.artefacts import datasets, models, predictions
from o365lib.book.run import records
from o365lib.book.studies import remedies

ctx = o365lib.book.setup_chapter("08_evaluate_your_detector", profile=profile, namespace=globals(), classes=classes,
                                 bootstrap=bootstrap)
seed = ctx.seeds[0]
base = models.ensure_baseline(ctx, seed)
expert = remedies.ensure_expert(ctx, ctx.params["classes"], seed=seed, base=base)
general = predictions.lazy_predictions(ctx, base, split="val")
merged = remedies.merged_results(
    ctx, general, [(datasets.range_category_ids(ctx, ctx.params["classes"]),
                    predictions.lazy_predictions(ctx, expert, split="val"))], strategy="replace")

# %% [markdown]
# ## The summary the command prints
#
# A is the baseline, B the baseline with the expert merged in. Intervals are 95% paired bootstrap
# intervals over validation images: each resample draws the images once, and both detectors are
# scored on them.

# %% tags=["hide-input"]
evaluation_report = evaluation.evaluate_files(
    datasets.load_split(ctx, "val"), general.load(), train=datasets.load_split(ctx, "train"),
    compare=merged.load(), labels=("baseline", f"+ expert {ctx.params['classes']}"), fixed_ap=True,
    bootstrap=ctx.params["bootstrap"], seed=seed)
evaluation_report.write_html(f"{ctx.results_dir}/report.html", title="Baseline against baseline + expert")
evaluation_report.write_json(f"{ctx.results_dir}/evaluation.json")
print(evaluation_report.text)

# %% [markdown]
# ## Per-class AP against training frequency
#
# One point per class (the baseline), its number of training images on a log scale.

# %% tags=["hide-input"]
evaluation_report.figure("frequency")

# %% [markdown]
# ## By rank range and frequency bucket, with fixed AP

# %% tags=["hide-input"]
evaluation_report.figure("groups")

# %% [markdown]
# ## What the expert changed
#
# Per range and per class, with the paired bootstrap intervals; green and red classes are those
# whose interval excludes zero.

# %% tags=["hide-input"]
evaluation_report.figure("range_change")

# %% tags=["hide-input"]
evaluation_report.figure("class_change")

# %% [markdown]
# ## Precision-recall curves of six classes from head to tail

# %% tags=["hide-input"]
evaluation_report.figure("pr_curves")

# %% tags=["hide-input"]
o365lib.book.present.report.markdown(
    "The same report as one offline page: `{page}` (and the numbers as JSON next to it).",
    page=ctx.shown(f"{ctx.results_dir}/report.html"))

# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(
    ctx, summary={}, details={"AP": evaluation_report.metrics["AP"], "AP_compare": evaluation_report.other["AP"],
                              "differences": {k: evaluation_report.comparison[k] for k in ("overall", "ranges", "improved",
                                                                                 "worse", "significant_improved",
                                                                                 "significant_worse")}})
