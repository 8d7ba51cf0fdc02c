"""``build_detector``: one call from a few literals to a ready ``CascadeRCNN``.

Two size presets keep the arguments short:

- ``backbone="tiny"``: 128 px images (the CPU book), FPN 64 channels on c2-c5 (strides 4-64),
  anchors 8-181 px (two sizes per level, about 2x the stride, so that every object of 7-92 px has an
  anchor of IoU >= 0.5), RoIAlign with one sample per bin on the level where a box is ~8x the stride
  (canonical 64 px at level 4: boxes under 32 px pool at stride 4, 64-128 px at stride 16), a small
  RPN budget (600/300 proposals before/after NMS in training, 300/100 at test), 64 sampled RoIs
  per image (the box head's share of a CPU step stays small), a 256-d box head;
- any ResNet/ResNeXt: the usual 800x1333 Cascade R-CNN settings (FPN 256, anchors 32-512 px,
  2000/2000 and 1000/1000 proposals, 512 RoIs, a 1024-d box head), anchors scaled down for smaller
  ``min_size``.

- ``preset="mmdet"`` (any ResNet/ResNeXt): mmdet 3.x's Cascade R-CNN inference, number for number
  (``o365lib.modeling.mmdet_checkpoint`` loads its checkpoints into it): unrounded anchors at fixed
  strides 4-64, mmdet's proposal selection, aligned RoIAlign with adaptive sampling and mmdet's
  level rule, box deltas times mmdet's stds, logits averaged over the stages, mmdet's class-aware
  NMS and no box-size filter or candidate cap, normalisation on the 0-255 scale, SmoothL1 beta 1.0.
  README.md "Differences from mmdet defaults" lists what the default presets do instead.

Every preset value can be overridden by a keyword argument; ``None`` means "the preset's value".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RPNHead

from o365lib.modeling.anchors import StridedAnchorGenerator
from o365lib.modeling.backbones import BACKBONES, build_backbone
from o365lib.modeling.box_coding import StdBoxCoder
from o365lib.modeling.cascade import (
    BOX_WEIGHTS,
    IOU_THRESHOLDS,
    MMDET_BOX_STDS,
    STAGE_LOSS_WEIGHTS,
    CascadeRoIHeads,
)
from o365lib.modeling.detector import CascadeRCNN
from o365lib.modeling.proposals import ProposalNetwork
from o365lib.modeling.transfer import load_model_weights
from o365lib.modeling.transform import DetectionTransform


class FloatRPNHead(RPNHead):
    """torchvision's ``RPNHead`` with float32 outputs.

    Under bf16 autocast the RPN would otherwise decode proposals in bf16 (coordinates off by
    several pixels at 800 px); state-dict keys are unchanged.
    """

    def forward(self, x):
        logits, deltas = super().forward(x)
        return [t.float() for t in logits], [t.float() for t in deltas]


IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
#: mmdet's ``DetDataPreprocessor`` mean/std (RGB, 0-255 scale).
MMDET_IMAGE_MEAN = (123.675, 116.28, 103.53)
MMDET_IMAGE_STD = (58.395, 57.12, 57.375)

#: What the torchvision-flavoured presets use (and "mmdet" overrides).
_TORCHVISION_INFERENCE = {
    "anchor_strides": None,
    "rpn_selection": "torchvision",
    "roi_aligned": False,
    "roi_level_mapping": "torchvision",
    "roi_strides": None,
    "box_stds": None,
    "box_loss_beta": 1.0 / 9,
    "stage_score_average": "probabilities",
    "min_box_size": 1e-2,
    "nms_style": "torchvision",
    "image_mean": IMAGE_MEAN,
    "image_std": IMAGE_STD,
    "input_scale": 1.0,
}

PRESETS: dict[str, dict] = {
    "tiny": {
        "fpn_channels": 64,
        "min_size": 128,
        "max_size": 213,
        # training keeps 150 proposals per level before NMS and 100 per image after it (was 600 / 300: a
        # third of each step went to NMS for 128 px images holding 6-16 objects); regime kept, bench/README.md
        "rpn_pre_nms_top_n": (150, 300),
        "rpn_post_nms_top_n": (100, 100),
        "rpn_batch_size_per_image": 128,
        "box_batch_size_per_image": 64, "box_positive_fraction": 0.75,
        "representation_size": 256,
        "returned_layers": (1, 2, 3, 4),
        "anchor_sizes": ((8, 11), (16, 23), (32, 45), (64, 91), (128, 181)),
        "roi_sampling_ratio": 1,
        "roi_canonical_scale": 64,
        "max_candidates": 1000,
        **_TORCHVISION_INFERENCE,
    },
    "resnet": {
        "fpn_channels": 256,
        "min_size": 800,
        "max_size": 1333,
        "rpn_pre_nms_top_n": (2000, 1000),
        "rpn_post_nms_top_n": (2000, 1000),
        "rpn_batch_size_per_image": 256,
        "box_batch_size_per_image": 512, "box_positive_fraction": 0.25,
        "representation_size": 1024,
        "returned_layers": (1, 2, 3, 4),
        "anchor_sizes": None,
        "roi_sampling_ratio": 2,
        "roi_canonical_scale": 224,
        "max_candidates": 5000,
        **_TORCHVISION_INFERENCE,
    },
    "mmdet": {
        "fpn_channels": 256,
        "min_size": 800,
        "max_size": 1333,
        "rpn_pre_nms_top_n": (2000, 1000),
        "rpn_post_nms_top_n": (2000, 1000),
        "rpn_batch_size_per_image": 256,
        "box_batch_size_per_image": 512, "box_positive_fraction": 0.25,
        "representation_size": 1024,
        "returned_layers": (1, 2, 3, 4),
        "anchor_sizes": ((32,), (64,), (128,), (256,), (512,)),
        "roi_sampling_ratio": 0,
        "roi_canonical_scale": 224,
        "max_candidates": None,
        "anchor_strides": (4, 8, 16, 32, 64),
        "rpn_selection": "mmdet",
        "roi_aligned": True,
        "roi_level_mapping": "mmdet",
        "roi_strides": (4, 8, 16, 32),
        "box_stds": MMDET_BOX_STDS,
        "box_loss_beta": 1.0,
        "stage_score_average": "logits",
        "min_box_size": 0.0,
        "nms_style": "mmdet",
        "image_mean": MMDET_IMAGE_MEAN,
        "image_std": MMDET_IMAGE_STD,
        "input_scale": 255.0,
    },
}


def default_anchor_sizes(min_size: int) -> tuple[tuple[int, ...], ...]:
    """ResNet anchor sizes for FPN levels P2..P6: 32-512 px from 600 px images up, else 16-256."""
    base = 16 if min_size <= 600 else 32
    return tuple((base * 2**level,) for level in range(5))


def preset_of(backbone: str, preset: str | None = None) -> str:
    """The preset ``build_detector`` uses: ``preset``, else "tiny" for the tiny backbone, else "resnet"."""
    return preset or ("tiny" if backbone == "tiny" else "resnet")


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
        preset: ``"tiny"``, ``"resnet"`` or ``"mmdet"`` (see the module docstring); default
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
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose one of {tuple(PRESETS)}")
    if preset_name != "tiny" and backbone == "tiny":
        raise ValueError(f"preset {preset_name!r} needs a ResNet/ResNeXt backbone, got 'tiny'")
    preset = PRESETS[preset_name]
    fpn_channels = fpn_channels or preset["fpn_channels"]
    min_size = min_size or preset["min_size"]
    min_sizes = tuple(min_size) if isinstance(min_size, (list, tuple)) else (int(min_size),)
    max_size = max_size or max(preset["max_size"], round(max(min_sizes) * 1333 / 800))
    if norm is None:
        pretrained = backbone_weights is not None or preset_name == "mmdet"
        norm = "bn" if backbone == "tiny" else ("frozen_bn" if pretrained else "gn")
    if trainable_layers is None:
        trainable_layers = 3 if backbone_weights is not None or preset_name == "mmdet" else 5
    returned_layers = preset["returned_layers"]
    anchor_sizes = anchor_sizes or preset["anchor_sizes"] or default_anchor_sizes(max(min_sizes))
    anchor_sizes = tuple(tuple(int(s) for s in level) for level in anchor_sizes)
    if len(anchor_sizes) != len(returned_layers) + 1 or len({len(a) for a in anchor_sizes}) != 1:
        raise ValueError(
            f"anchor_sizes needs {len(returned_layers) + 1} levels (one per FPN level) with the same "
            f"number of sizes each, got {anchor_sizes}"
        )

    body = build_backbone(
        backbone,
        fpn_channels=fpn_channels,
        norm=norm,
        dcn=dcn,
        weights_path=backbone_weights,
        trainable_layers=trainable_layers,
        returned_layers=returned_layers,
    )
    ratios = (tuple(aspect_ratios),) * len(anchor_sizes)
    if preset["anchor_strides"] is None:
        anchor_generator = AnchorGenerator(sizes=anchor_sizes, aspect_ratios=ratios)
    else:
        anchor_generator = StridedAnchorGenerator(
            sizes=anchor_sizes, aspect_ratios=ratios, strides=preset["anchor_strides"]
        )
    pre_nms = rpn_pre_nms_top_n or preset["rpn_pre_nms_top_n"]
    post_nms = rpn_post_nms_top_n or preset["rpn_post_nms_top_n"]
    rpn = ProposalNetwork(
        anchor_generator,
        FloatRPNHead(fpn_channels, anchor_generator.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=rpn_batch_size_per_image or preset["rpn_batch_size_per_image"],
        positive_fraction=0.5,
        pre_nms_top_n={"training": pre_nms[0], "testing": pre_nms[1]},
        post_nms_top_n={"training": post_nms[0], "testing": post_nms[1]},
        nms_thresh=0.7,
        selection=preset["rpn_selection"],
    )
    if preset["rpn_selection"] == "mmdet":
        rpn.box_coder = StdBoxCoder((1.0, 1.0, 1.0, 1.0))
    roi_heads = CascadeRoIHeads(
        num_classes=num_classes,
        in_channels=fpn_channels,
        roi_output_size=roi_output_size,
        representation_size=representation_size or preset["representation_size"],
        batch_size_per_image=box_batch_size_per_image or preset["box_batch_size_per_image"],
        positive_fraction=preset["box_positive_fraction"] if box_positive_fraction is None else box_positive_fraction,
        iou_thresholds=iou_thresholds,
        box_weights=box_weights,
        stage_loss_weights=stage_loss_weights,
        featmap_names=[str(index) for index in range(len(returned_layers))],
        sampling_ratio=preset["roi_sampling_ratio"] if roi_sampling_ratio is None else roi_sampling_ratio,
        roi_aligned=preset["roi_aligned"],
        roi_level_mapping=preset["roi_level_mapping"],
        roi_strides=preset["roi_strides"] if len(returned_layers) == 4 else None,
        roi_canonical_scale=preset["roi_canonical_scale"],
        box_stds=preset["box_stds"],
        box_loss_beta=preset["box_loss_beta"],
        stage_score_average=stage_score_average or preset["stage_score_average"],
        class_loss=class_loss,
        class_loss_options=class_loss_options,
        class_counts=class_counts,
        image_counts=image_counts,
    )
    transform = DetectionTransform(
        min_sizes,
        max_size,
        preset["image_mean"],
        preset["image_std"],
        input_scale=preset["input_scale"],
    )
    model = CascadeRCNN(
        transform=transform,
        backbone=body,
        rpn=rpn,
        roi_heads=roi_heads,
        num_classes=num_classes,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        max_candidates=max_candidates or preset["max_candidates"],
        min_box_size=preset["min_box_size"],
        nms_style=preset["nms_style"],
    )
    model.config = {
        "num_classes": num_classes,
        "backbone": backbone,
        "dcn": dcn,
        "fpn_channels": fpn_channels,
        "min_size": list(min_sizes),
        "max_size": max_size,
        "norm": norm,
        "preset": preset_name,
        "class_loss": class_loss,
        "class_loss_options": dict(class_loss_options or {}),
    }
    if weights is not None:
        load_model_weights(model, weights)
    return model
