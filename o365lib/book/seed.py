"""The seed's reference numbers: what the book compares itself with.

Source: "Scaling Object Detection up to More Categories" (Y. Lu, B. Xiao, Z. Gong, X. Zhang,
H. Guo, L. Wen; ByteDance AI Lab, Objects365 challenge 2019), Objects365 v1 val, Cascade R-CNN
ResNeXt-101 64x4d FPN DCN. Each value is quoted from the talk; nothing here is computed.
"""

SEED = {
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
