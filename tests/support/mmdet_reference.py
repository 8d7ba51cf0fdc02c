"""TEST SCAFFOLDING: mmdet 3.3.0's own Cascade R-CNN as the reference for parity checks.

Used by tests/modeling/test_mmdet_parity.py and bench/mmdet_parity.py. It builds mmdet's model from
the config files mmdet ships (``mmdet/.mim/configs``), gives it random weights that make parity
meaningful (DESIGN.md section 5: mmdet's default init leaves every class score under the 0.05
threshold, while a too large classifier saturates the scores and makes the top-100 set
arbitrary), and runs mmdet's inference on images given in this project's convention.

Random weights, under one seed:
- convolutions and fully connected layers: He-normal (activations keep their scale);
- BN: weight U(0.3, 0.6), bias N(0, 0.05), running mean N(0, 0.05), running var U(0.5, 1.5), so
  the frozen BN statistics are not the identity;
- RPN objectness: logits spread about 1.5; RPN and box regression: deltas about 0.3 (boxes move
  visibly at every stage, stds included);
- classifiers: logits spread about 1 per box plus a class prior (a handful of classes +4 to +6),
  so that a few dozen (box, class) pairs per image clear 0.05 and scores stay far from 1;
- DCN offset convolutions (``conv_offset``, zero in mmcv's init): offsets of a few pixels
  (measured on R-50 at 256 x 384, seeds 0-3: mean |offset| 0.35-3 px per layer, largest 7-10 px),
  so the sampling really leaves the grid and mmcv's offset layout is exercised.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from tests.support.mmcv_ext_shim import install as install_mmcv_ext

CONFIGS = {
    "r50": "cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py",
    "r101": "cascade_rcnn/cascade-rcnn_r101_fpn_1x_coco.py",
    "x101-32x4d": "cascade_rcnn/cascade-rcnn_x101-32x4d_fpn_1x_coco.py",
    "x101-64x4d": "cascade_rcnn/cascade-rcnn_x101-64x4d_fpn_1x_coco.py",
}


def build_mmdet_cascade(variant: str, *, num_classes: int, seed: int, dcn: bool = False) -> nn.Module:
    """mmdet's Cascade R-CNN for ``variant`` (a ``CONFIGS`` key), eval mode, random weights."""
    install_mmcv_ext()
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    config_dir = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs")
    config = Config.fromfile(os.path.join(config_dir, CONFIGS[variant]))
    model_cfg = config.model
    model_cfg.backbone.init_cfg = None
    if dcn:
        model_cfg.backbone.dcn = {"type": "DCN", "deform_groups": 1, "fallback_on_stride": False}
        model_cfg.backbone.stage_with_dcn = (False, True, True, True)
    for head in model_cfg.roi_head.bbox_head:
        head.num_classes = num_classes
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    randomise_weights(model, seed=seed, num_classes=num_classes)
    return model.eval()


def randomise_weights(model: nn.Module, *, seed: int, num_classes: int) -> None:
    """The parity-friendly random weights described in the module docstring."""
    generator = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=generator) * std

    def uniform(shape, low, high):
        return torch.rand(shape, generator=generator) * (high - low) + low

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.BatchNorm2d):
                shape = module.weight.shape
                module.weight.copy_(uniform(shape, 0.3, 0.6))
                module.bias.copy_(normal(shape, 0.05))
                module.running_mean.copy_(normal(shape, 0.05))
                module.running_var.copy_(uniform(shape, 0.5, 1.5))
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                std = (2.0 / fan_in) ** 0.5
                if name.endswith("rpn_cls"):
                    std = 1.5 / fan_in**0.5
                elif name.endswith(("rpn_reg", "fc_reg")):
                    std = 0.3 / fan_in**0.5
                elif name.endswith("fc_cls"):
                    std = 1.0 / fan_in**0.5
                elif name.endswith("conv_offset"):
                    std = 8.0 / fan_in**0.5  # DCN offsets of a few pixels (module docstring)
                module.weight.copy_(normal(module.weight.shape, std))
                if module.bias is not None:
                    bias = normal(module.bias.shape, 0.05)
                    if name.endswith("fc_cls"):
                        bias = normal(module.bias.shape, 0.5)
                        prior = torch.randperm(num_classes, generator=generator)[:8]
                        bias[prior] += uniform((8,), 4.0, 6.0)
                        bias[-1] = 1.0  # background logit (mmdet: last)
                    module.bias.copy_(bias)


def mmdet_inputs(images: list[torch.Tensor]) -> dict:
    """mmdet's ``data`` dict for RGB [0, 1] images: BGR 0-255 inputs, no resize (scale factor 1)."""
    from mmdet.structures import DetDataSample

    inputs, samples = [], []
    for image in images:
        height, width = image.shape[-2:]
        inputs.append((image * 255.0)[[2, 1, 0]])
        sample = DetDataSample()
        sample.set_metainfo({"img_shape": (height, width), "ori_shape": (height, width), "scale_factor": (1.0, 1.0)})
        samples.append(sample)
    return {"inputs": inputs, "data_samples": samples}


@torch.no_grad()
def mmdet_predict(model: nn.Module, images: list[torch.Tensor]) -> tuple[list[dict], list[dict]]:
    """(RPN proposals, final detections) per image from mmdet, labels 1-based like ours."""
    data = model.data_preprocessor(mmdet_inputs(images), False)
    captured = []
    original = model.rpn_head.predict

    def capture(*args, **kwargs):
        captured.extend(original(*args, **kwargs))
        return captured

    model.rpn_head.predict = capture  # one forward pass serves both comparisons
    try:
        results = model.predict(data["inputs"], data["data_samples"])
    finally:
        del model.rpn_head.predict
    proposals = [p.clone() for p in captured]
    rpn = [{"boxes": p.bboxes, "scores": p.scores} for p in proposals]
    final = [
        {
            "boxes": r.pred_instances.bboxes,
            "labels": r.pred_instances.labels + 1,
            "scores": r.pred_instances.scores,
        }
        for r in results
    ]
    return rpn, final


@torch.no_grad()
def ours_predict(model: nn.Module, images: list[torch.Tensor]) -> tuple[list[dict], list[dict]]:
    """(RPN proposals, final detections) per image from a ``CascadeRCNN`` (no resizing)."""
    captured = []
    handle = model.rpn.register_forward_hook(lambda module, args, output: captured.append(output[0]))
    try:
        detections = model(images)
    finally:
        handle.remove()
    return [{"boxes": b} for b in captured[0]], detections


def compare_proposals(reference: dict, ours: dict, *, tolerance: float = 0.01) -> dict:
    """RPN proposals (both ordered by score) compared row by row and as sets.

    mmcv's compiled CPU ``nms`` orders boxes with an unstable sort, torchvision's (the shim's and
    ours) with a stable one, so boxes with exactly equal scores may come out swapped. Rows that
    differ by more than ``tolerance`` are allowed only where the reference score is tied.
    """
    ref_boxes, ref_scores, our_boxes = reference["boxes"], reference["scores"], ours["boxes"]
    if ref_boxes.shape != our_boxes.shape:
        return {"same_count": False, "ordered_max_diff": None, "set_max_diff": None,
                "rows_swapped_at_ties": None, "rows_differing_untied": None}
    if not len(ref_boxes):
        return {"same_count": True, "ordered_max_diff": 0.0, "set_max_diff": 0.0,
                "rows_swapped_at_ties": 0, "rows_differing_untied": 0}
    rows = (ref_boxes - our_boxes).abs().max(dim=1).values
    distance = torch.cdist(ref_boxes.double(), our_boxes.double(), p=float("inf"))
    differing = torch.where(rows > tolerance)[0]
    tied = torch.tensor([int((ref_scores == ref_scores[i]).sum()) > 1 for i in differing], dtype=torch.bool)
    return {
        "same_count": True,
        "ordered_max_diff": float(rows.max()),
        "set_max_diff": float(max(distance.min(dim=1).values.max(), distance.min(dim=0).values.max())),
        "rows_swapped_at_ties": int(tied.sum()),
        "rows_differing_untied": int((~tied).sum()),
    }


def match_detections(reference: dict, ours: dict, *, score_margin: float = 1e-4) -> dict:
    """Pair detections (same label, nearest box); numbers describing how well the two sets agree.

    Detections whose score lies within ``score_margin`` of the score threshold or of the lowest
    kept score may be missing on one side (float noise decides at a cut-off); all others must pair.
    """
    ref_boxes, ref_labels, ref_scores = reference["boxes"], reference["labels"], reference["scores"]
    our_boxes, our_labels, our_scores = ours["boxes"], ours["labels"], ours["scores"]
    low = min(float(ref_scores.min()) if len(ref_scores) else 1.0, float(our_scores.min()) if len(our_scores) else 1.0)
    used = torch.zeros(len(our_boxes), dtype=torch.bool)
    box_diffs, score_diffs, unmatched = [0.0], [0.0], 0
    for box, label, score in zip(ref_boxes, ref_labels, ref_scores):
        candidates = torch.where((our_labels == label) & ~used)[0]
        if len(candidates):
            distance = (our_boxes[candidates] - box).abs().max(dim=1).values
            best = int(distance.argmin())
            if float(distance[best]) < 1.0:
                index = int(candidates[best])
                used[index] = True
                box_diffs.append(float(distance[best]))
                score_diffs.append(abs(float(our_scores[index] - score)))
                continue
        if float(score) - low > score_margin and float(score) - 0.05 > score_margin:
            unmatched += 1
    for index in torch.where(~used)[0]:
        score = float(our_scores[index])
        if score - low > score_margin and score - 0.05 > score_margin:
            unmatched += 1
    return {
        "reference": len(ref_boxes),
        "ours": len(our_boxes),
        "paired": int(used.sum()),
        "unmatched": unmatched,
        "max_box_diff": max(box_diffs),
        "max_score_diff": max(score_diffs),
        "labels_equal": bool(len(ref_boxes) == len(our_boxes) and unmatched == 0),
    }
