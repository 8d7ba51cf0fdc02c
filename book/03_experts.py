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
# # 3. Expert models for class ranges
#
# The seed's first remedy: fine-tune the full-class model on the images of one class-rank
# range, then let this *expert* answer for those classes. On Objects365 the expert for ranks
# 301-365 lifted their mAP from 18.4 to 29.5, with 46 of the 65 classes improving; a second
# expert for ranks 151-300 followed, and merging both moved the overall mAP from 29.6 to 29.9
# and then 30.7.
#
# Here the expert starts from the chapter 2 baseline and is fine-tuned on the training images
# that contain at least one class of the range. The other classes' boxes are dropped from those
# images (they become background for the expert), which is harmless because merging only ever
# takes the expert's detections of its own classes; the expert keeps the full classifier so
# that it loads the baseline's weights unchanged. Run it for another range with
# `papermill book/03_experts.ipynb out.ipynb -p classes 151-300`: results are stored per range.

# %% tags=["parameters"]
profile = "default"
classes = "301-365"
other_classes = "auto"
strategy = "replace"

# %%
import o365lib.book
from o365lib import evaluation, experts, viz
from o365lib.book import remedies, steps
from o365lib.book.seed import SEED

ctx = o365lib.book.setup_chapter("03_experts", profile=profile, classes=classes, other_classes=other_classes,
                                 strategy=strategy)
first, second = remedies.expert_pair(ctx, ctx.params["classes"], ctx.params["other_classes"])
out = remedies.range_key(first)

# %% [markdown]
# ## The general model
#
# The chapter 2 baseline (trained here if it is missing) and its validation results.

# %%
baseline = steps.ensure_baseline(ctx)
base_results = steps.ensure_predictions(ctx, baseline, split="val")
base_metrics = steps.evaluate_results(ctx, base_results, split="val", name=baseline.key)
rank_of = steps.ranking(ctx)
o365lib.book.report.markdown("General model: **{map}** mAP, ranks {r}: **{ap}** AP.", map=base_metrics["mAP"],
                             r=first, ap=remedies.range_ap(ctx, base_metrics, first))

# %% [markdown]
# ## The expert for the chosen range
#
# Fine-tuned from the baseline with the profile's expert schedule on the range's images.

# %%
expert = remedies.ensure_expert(ctx, first, base=baseline)
expert_results = steps.ensure_predictions(ctx, expert, split="val")
expert_metrics = steps.evaluate_results(ctx, expert_results, split="val", name=expert.key)
change = evaluation.compare_metrics(base_metrics, expert_metrics, rank_of, spec=first)
o365lib.book.compare.comparison_table([
    (f"AP ranks {first}, general model", change["mean_before"],
     SEED["expert_tail_before"] if first == "301-365" else None),
    (f"AP ranks {first}, expert", change["mean_after"], SEED["expert_tail_after"] if first == "301-365" else None),
    ("classes improved", change["improved"], SEED["expert_classes_improved"] if first == "301-365" else None),
    ("classes worse", change["worse"], None),
    ("classes unchanged", change["unchanged"], None),
])

# %%
o365lib.book.report.markdown(
    "The expert moves the mean AP of ranks {r} from **{before}** to **{after}** ({delta:+.1f}); "
    "{improved} of {n} classes improve (seed, ranks 301-365: 18.4 to 29.5, 46 of 65 improve). "
    "The expert effect **{verdict}**.",
    r=first, before=change["mean_before"], after=change["mean_after"], delta=change["mean_delta"],
    improved=change["improved"], n=len(change["deltas"]),
    verdict=o365lib.book.compare.effect_verdict(change["mean_delta"],
                                                SEED["expert_tail_after"] - SEED["expert_tail_before"]))

# %%
names = steps.category_names(ctx)
viz.plot_ap_change(evaluation.per_class_table(base_metrics, rank_of, names),
                   evaluation.per_class_table(expert_metrics, rank_of, names),
                   rank_range=remedies.rank_bounds(first), title=f"Per-class AP change, expert {first}")

# %% [markdown]
# ## Merging experts back
#
# For the classes of an expert's range the merged output takes the expert's detections
# (strategy "replace"), or fuses both models' detections of those classes ("fuse":
# score-weighted fusion of matched boxes). The seed merged an expert for 301-365, then one for
# 151-300.

# %%
merged = remedies.merge_and_evaluate(ctx, base_results, [(first, expert_results)], strategy=ctx.params["strategy"],
                                  name=f"merged-{out}")
expert2 = remedies.ensure_expert(ctx, second, base=baseline)
expert2_results = steps.ensure_predictions(ctx, expert2, split="val")
merged2 = remedies.merge_and_evaluate(ctx, base_results, [(first, expert_results), (second, expert2_results)],
                                   strategy=ctx.params["strategy"], name=f"merged-{out}-{remedies.range_key(second)}")
seed_steps = SEED["experts_overall"]
o365lib.book.compare.shown(o365lib.book.compare.delta_table([
    ("general model", base_metrics["mAP"], None, None),
    (f"+ expert {first}", merged["mAP"], merged["mAP"] - base_metrics["mAP"], seed_steps[1] - seed_steps[0]),
    (f"+ expert {second}", merged2["mAP"], merged2["mAP"] - merged["mAP"], seed_steps[2] - seed_steps[1]),
]))

# %%
viz.plot_range_bars({"general": base_metrics, f"+ expert {first}": merged, f"+ expert {second}": merged2},
                    title="Overall and per-range AP after merging experts")

# %% [markdown]
# ## Replace or fuse?
#
# Both merge strategies on the same two experts.

# %%
strategies = remedies.compare_merge_strategies(ctx, base_results, [(first, expert_results), (second, expert2_results)],
                                            name=f"{out}-{remedies.range_key(second)}")
strategies

# %% [markdown]
# ## Beyond the seed: choosing the expert ranges from the data
#
# The seed picked its ranges by rank. `o365lib.experts.pick_expert_ranges` instead looks for
# the contiguous rank ranges where the general model is weakest relative to its mean.

# %%
suggested = experts.pick_expert_ranges(base_metrics["per_class"], rank_of, num_experts=2)
o365lib.book.report.markdown("Ranges suggested from the baseline's per-class AP: **{ranges}** "
                             "(train them with `-p classes {first_suggestion}`).",
                             ranges=", ".join(suggested), first_suggestion=suggested[0])

# %%
metrics_file = steps.write_chapter_metrics(
    ctx, subdir=out,
    summary={f"tail {first} AP" if first != "301-365" else "tail 301-365 AP, expert": change["mean_after"],
             f"{first} classes improved by expert": change["improved"],
             f"mAP, experts merged ({first} + {second})": merged2["mAP"],
             **({"mAP, experts merged": merged2["mAP"]} if first == "301-365" else {})},
    details={"range": first, "second": second, "general_mAP": base_metrics["mAP"], "merged_one": merged["mAP"],
             "merged_two": merged2["mAP"], "strategies": strategies.reset_index().to_dict("records"),
             "suggested_ranges": suggested})
