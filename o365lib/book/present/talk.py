"""The ByteDance talk's reference numbers: what the book compares itself with.

Source: Y. Lu, B. Xiao, Z. Gong, X. Zhang, H. Guo, L. Wen, "Scaling Object Detection up to More
Categories" (ByteDance AI Lab, Objects365 challenge 2019; "Lu et al. 2019" in the book),
Objects365 v1 val, Cascade R-CNN ResNeXt-101 64x4d FPN DCN.

- :data:`TALK` holds each number as quoted in the talk; nothing in it is computed.
- :data:`TALK_EFFECTS` holds the talk's effects (differences in AP points) that the chapters test
  with paired random seeds (``o365lib.book.present.comparisons.paired_effect(..., talk_effect=...)``). Each is
  either quoted as a difference by the talk or the difference of two quoted numbers, rounded to
  the talk's one decimal.

The word "seed" in this project means a random seed only.
"""

from __future__ import annotations

TALK = {
    # Chapter 01: class imbalance (max / min training instances per class)
    "coco_max_instances": 262465,
    "coco_min_instances": 198,
    "objects365_max_instances": 2120895,
    "objects365_min_instances": 28,
    # Chapter 02: COCO recipe applied to 365 classes
    "coco_map": 44.7,
    "baseline_map": 29.5,
    "tail_zero_ap": 39,  # classes of ranks 301-365 with AP 0
    "tail_num_classes": 65,
    # Chapter 03: experts
    "expert_tail_before": 18.4,
    "expert_tail_after": 29.5,
    "expert_classes_improved": 46,
    "experts_overall": (29.6, 29.9, 30.7),  # general, + expert 301-365, + expert 151-300
    # Chapter 04: head-class downsampling
    "resample_tail": (18.4, 23.3),
    "resample_overall": (31.3, 31.0),
    # Chapter 05: ablation deltas (mAP points)
    "trick_pretrained": 0.6,
    "trick_multiscale_train": 0.9,
    "trick_multiscale_test_softnms": 1.4,
    "trick_ensemble": 0.9,
    "tricks_start": 31.3,
    # Chapter 06: tiny track
    "tiny_full_pretrain": 4.2,
    "tiny_other_tricks": 5.3,
    # Final results
    "final_full_val": 34.5,
    "final_full_test": 31.1,
    "final_tiny_val": 34.8,
    "final_tiny_test": 27.4,
}


def _step(pair) -> float:
    """The talk's change from the first to the second number of a quoted pair, to its one decimal."""
    before, after = pair
    return round(after - before, 1)


#: The talk's effects in AP points (treated minus control), named for the comparison they test.
TALK_EFFECTS = {
    # expert on 301-365 against the general model, AP of ranks 301-365: 18.4 -> 29.5
    "expert_tail": _step((TALK["expert_tail_before"], TALK["expert_tail_after"])),
    # experts merged into the general model, overall mAP: 29.6 -> 29.9 -> 30.7
    "merge_first_expert": _step(TALK["experts_overall"][:2]),
    "merge_second_expert": _step(TALK["experts_overall"][1:]),
    # head-class downsampling against uniform sampling: tail 18.4 -> 23.3, overall 31.3 -> 31.0
    "resample_tail": _step(TALK["resample_tail"]),
    "resample_overall": _step(TALK["resample_overall"]),
    # the ablation, each trick against the row before it (quoted as differences)
    "trick_pretrained": TALK["trick_pretrained"],
    "trick_multiscale_train": TALK["trick_multiscale_train"],
    "trick_multiscale_test_softnms": TALK["trick_multiscale_test_softnms"],
    "trick_ensemble": TALK["trick_ensemble"],
    # tiny track with against without full-track initialisation, then the other tricks
    "tiny_full_pretrain": TALK["tiny_full_pretrain"],
    "tiny_other_tricks": TALK["tiny_other_tricks"],
}
