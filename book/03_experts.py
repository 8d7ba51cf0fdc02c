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
# The ByteDance talk's first remedy: fine-tune the full-class model on the images of one class-rank
# range, then let this *expert* answer for those classes. On Objects365 the expert for ranks 301-365
# lifted their mAP from 18.4 to 29.5, with 46 of the 65 classes improving; a second expert for ranks
# 151-300 followed, and merging both moved the overall mAP from 29.6 to 29.9 and then 30.7.
#
# Here each expert starts from the chapter 2 baseline of the same random seed and is fine-tuned on
# the training images that contain at least one class of its range. The other classes' boxes are
# dropped from those images (they become background for the expert), which is harmless because
# merging only ever takes the expert's detections of its own classes. Every comparison is paired
# by seed: the expert of seed *s* against the general model of seed *s*; the table gives the mean
# difference over seeds with its 95% interval, and the verdict follows from that interval. Run it for
# another range with `papermill book/03_experts.ipynb out.ipynb -p classes 151-300`: results are
# stored per range.

# %% tags=["parameters"]
profile = "default"
classes = "301-365"
other_classes = "auto"
strategy = "replace"

# %% tags=["hide-input"]
import o365lib.book
from o365lib import evaluation, experts, viz
from o365lib.book.artefacts import datasets
from o365lib.book.present import comparisons, report, seed_stats
from o365lib.book.run import records
from o365lib.book.studies import remedies

ctx = o365lib.book.setup_chapter("03_experts", profile=profile, namespace=globals(), classes=classes,
                                 other_classes=other_classes, strategy=strategy)
first, second = remedies.expert_pair(ctx, ctx.params["classes"], ctx.params["other_classes"])

# %% [markdown]
# ## The experts, one per seed
#
# The general model (the chapter 2 baseline, trained here if it is missing), the expert for the chosen
# range and the second expert, for every seed; then their validation metrics and the merged systems.

# %% tags=["hide-input"]
study = remedies.expert_study(ctx, first, second, strategy=ctx.params["strategy"])
effects = remedies.expert_effects(ctx, study, first=first, second=second)
comparisons.effects_table(effects)

# %% tags=["hide-input"]
viz.plot_effects(effects, title=f"Paired effects of the experts (mean over seeds, 95% interval), ranks {first}")

# %% tags=["hide-input"]
report.markdown(remedies.expert_sentence(ctx, study, effects, first=first))

# %% [markdown]
# ## Per-class change (first seed)

# %% tags=["hide-input"]
rank_of = datasets.ranking(ctx)
names = datasets.category_names(ctx)
viz.plot_ap_change(evaluation.per_class_table(study["general"][0], rank_of, names),
                   evaluation.per_class_table(study["expert"][0], rank_of, names),
                   rank_range=remedies.rank_bounds(first), title=f"Per-class AP change, expert {first}")

# %% [markdown]
# ## Merging experts back, and the per-image cap
#
# For the classes of an expert's range the merged output takes the expert's detections ("replace"),
# or fuses both models' detections of those classes ("fuse"). Each image then keeps its 100 best
# detections, so the expert's tail boxes compete with the general model's head boxes for those
# slots. Fixed AP removes the per-image cap: per class, the top-K detections over the whole split.

# %% tags=["hide-input"]
viz.plot_range_bars({"general": study["general"], f"+ expert {first}": study["merged_one"],
                     f"+ expert {second}": study["merged_two"]},
                    title="Overall and per-range AP after merging experts (mean ± std over seeds)")

# %% tags=["hide-input"]
comparisons.comparison_table(remedies.cap_rows(study, first=first))

# %% [markdown]
# ## Replace or fuse?

# %% tags=["hide-input"]
comparisons.comparison_table([(f"{s}: mAP", seed_stats.values(m), None) for s, m in study["strategies"].items()])

# %% [markdown]
# ## Beyond the talk: choosing the expert ranges from the data
#
# The talk picked its ranges by rank. `o365lib.experts.pick_expert_ranges` instead looks for the
# contiguous rank ranges where the general model (first seed) is weakest relative to its mean.

# %% tags=["hide-input"]
suggested = experts.pick_expert_ranges(study["general"][0]["per_class"], rank_of, num_experts=2)
report.markdown("Ranges suggested from the baseline's per-class AP: **{ranges}** "
                "(train them with `-p classes {first_suggestion}`).",
                ranges=", ".join(suggested), first_suggestion=suggested[0])

# %% tags=["remove-cell"]
metrics_file = records.write_chapter_record(
    ctx, subdir=remedies.range_key(first), summary=remedies.expert_summary(ctx, study, effects, first=first),
    details={"range": first, "second": second, "runs": study["runs"], "effects": comparisons.effects_records(effects),
             "suggested_ranges": suggested})
