"""Fusing several sets of detections: models of an ensemble, or test-time augmentations.

:func:`fuse_detections` is the flat-tensor core shared with :mod:`o365lib.tta.augment`: it
takes the detections of several *sources* (models or augmentations) for many images and
merges them per (image, label) with NMS, soft-NMS or weighted boxes fusion, in one call for
all images (our soft-NMS and WBF are vectorised over groups, so one call is far faster than
one per image).  :func:`ensemble_results` applies it to COCO results lists.

Source weights: for WBF they are WBF's model weights; for NMS / soft-NMS each score is
multiplied by ``weight / max(weights)`` (so equal weights change nothing and scores stay in
[0, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torchvision.ops import batched_nms

from o365lib.ops import batched_weighted_boxes_fusion, soft_nms, top_k_per_group

__all__ = [
    "MERGE_METHODS",
    "ensemble_results",
    "fuse_detections",
    "nms_per_image",
    "results_to_tensors",
    "tensors_to_results",
]

MERGE_METHODS = ("wbf", "soft_nms", "nms")


def _group_ids(image_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Dense id per (image, label) pair, for per-group NMS / soft-NMS."""
    if image_ids.numel() == 0:
        return image_ids.clone()
    span = int(labels.max() - labels.min()) + 1
    key = (image_ids - image_ids.min()) * span + (labels - labels.min())
    return torch.unique(key, return_inverse=True)[1]


def nms_per_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    image_ids: torch.Tensor,
    iou_threshold: float,
) -> torch.Tensor:
    """Hard NMS per (image, label): one ``torchvision.ops.batched_nms`` call per image.

    One call over all images would be slower on CPU: torchvision's NMS kernel compares each
    kept box with every later box (O(N x kept)), and ``batched_nms`` loops over groups in
    Python above 4000 boxes (measured in bench/bench_fusion.py).
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(image_ids, stable=True)
    _, counts = torch.unique_consecutive(image_ids[order], return_counts=True)
    keep = []
    for idx in torch.split(order, counts.tolist()):
        keep.append(idx[batched_nms(boxes[idx], scores[idx], labels[idx], iou_threshold)])
    return torch.cat(keep)


def fuse_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    image_ids: torch.Tensor,
    source_ids: torch.Tensor,
    num_sources: int,
    method: str = "wbf",
    weights: Sequence[float] | None = None,
    image_sizes: torch.Tensor | None = None,
    iou_threshold: float = 0.55,
    max_dets: int = 100,
    score_threshold: float = 0.001,
    sigma: float = 0.5,
    soft_method: str = "gaussian",
    conf_type: str = "avg",
    clip_scores: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge detections of ``num_sources`` sources, per (image, label).

    Args:
        boxes: ``[N, 4]`` xyxy pixels; scores ``[N]``; labels ``[N]`` integer labels or category ids.
        image_ids: ``[N]`` integer image ids; source_ids ``[N]`` in ``0..num_sources-1``.
        method: ``"wbf"``, ``"soft_nms"`` or ``"nms"``.
        weights: per-source weights (see module docstring).
        image_sizes: ``[N, 2]`` (width, height) of each box's image; needed by ``"wbf"``, which
            works on boxes normalised to [0, 1].
        iou_threshold: NMS threshold / linear soft-NMS threshold / WBF cluster threshold.
        max_dets: detections kept per image (highest scores).
        score_threshold: soft-NMS keeps decayed scores above it; WBF skips boxes below it;
            NMS drops boxes at or below it.
        sigma, soft_method: soft-NMS parameters; conf_type, clip_scores: WBF parameters.

    Returns:
        ``(boxes, scores, labels, image_ids)`` sorted by image id, then score descending.
    """
    if method not in MERGE_METHODS:
        raise ValueError(f"fuse_detections: method must be one of {MERGE_METHODS}, got {method!r}")
    if weights is not None and len(weights) != num_sources:
        raise ValueError(f"fuse_detections: {len(weights)} weights for {num_sources} sources")
    boxes, scores = boxes.float().reshape(-1, 4), scores.float().flatten()
    labels, image_ids = labels.long().flatten(), image_ids.long().flatten()
    source_ids = source_ids.long().flatten()
    if method == "wbf":
        if image_sizes is None:
            raise ValueError("fuse_detections: method 'wbf' needs image_sizes (width, height per box)")
        scale = image_sizes.to(boxes).repeat(1, 2)
        out_boxes, out_scores, out_labels, out_images = batched_weighted_boxes_fusion(
            boxes / scale,
            scores,
            labels,
            model_ids=source_ids,
            image_ids=image_ids,
            num_models=num_sources,
            weights=weights,
            iou_threshold=iou_threshold,
            skip_box_threshold=score_threshold,
            conf_type=conf_type,
            clip_scores=clip_scores,
        )
        # back to pixels: look up each fused box's image size through any row of that image
        uniq, inverse = torch.unique(image_ids, return_inverse=True)
        row_of = torch.zeros(uniq.numel(), dtype=torch.long, device=boxes.device)
        row_of.scatter_(0, inverse, torch.arange(inverse.numel(), device=boxes.device))
        out_boxes = out_boxes.to(boxes.device) * scale[row_of[torch.searchsorted(uniq, out_images)]]
    else:
        if weights is not None:
            w = torch.as_tensor(weights, dtype=scores.dtype, device=scores.device)
            scores = scores * (w / w.max())[source_ids]
        groups = _group_ids(image_ids, labels)
        if method == "nms":
            valid = torch.nonzero(scores > score_threshold).flatten()
            keep = valid[
                nms_per_image(boxes[valid], scores[valid], labels[valid], image_ids[valid], iou_threshold)
            ]
            out_scores = scores[keep]
        else:
            keep, out_scores = soft_nms(
                boxes,
                scores,
                groups,
                iou_threshold=iou_threshold,
                sigma=sigma,
                method=soft_method,
                score_threshold=score_threshold,
            )
        out_boxes, out_labels, out_images = boxes[keep], labels[keep], image_ids[keep]
    top = torch.as_tensor(
        top_k_per_group(out_scores.cpu().numpy(), out_images.cpu().numpy(), max_dets), device=out_scores.device
    )
    return out_boxes[top], out_scores[top], out_labels[top], out_images[top]


def results_to_tensors(results: Sequence[Mapping]) -> tuple[torch.Tensor, ...]:
    """COCO results dicts -> ``(boxes xyxy [N, 4], scores, category_ids, image_ids)``."""
    if len(results) == 0:
        return (
            torch.zeros((0, 4)),
            torch.zeros(0),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, dtype=torch.long),
        )
    try:
        xywh = torch.tensor([r["bbox"] for r in results], dtype=torch.float64).reshape(-1, 4)
        scores = torch.tensor([r["score"] for r in results], dtype=torch.float32)
        cats = torch.tensor([int(r["category_id"]) for r in results], dtype=torch.long)
        images = torch.tensor([int(r["image_id"]) for r in results], dtype=torch.long)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"results: every record needs image_id, category_id, bbox [x, y, w, h] and score ({err!r})"
        )
    boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1).float()
    return boxes, scores, cats, images


def tensors_to_results(boxes, scores, category_ids, image_ids) -> list[dict]:
    """``(boxes xyxy, scores, category_ids, image_ids)`` -> COCO results dicts (bbox x, y, w, h)."""
    b = boxes.detach().to("cpu", torch.float64)
    xywh = torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], dim=1).tolist()
    return [
        {"image_id": int(i), "category_id": int(c), "bbox": [float(v) for v in box], "score": float(s)}
        for box, s, c, i in zip(xywh, scores.tolist(), category_ids.tolist(), image_ids.tolist())
    ]


def ensemble_results(
    results_lists: Sequence[Sequence[Mapping]],
    *,
    method: str = "wbf",
    weights: Sequence[float] | None = None,
    image_sizes: Mapping[int, tuple[float, float]] | None = None,
    iou_threshold: float = 0.55,
    max_dets: int = 100,
    skip_box_threshold: float = 0.0,
    conf_type: str = "avg",
    clip_scores: bool = False,
    sigma: float = 0.5,
    soft_method: str = "gaussian",
    score_threshold: float = 0.001,
) -> list[dict]:
    """Fuse several models' COCO results lists per image and category.

    Args:
        results_lists: one COCO results list per model (any lists of ``{"image_id",
            "category_id", "bbox", "score"}``, e.g. expert-merged ones).
        method: ``"wbf"`` (weighted boxes fusion), ``"soft_nms"`` or ``"nms"`` over the union.
        weights: per-model weights (WBF model weights; NMS methods scale scores by w / max(w)).
        image_sizes: ``{image_id: (width, height)}``; required by ``"wbf"`` (boxes are normalised).
        iou_threshold: WBF cluster / NMS / linear soft-NMS threshold.
        max_dets: detections kept per image.
        skip_box_threshold: WBF ignores boxes scoring below it.
        conf_type, clip_scores: WBF confidence rule and the cap at 1 (see ``weighted_boxes_fusion``).
        sigma, soft_method, score_threshold: soft-NMS parameters (score_threshold also for NMS).

    Returns:
        A COCO results list sorted by image id, then score descending.
    """
    if len(results_lists) == 0:
        raise ValueError("ensemble_results: no results lists given")
    parts = [results_to_tensors(r) for r in results_lists]
    boxes = torch.cat([p[0] for p in parts])
    scores = torch.cat([p[1] for p in parts])
    cats = torch.cat([p[2] for p in parts])
    images = torch.cat([p[3] for p in parts])
    sources = torch.cat([torch.full((p[1].numel(),), m, dtype=torch.long) for m, p in enumerate(parts)])
    if boxes.shape[0] == 0:
        return []
    sizes = None
    if method == "wbf":
        if image_sizes is None:
            raise ValueError("ensemble_results: method 'wbf' needs image_sizes {image_id: (width, height)}")
        size_of = {}
        for img in torch.unique(images).tolist():
            if img not in image_sizes:
                raise ValueError(f"ensemble_results: image_sizes has no entry for image_id={img}")
            size_of[img] = tuple(float(v) for v in image_sizes[img])
        sizes = torch.tensor([size_of[i] for i in images.tolist()], dtype=torch.float32)
    out = fuse_detections(
        boxes,
        scores,
        cats,
        image_ids=images,
        source_ids=sources,
        num_sources=len(results_lists),
        method=method,
        weights=weights,
        image_sizes=sizes,
        iou_threshold=iou_threshold,
        max_dets=max_dets,
        score_threshold=skip_box_threshold if method == "wbf" else score_threshold,
        sigma=sigma,
        soft_method=soft_method,
        conf_type=conf_type,
        clip_scores=clip_scores,
    )
    return tensors_to_results(*out)
