"""``CascadeRCNN``: transform -> backbone + FPN -> RPN -> cascade box heads -> per-class NMS.

The module follows torchvision's detection calling convention: ``model(images, targets)`` in train
mode returns a dict of losses, ``model(images)`` in eval mode returns one dict per image with
``boxes`` (xyxy, pixels of the input image), ``labels`` (1..K) and ``scores``.

For test-time augmentation and ensembles the last step is split out: ``predict_raw`` returns the
cascade's boxes and averaged class probabilities before any thresholding or NMS (in input-image
pixels, so several scales/flips can be merged), and ``postprocess_raw`` does exactly what the
normal path does after that (score threshold, per-class NMS or soft-NMS, top-k).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import boxes as box_ops

from o365lib.modeling.box_coding import offset_batched_nms
from o365lib.modeling.cascade import CascadeRoIHeads
from o365lib.ops import soft_nms

NMS_METHODS = ("nms", "soft_nms")
#: How hard NMS separates classes: torchvision's ``batched_nms`` or mmdet 3.x's offsets (0-based labels).
NMS_STYLES = ("torchvision", "mmdet")


class CascadeRCNN(nn.Module):
    """Cascade R-CNN with FPN. Inference behaviour is set by plain attributes.

    Attributes (change them freely between calls):
        nms_method: ``"nms"`` (per-class ``batched_nms``) or ``"soft_nms"`` (``o365lib.ops.soft_nms``).
        nms_thresh: IoU threshold of NMS / soft-NMS.
        score_thresh: minimum class probability kept.
        detections_per_img: top-k detections per image after NMS.
        soft_nms_sigma, soft_nms_kind: soft-NMS ``sigma`` and ``method`` ("gaussian" | "linear").
        max_candidates: cap on (box, class) pairs entering NMS (highest scores kept), which bounds
            NMS time with hundreds of classes and a tiny score threshold; ``None``: no cap (mmdet).
        min_box_size: boxes narrower or lower than this (pixels) are dropped before NMS (``0``: keep
            all, as mmdet does).
        nms_style: ``"torchvision"`` or ``"mmdet"`` (see ``o365lib.modeling.box_coding``); only
            for ``nms_method="nms"``.
    """

    def __init__(
        self,
        *,
        transform: GeneralizedRCNNTransform,
        backbone: nn.Module,
        rpn: RegionProposalNetwork,
        roi_heads: CascadeRoIHeads,
        num_classes: int,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        max_candidates: int | None = 10000,
        min_box_size: float = 1e-2,
        nms_style: str = "torchvision",
    ) -> None:
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.num_classes = int(num_classes)
        self.nms_method = "nms"
        self.nms_thresh = float(nms_thresh)
        self.score_thresh = float(score_thresh)
        self.detections_per_img = int(detections_per_img)
        self.soft_nms_sigma = 0.5
        self.soft_nms_kind = "gaussian"
        self.max_candidates = None if max_candidates is None else int(max_candidates)
        self.score_calibration = None  # e.g. NorCal: [N, K+1] probabilities -> calibrated (predict_raw)
        self.min_box_size = float(min_box_size)
        if nms_style not in NMS_STYLES:
            raise ValueError(f"nms_style must be one of {NMS_STYLES}, got {nms_style!r}")
        self.nms_style = nms_style

    def _check_targets(self, targets: list[dict[str, torch.Tensor]]) -> None:
        for index, target in enumerate(targets):
            boxes = target.get("boxes")
            if boxes is None or "labels" not in target:
                raise ValueError(f"target {index} needs 'boxes' and 'labels'")
            if boxes.dim() != 2 or boxes.shape[-1] != 4:
                raise ValueError(f"target {index}: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
            labels = target["labels"]
            if labels.numel() and (int(labels.min()) < 1 or int(labels.max()) > self.num_classes):
                raise ValueError(
                    f"target {index} (image_id={target.get('image_id')}): labels must be in "
                    f"1..{self.num_classes}, got {sorted(set(labels.tolist()))[:10]}"
                )
            bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
            if bool(bad.any()):
                row = int(torch.where(bad)[0][0])
                raise ValueError(
                    f"target {index} (image_id={target.get('image_id')}): box {row} "
                    f"{boxes[row].tolist()} has zero or negative width/height"
                )

    def _cascade(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[tuple[int, int]]]:
        """Shared trunk: losses (train) or per-image resized boxes + probabilities (eval)."""
        for image in images:
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"images must be 3xHxW float tensors, got shape {tuple(image.shape)}")
        image_list, targets = self.transform(images, targets)
        features = self.backbone(image_list.tensors)
        proposals, rpn_losses = self.rpn(image_list, features, targets)
        if self.training:
            assert targets is not None
            head_losses = self.roi_heads.forward_train(features, proposals, image_list.image_sizes, targets)
            return {**rpn_losses, **head_losses}, [], [], image_list.image_sizes
        boxes, probabilities = self.roi_heads.forward_test(features, proposals, image_list.image_sizes)
        return {}, boxes, probabilities, image_list.image_sizes

    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None):
        """Train mode: dict of losses (needs ``targets``). Eval mode: list of detection dicts."""
        if self.training:
            if targets is None:
                raise ValueError("CascadeRCNN needs targets in training mode")
            self._check_targets(targets)
            losses, _, _, _ = self._cascade(images, targets)
            return losses
        return [
            self.postprocess_raw(raw["boxes"], raw["scores"], tuple(image.shape[-2:]))
            for raw, image in zip(self.predict_raw(images), images)
        ]

    def predict_raw(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Per image ``{"boxes": [N, 4] xyxy input pixels, "scores": [N, K] mean probabilities}``.

        Scores exclude the background column; nothing is thresholded or suppressed yet. When
        ``score_calibration`` is set (a function of the ``[N, K+1]`` probabilities, e.g. NorCal from
        ``o365lib.calibration``), the scores are calibrated first, so thresholding, NMS and the
        per-image top-k rank by the calibrated scores.
        """
        if self.training:
            raise RuntimeError("predict_raw needs the model in eval mode (call model.eval())")
        with torch.no_grad():
            _, boxes, probabilities, resized_sizes = self._cascade(images, None)
        outputs = []
        calibrate = getattr(self, "score_calibration", None)
        for box, probability, resized, image in zip(boxes, probabilities, resized_sizes, images):
            if calibrate is not None:
                probability = calibrate(probability)
            original = tuple(image.shape[-2:])
            box = resize_boxes(box.float(), resized, original)
            outputs.append({"boxes": box, "scores": probability[:, 1:].float()})
        return outputs

    def postprocess_raw(
        self, boxes: torch.Tensor, scores: torch.Tensor, image_size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """Score threshold, per-class NMS (or soft-NMS) and top-k on raw cascade outputs.

        ``boxes`` [N, 4] (xyxy) are shared by all classes (class-agnostic regression), ``scores``
        [N, K] hold class probabilities without background, ``image_size`` is (height, width).
        Returns ``{"boxes", "labels" (1..K), "scores"}`` sorted by descending score.
        """
        if self.nms_method not in NMS_METHODS:
            raise ValueError(f"nms_method must be one of {NMS_METHODS}, got {self.nms_method!r}")
        if boxes.shape[0] != scores.shape[0] or boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"boxes {tuple(boxes.shape)} and scores {tuple(scores.shape)} do not match")
        num_classes = scores.shape[1]
        boxes = box_ops.clip_boxes_to_image(boxes, image_size)
        labels = torch.arange(1, num_classes + 1, device=scores.device).expand_as(scores)
        keep_mask = scores > self.score_thresh
        rows, _ = torch.where(keep_mask)
        cand_boxes, cand_scores, cand_labels = boxes[rows], scores[keep_mask], labels[keep_mask]
        if self.min_box_size > 0:
            keep = box_ops.remove_small_boxes(cand_boxes, min_size=self.min_box_size)
            cand_boxes, cand_scores, cand_labels = cand_boxes[keep], cand_scores[keep], cand_labels[keep]
        if self.max_candidates is not None and cand_scores.numel() > self.max_candidates:
            top = cand_scores.topk(self.max_candidates).indices
            cand_boxes, cand_scores, cand_labels = cand_boxes[top], cand_scores[top], cand_labels[top]
        if self.nms_method == "nms" and self.nms_style == "mmdet":
            keep = offset_batched_nms(cand_boxes, cand_scores, cand_labels - 1, self.nms_thresh)
            new_scores = cand_scores[keep]
        elif self.nms_method == "nms":
            keep = box_ops.batched_nms(cand_boxes, cand_scores, cand_labels, self.nms_thresh)
            new_scores = cand_scores[keep]
        else:
            keep, new_scores = soft_nms(
                cand_boxes,
                cand_scores,
                cand_labels,
                iou_threshold=self.nms_thresh,
                sigma=self.soft_nms_sigma,
                method=self.soft_nms_kind,
                score_threshold=self.score_thresh,
            )
            keep = torch.as_tensor(keep, dtype=torch.int64, device=cand_scores.device)
            new_scores = torch.as_tensor(new_scores, dtype=cand_scores.dtype, device=cand_scores.device)
            order = torch.argsort(new_scores, descending=True)
            keep, new_scores = keep[order], new_scores[order]
        keep, new_scores = keep[: self.detections_per_img], new_scores[: self.detections_per_img]
        return {"boxes": cand_boxes[keep], "labels": cand_labels[keep], "scores": new_scores}
