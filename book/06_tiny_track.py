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
# # 6. The tiny track, and the final results
#
# The 2019 challenge had a second track with 65 classes and far fewer training images. The
# seed's finding there: the general model helps the expert. Initialising from the full-track
# model instead of the usual COCO-pretrained one gave +4.2 mAP, and the other tricks another
# +5.3. Here the tiny track's 65 classes are the full track's ranks 301-365 (the rarest ones),
# with a training set of their own.
#
# The seed's tiny-track baseline starts from COCO-pretrained weights; ours starts from the
# profile's pretrained backbone alone ("backbone only" below). The alternative starts from the
# full-track baseline: every tensor is copied and the classifier rows of the 65 classes are
# taken from the full classifier by category id, so the tiny model starts out knowing what the
# full model knew about them. Both get the same schedule.

# %% tags=["parameters"]
profile = "default"

# %%
import o365lib.book
from o365lib import viz
from o365lib.book import steps, tricks
from o365lib.book.seed import SEED

ctx = o365lib.book.setup_chapter("06_tiny_track", profile=profile)

# %% [markdown]
# ## Backbone only, or the full-track model

# %%
backbone_only = tricks.ensure_tiny(ctx, init="backbone")
from_full = tricks.ensure_tiny(ctx, init="full")
m_backbone = tricks.tiny_metrics(ctx, backbone_only)
m_full = tricks.tiny_metrics(ctx, from_full)
tta = tricks.tta_options(ctx)
m_tricks = tricks.tiny_track_system(ctx, "tiny_val")
tiny_table = o365lib.book.compare.delta_table([
    ("backbone only", m_backbone["mAP"], None, None),
    ("from the full-track model", m_full["mAP"], m_full["mAP"] - m_backbone["mAP"], SEED["tiny_full_pretrain"]),
    ("+ multi-scale train, TTA soft-NMS, ensemble", m_tricks["mAP"], m_tricks["mAP"] - m_full["mAP"],
     SEED["tiny_other_tricks"]),
])
o365lib.book.compare.shown(tiny_table)

# %%
viz.plot_loss_curve(from_full.losses,
                    title="Tiny-track training loss, from the full-track model", smooth=0.9)

# %%
o365lib.book.report.markdown(
    "Full-track initialisation: {backbone} -> **{full}** mAP ({gain:+.1f}, seed {seed_gain:+.1f}): "
    "**{verdict}**. The tricks add {tricks_gain:+.1f} (seed {seed_tricks:+.1f}): **{tricks_verdict}**.",
    backbone=m_backbone["mAP"], full=m_full["mAP"], gain=m_full["mAP"] - m_backbone["mAP"],
    seed_gain=SEED["tiny_full_pretrain"], verdict=tiny_table.loc["from the full-track model", "verdict"],
    tricks_gain=m_tricks["mAP"] - m_full["mAP"], seed_tricks=SEED["tiny_other_tricks"],
    tricks_verdict=tiny_table.iloc[-1]["verdict"])

# %% [markdown]
# ## Final results
#
# The final systems (full track: chapter 5's ensemble with TTA; tiny track: the one above) on
# the validation split and on a held-out test split that no choice in this book looked at.

# %%
final = {
    "Validation set (full track)": tricks.full_track_system(ctx, "val")["mAP"],
    "Test set (full track)": tricks.full_track_system(ctx, "test")["mAP"],
    "Validation set (tiny track)": m_tricks["mAP"],
    "Test set (tiny track)": tricks.tiny_track_system(ctx, "tiny_test")["mAP"],
}
seed_final = [SEED["final_full_val"], SEED["final_full_test"], SEED["final_tiny_val"], SEED["final_tiny_test"]]
final_table = o365lib.book.compare.comparison_table(
    [(name, value, seed) for (name, value), seed in zip(final.items(), seed_final)],
    columns=("ours mAP", "seed mAP"))
final_table

# %%
metrics_file = steps.write_chapter_metrics(
    ctx,
    summary={"tiny track mAP": m_tricks["mAP"], "tiny track mAP, backbone only": m_backbone["mAP"],
             "tiny track mAP, from full track": m_full["mAP"], **{f"final: {k}": v for k, v in final.items()}},
    details={"tiny": tiny_table.reset_index().to_dict("records"), "tta": tta})
