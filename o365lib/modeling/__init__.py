"""Cascade R-CNN (3 stages, FPN, optional DCN) on torchvision parts.

``build_detector(num_classes, backbone="tiny" | "resnet50" | "resnext101_64x4d" | ..., dcn=...)``
returns a ``CascadeRCNN``; ``load_model_weights`` / ``load_backbone_weights`` read local files.
"""

from o365lib.modeling.backbones import BACKBONES, TinyBackbone, build_backbone
from o365lib.modeling.build import PRESETS, build_detector, default_anchor_sizes
from o365lib.modeling.cascade import BOX_WEIGHTS, IOU_THRESHOLDS, STAGE_LOSS_WEIGHTS, CascadeRoIHeads
from o365lib.modeling.deform import DeformableConv2d, convert_to_deformable
from o365lib.modeling.detector import NMS_METHODS, CascadeRCNN
from o365lib.modeling.weights import (
    load_backbone_weights,
    load_model_weights,
    read_state_dict,
    read_weights_file,
)

__all__ = [
    "BACKBONES",
    "BOX_WEIGHTS",
    "IOU_THRESHOLDS",
    "NMS_METHODS",
    "PRESETS",
    "STAGE_LOSS_WEIGHTS",
    "CascadeRCNN",
    "CascadeRoIHeads",
    "DeformableConv2d",
    "TinyBackbone",
    "build_backbone",
    "build_detector",
    "convert_to_deformable",
    "default_anchor_sizes",
    "load_backbone_weights",
    "load_model_weights",
    "read_state_dict",
    "read_weights_file",
]
