"""Cascade R-CNN (3 stages, FPN, optional DCN) on torchvision parts, with mmdet 3.x interop.

``build_detector(num_classes, backbone="tiny" | "resnet50" | "resnext101_64x4d" | ..., dcn=...,
preset=None | "mmdet")`` returns a ``CascadeRCNN``; ``load_mmdet_checkpoint`` /
``save_mmdet_checkpoint`` read and write mmdet checkpoints; ``o365lib.modeling.transfer`` holds all
weight loading and transfer (``init_detector_weights`` for COCO-pretrained starts).
"""

from o365lib.modeling.anchors import StridedAnchorGenerator
from o365lib.modeling.backbones import BACKBONES, TinyBackbone, build_backbone
from o365lib.modeling.build import DetectorConfig, assemble_detector, build_detector
from o365lib.modeling.cascade import (
    BOX_WEIGHTS,
    IOU_THRESHOLDS,
    MMDET_BOX_STDS,
    STAGE_LOSS_WEIGHTS,
    STAGE_SCORE_AVERAGES,
    CascadeRoIHeads,
)
from o365lib.modeling.coco_objects365_names import COCO80_NAMES, canonical_name, match_category_names
from o365lib.modeling.deform import DeformableConv2d, convert_to_deformable
from o365lib.modeling.detector import NMS_METHODS, NMS_STYLES, CascadeRCNN
from o365lib.modeling.losses import CLASS_LOSSES, ClassLoss, build_class_loss
from o365lib.modeling.mmdet_checkpoint import load_mmdet_checkpoint, save_mmdet_checkpoint
from o365lib.modeling.presets import PRESET_CONFIGS, PRESETS, DetectorPreset, default_anchor_sizes
from o365lib.modeling.transfer import (
    init_detector_weights,
    load_backbone_weights,
    load_model_weights,
    read_state_dict,
    read_weights_file,
    transfer_weights,
)

__all__ = [
    "BACKBONES",
    "BOX_WEIGHTS",
    "CLASS_LOSSES",
    "COCO80_NAMES",
    "IOU_THRESHOLDS",
    "MMDET_BOX_STDS",
    "NMS_METHODS",
    "NMS_STYLES",
    "PRESETS",
    "PRESET_CONFIGS",
    "STAGE_LOSS_WEIGHTS",
    "STAGE_SCORE_AVERAGES",
    "CascadeRCNN",
    "CascadeRoIHeads",
    "ClassLoss",
    "DeformableConv2d",
    "DetectorConfig",
    "DetectorPreset",
    "StridedAnchorGenerator",
    "TinyBackbone",
    "assemble_detector",
    "build_backbone",
    "build_class_loss",
    "build_detector",
    "canonical_name",
    "convert_to_deformable",
    "default_anchor_sizes",
    "init_detector_weights",
    "load_backbone_weights",
    "load_mmdet_checkpoint",
    "load_model_weights",
    "match_category_names",
    "read_state_dict",
    "read_weights_file",
    "save_mmdet_checkpoint",
    "transfer_weights",
]
