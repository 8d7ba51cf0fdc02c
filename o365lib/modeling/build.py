"""``build_detector``: one call from a few literals to a ready ``CascadeRCNN``.

The call resolves its arguments into a :class:`DetectorConfig`: a preset of
:mod:`o365lib.modeling.presets` (``"tiny"``, ``"resnet"``, ``"mmdet"``; one frozen dataclass each)
with the call's overrides applied, plus what follows from the backbone and its weights (norm,
trainable stages). :func:`assemble_detector` builds the model from such a config. Every preset
value can be overridden by a keyword argument; ``None`` means "the preset's value".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RPNHead

from o365lib.modeling.anchors import StridedAnchorGenerator
from o365lib.modeling.backbones import BACKBONES, build_backbone
from o365lib.modeling.box_coding import StdBoxCoder
from o365lib.modeling.cascade import BOX_WEIGHTS, IOU_THRESHOLDS, STAGE_LOSS_WEIGHTS, CascadeRoIHeads
from o365lib.modeling.detector import CascadeRCNN
from o365lib.modeling.presets import (
    IMAGE_MEAN,
    IMAGE_STD,
    MMDET_IMAGE_MEAN,
    MMDET_IMAGE_STD,
    PRESET_CONFIGS,
    PRESETS,
    DetectorPreset,
    default_anchor_sizes,
    preset_of,
)
from o365lib.modeling.proposals import ProposalNetwork
from o365lib.modeling.transfer import load_model_weights
from o365lib.modeling.transform import DetectionTransform

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "MMDET_IMAGE_MEAN",
    "MMDET_IMAGE_STD",
    "PRESETS",
    "PRESET_CONFIGS",
    "DetectorConfig",
    "FloatRPNHead",
    "assemble_detector",
    "build_detector",
    "default_anchor_sizes",
    "preset_of",
]


class FloatRPNHead(RPNHead):
    """torchvision's ``RPNHead`` with float32 outputs.

    Under bf16 autocast the RPN would otherwise decode proposals in bf16 (coordinates off by
    several pixels at 800 px); state-dict keys are unchanged.
    """

    def forward(self, x):
        logits, deltas = super().forward(x)
        return [t.float() for t in logits], [t.float() for t in deltas]


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Everything :func:`assemble_detector` reads, resolved.

    ``preset`` holds the preset's values with the call's overrides, its ``min_size`` as the tuple the
    transform picks among, its ``max_size`` raised for large ``min_size`` and its ``anchor_sizes``
    filled in (:func:`~o365lib.modeling.presets.default_anchor_sizes`) and checked.
    """

    num_classes: int
    backbone: str
    preset_name: str
    preset: DetectorPreset
    dcn: bool
    norm: str
    trainable_layers: int
    backbone_weights: str | Path | None
    aspect_ratios: tuple[float, ...]
    roi_output_size: int
    iou_thresholds: Sequence[float]
    box_weights: Sequence[Sequence[float]]
    stage_loss_weights: Sequence[float]
    score_thresh: float
    nms_thresh: float
    detections_per_img: int
    class_loss: str
    class_loss_options: dict | None
    class_counts: Sequence[float] | None
    image_counts: Sequence[float] | None


#: Overridable preset fields where 0 is a value; for the others only a truthy argument replaces the
#: preset's value (an argument of 0 or an empty tuple keeps it).
_ZERO_IS_A_VALUE = frozenset({"box_positive_fraction", "roi_sampling_ratio"})


def _given(overrides: dict) -> dict:
    """The overrides that replace a preset value (see ``_ZERO_IS_A_VALUE``)."""
    return {name: value for name, value in overrides.items()
            if (value is not None if name in _ZERO_IS_A_VALUE else value)}


def _resolved_preset(name: str, overrides: dict, max_size: int | None) -> DetectorPreset:
    """The preset ``name`` with ``overrides``; min sizes as a tuple, max size and anchor sizes resolved."""
    chosen = replace(PRESET_CONFIGS[name], **_given(overrides))
    min_size = chosen.min_size
    min_sizes = tuple(min_size) if isinstance(min_size, (list, tuple)) else (int(min_size),)
    anchor_sizes = chosen.anchor_sizes or default_anchor_sizes(max(min_sizes))
    anchor_sizes = tuple(tuple(int(s) for s in level) for level in anchor_sizes)
    levels = len(chosen.returned_layers) + 1
    if len(anchor_sizes) != levels or len({len(a) for a in anchor_sizes}) != 1:
        raise ValueError(
            f"anchor_sizes needs {levels} levels (one per FPN level) with the same "
            f"number of sizes each, got {anchor_sizes}"
        )
    return replace(chosen, min_size=min_sizes, anchor_sizes=anchor_sizes,
                   max_size=max_size or max(chosen.max_size, round(max(min_sizes) * 1333 / 800)))


def build_detector(
    num_classes: int,
    *,
    backbone: str = "tiny",
    dcn: bool = False,
    fpn_channels: int | None = None,
    min_size: int | Sequence[int] | None = None,
    max_size: int | None = None,
    backbone_weights: str | Path | None = None,
    weights: str | Path | None = None,
    norm: str | None = None,
    trainable_layers: int | None = None,
    anchor_sizes: Sequence[Sequence[int]] | None = None,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    rpn_pre_nms_top_n: tuple[int, int] | None = None,
    rpn_post_nms_top_n: tuple[int, int] | None = None,
    rpn_batch_size_per_image: int | None = None,
    box_batch_size_per_image: int | None = None,
    box_positive_fraction: float | None = None,
    representation_size: int | None = None,
    roi_output_size: int = 7,
    roi_sampling_ratio: int | None = None,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    box_weights: Sequence[Sequence[float]] = BOX_WEIGHTS,
    stage_loss_weights: Sequence[float] = STAGE_LOSS_WEIGHTS,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    max_candidates: int | None = None,
    preset: str | None = None,
    stage_score_average: str | None = None,
    class_loss: str = "softmax",
    class_loss_options: dict | None = None,
    class_counts: Sequence[float] | None = None,
    image_counts: Sequence[float] | None = None,
) -> CascadeRCNN:
    """A Cascade R-CNN (3 stages, FPN, RPN) for ``num_classes`` foreground classes (labels 1..K).

    Args:
        backbone: ``"tiny"`` or a torchvision ResNet/ResNeXt name (see ``BACKBONES``); never downloads.
        dcn: deformable convolutions in stages c3-c5.
        backbone_weights: local file with backbone (e.g. ImageNet) weights; missing/mismatched keys
            raise ``ValueError`` naming the file.
        weights: local file with a full model (a training checkpoint or a raw state dict), loaded
            strictly after construction.
        norm: ``"bn"``, ``"gn"`` or ``"frozen_bn"``; default ``"bn"`` for tiny, ``"frozen_bn"``
            for a ResNet with ``backbone_weights`` and ``"gn"`` for one trained from scratch.
        trainable_layers: trainable backbone stages counted from c5 (0..5); default 3 with
            ``backbone_weights`` (stem and c2 frozen, as usual for pretrained ResNets), else 5.
        min_size: training/test short side (an int or a tuple; the transform picks among them).
        rpn_pre_nms_top_n, rpn_post_nms_top_n: (training, testing) proposal counts per FPN level /
            per image.
        box_batch_size_per_image, box_positive_fraction: RoIs sampled per image for each cascade
            stage and their foreground share (tiny: 64 at 0.75, which tripled what the box heads learn
            per CPU step at 128 px, see README "Measured"; resnet/mmdet: 512 at 0.25).
        max_candidates: (box, class) pairs above ``score_thresh`` entering NMS, highest first
            (tiny: 1000, which keeps CPU NMS of 365 classes at ~3 ms per image instead of ~30 ms).
        preset: ``"tiny"``, ``"resnet"`` or ``"mmdet"`` (:mod:`o365lib.modeling.presets`); default
            ``"tiny"`` for the tiny backbone, else ``"resnet"``.
        stage_score_average: ``"probabilities"`` (tiny/resnet) or ``"logits"`` (mmdet).
        class_loss: the box heads' classification loss by name: ``"softmax"`` (cross-entropy, the
            default), ``"seesaw"``, ``"eqlv2"`` or ``"federated"`` (``o365lib.modeling.losses``),
            with ``class_loss_options`` (e.g. Seesaw's ``p``, ``q``); ``class_counts`` (Seesaw's optional
            start of its running counts) and ``image_counts`` (Federated's sampling weights) are per-class
            training instances / images in label order.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
    preset_name = preset_of(backbone, preset)
    if preset_name not in PRESET_CONFIGS:
        raise ValueError(f"unknown preset {preset_name!r}; choose one of {tuple(PRESET_CONFIGS)}")
    if preset_name != "tiny" and backbone == "tiny":
        raise ValueError(f"preset {preset_name!r} needs a ResNet/ResNeXt backbone, got 'tiny'")
    overrides = {
        "fpn_channels": fpn_channels, "min_size": min_size, "anchor_sizes": anchor_sizes,
        "rpn_pre_nms_top_n": rpn_pre_nms_top_n, "rpn_post_nms_top_n": rpn_post_nms_top_n,
        "rpn_batch_size_per_image": rpn_batch_size_per_image,
        "box_batch_size_per_image": box_batch_size_per_image,
        "box_positive_fraction": box_positive_fraction, "representation_size": representation_size,
        "roi_sampling_ratio": roi_sampling_ratio, "max_candidates": max_candidates,
        "stage_score_average": stage_score_average,
    }
    pretrained = backbone_weights is not None or preset_name == "mmdet"
    if norm is None:
        norm = "bn" if backbone == "tiny" else ("frozen_bn" if pretrained else "gn")
    config = DetectorConfig(
        num_classes=num_classes, backbone=backbone, preset_name=preset_name, dcn=dcn,
        preset=_resolved_preset(preset_name, overrides, max_size),
        norm=norm,
        trainable_layers=trainable_layers if trainable_layers is not None else (3 if pretrained else 5),
        backbone_weights=backbone_weights, aspect_ratios=tuple(aspect_ratios),
        roi_output_size=roi_output_size,
        iou_thresholds=iou_thresholds, box_weights=box_weights, stage_loss_weights=stage_loss_weights,
        score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
        class_loss=class_loss, class_loss_options=class_loss_options, class_counts=class_counts,
        image_counts=image_counts,
    )
    model = assemble_detector(config)
    if weights is not None:
        load_model_weights(model, weights)
    return model


def _proposal_network(config: DetectorConfig) -> ProposalNetwork:
    """Anchors and the RPN of a resolved config."""
    p = config.preset
    ratios = (config.aspect_ratios,) * len(p.anchor_sizes)
    if p.anchor_strides is None:
        anchor_generator = AnchorGenerator(sizes=p.anchor_sizes, aspect_ratios=ratios)
    else:
        anchor_generator = StridedAnchorGenerator(
            sizes=p.anchor_sizes, aspect_ratios=ratios, strides=p.anchor_strides
        )
    rpn = ProposalNetwork(
        anchor_generator,
        FloatRPNHead(p.fpn_channels, anchor_generator.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=p.rpn_batch_size_per_image,
        positive_fraction=0.5,
        pre_nms_top_n={"training": p.rpn_pre_nms_top_n[0], "testing": p.rpn_pre_nms_top_n[1]},
        post_nms_top_n={"training": p.rpn_post_nms_top_n[0], "testing": p.rpn_post_nms_top_n[1]},
        nms_thresh=0.7,
        selection=p.rpn_selection,
    )
    if p.rpn_selection == "mmdet":
        rpn.box_coder = StdBoxCoder((1.0, 1.0, 1.0, 1.0))
    return rpn


def assemble_detector(config: DetectorConfig) -> CascadeRCNN:
    """The ``CascadeRCNN`` a resolved config describes: backbone (+ FPN), RPN, cascade heads, transform.

    Modules are made in a fixed order (backbone, RPN head, box heads), so the same seed gives the
    same initial weights. ``model.config`` records the settings a checkpoint is rebuilt from.
    """
    p = config.preset
    body = build_backbone(
        config.backbone,
        fpn_channels=p.fpn_channels,
        norm=config.norm,
        dcn=config.dcn,
        weights_path=config.backbone_weights,
        trainable_layers=config.trainable_layers,
        returned_layers=p.returned_layers,
    )
    rpn = _proposal_network(config)
    roi_heads = CascadeRoIHeads(
        num_classes=config.num_classes,
        in_channels=p.fpn_channels,
        roi_output_size=config.roi_output_size,
        representation_size=p.representation_size,
        batch_size_per_image=p.box_batch_size_per_image,
        positive_fraction=p.box_positive_fraction,
        iou_thresholds=config.iou_thresholds,
        box_weights=config.box_weights,
        stage_loss_weights=config.stage_loss_weights,
        featmap_names=[str(index) for index in range(len(p.returned_layers))],
        sampling_ratio=p.roi_sampling_ratio,
        roi_aligned=p.roi_aligned,
        roi_level_mapping=p.roi_level_mapping,
        roi_strides=p.roi_strides if len(p.returned_layers) == 4 else None,
        roi_canonical_scale=p.roi_canonical_scale,
        box_stds=p.box_stds,
        box_loss_beta=p.box_loss_beta,
        stage_score_average=p.stage_score_average,
        class_loss=config.class_loss,
        class_loss_options=config.class_loss_options,
        class_counts=config.class_counts,
        image_counts=config.image_counts,
    )
    transform = DetectionTransform(
        p.min_size, p.max_size, p.image_mean, p.image_std, input_scale=p.input_scale
    )
    model = CascadeRCNN(
        transform=transform, backbone=body, rpn=rpn, roi_heads=roi_heads, num_classes=config.num_classes,
        score_thresh=config.score_thresh, nms_thresh=config.nms_thresh,
        detections_per_img=config.detections_per_img,
        max_candidates=p.max_candidates, min_box_size=p.min_box_size, nms_style=p.nms_style,
    )
    model.config = {
        "num_classes": config.num_classes, "backbone": config.backbone, "dcn": config.dcn,
        "fpn_channels": p.fpn_channels, "min_size": list(p.min_size), "max_size": p.max_size,
        "norm": config.norm,
        "preset": config.preset_name, "class_loss": config.class_loss,
        "class_loss_options": dict(config.class_loss_options or {}),
    }
    return model
