"""State-dict translation between mmdet 2.x/3.x Cascade R-CNN checkpoints and ``CascadeRCNN``.

mmdet's ResNet/ResNeXt (``style="pytorch"``) uses torchvision's parameter names, so the backbone
only changes prefix; its deformable convolutions (mmcv ``DeformConv2dPack``: ``conv2.weight`` +
``conv2.conv_offset``, offsets as (dy, dx) pairs) are ``DeformableConv2d``'s names and layout. The
rest is renamed:

=========================================  =================================================
mmdet                                      here
=========================================  =================================================
``backbone.*``                             ``backbone.body.*``
``neck.lateral_convs.{i}.conv.*``          ``backbone.fpn.inner_blocks.{i}.0.*``
``neck.fpn_convs.{i}.conv.*``              ``backbone.fpn.layer_blocks.{i}.0.*``
``rpn_head.rpn_conv.*``                    ``rpn.head.conv.0.0.*``
``rpn_head.rpn_cls.*`` (sigmoid, A)        ``rpn.head.cls_logits.*``
``rpn_head.rpn_reg.*``                     ``rpn.head.bbox_pred.*``
``roi_head.bbox_head.{t}.shared_fcs.0.*``  ``roi_heads.stages.{t}.box_head.fc6.*``
``roi_head.bbox_head.{t}.shared_fcs.1.*``  ``roi_heads.stages.{t}.box_head.fc7.*``
``roi_head.bbox_head.{t}.fc_cls.*``        ``roi_heads.stages.{t}.box_predictor.cls_score.*``
``roi_head.bbox_head.{t}.fc_reg.*`` (4)    ``roi_heads.stages.{t}.box_predictor.bbox_pred.*``
=========================================  =================================================

mmdet puts the background logit *last* (``fc_cls`` rows: classes 0..C-1, then background); here it
is row 0, so classifier rows are rotated by one on the way in and back on the way out. BN's
``num_batches_tracked`` counters (mmdet) have no counterpart in frozen BN and are dropped / written
as zeros.
"""

from __future__ import annotations

import re

import torch

_RENAMES = (  # (mmdet pattern, our pattern), applied to the key's head
    (r"^neck\.lateral_convs\.(\d+)\.conv\.", r"backbone.fpn.inner_blocks.\1.0."),
    (r"^neck\.fpn_convs\.(\d+)\.conv\.", r"backbone.fpn.layer_blocks.\1.0."),
    (r"^rpn_head\.rpn_conv\.", r"rpn.head.conv.0.0."),
    (r"^rpn_head\.rpn_cls\.", r"rpn.head.cls_logits."),
    (r"^rpn_head\.rpn_reg\.", r"rpn.head.bbox_pred."),
    (r"^roi_head\.bbox_head\.(\d+)\.shared_fcs\.0\.", r"roi_heads.stages.\1.box_head.fc6."),
    (r"^roi_head\.bbox_head\.(\d+)\.shared_fcs\.1\.", r"roi_heads.stages.\1.box_head.fc7."),
    (r"^roi_head\.bbox_head\.(\d+)\.fc_cls\.", r"roi_heads.stages.\1.box_predictor.cls_score."),
    (r"^roi_head\.bbox_head\.(\d+)\.fc_reg\.", r"roi_heads.stages.\1.box_predictor.bbox_pred."),
    (r"^backbone\.", r"backbone.body."),
)
_REVERSE = (
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.0\.", r"neck.lateral_convs.\1.conv."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.0\.", r"neck.fpn_convs.\1.conv."),
    (r"^rpn\.head\.conv\.0\.0\.", r"rpn_head.rpn_conv."),
    (r"^rpn\.head\.cls_logits\.", r"rpn_head.rpn_cls."),
    (r"^rpn\.head\.bbox_pred\.", r"rpn_head.rpn_reg."),
    (r"^roi_heads\.stages\.(\d+)\.box_head\.fc6\.", r"roi_head.bbox_head.\1.shared_fcs.0."),
    (r"^roi_heads\.stages\.(\d+)\.box_head\.fc7\.", r"roi_head.bbox_head.\1.shared_fcs.1."),
    (r"^roi_heads\.stages\.(\d+)\.box_predictor\.cls_score\.", r"roi_head.bbox_head.\1.fc_cls."),
    (r"^roi_heads\.stages\.(\d+)\.box_predictor\.bbox_pred\.", r"roi_head.bbox_head.\1.fc_reg."),
    (r"^backbone\.body\.", r"backbone."),
)
_CLASSIFIER = re.compile(r"(^roi_head\.bbox_head\.\d+\.fc_cls\.|\.box_predictor\.cls_score\.)(weight|bias)$")
_MMDET_MARKERS = ("roi_head.bbox_head.", "rpn_head.", "neck.lateral_convs.")
_BACKBONE_DEPTHS = {3: 18, 6: 50, 23: 101, 36: 152}  # blocks in c4 -> depth (bottleneck nets)


def _rename(key: str, rules) -> str | None:
    for pattern, replacement in rules:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return None


def is_mmdet_state_dict(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` uses mmdet's two-stage detector key names."""
    return any(key.startswith(_MMDET_MARKERS) for key in state)


def mmdet_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mmdet keys -> ``CascadeRCNN`` keys, background row moved first; unknown keys raise."""
    converted, unknown = {}, []
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.endswith("num_batches_tracked"):
            continue
        new = _rename(key, _RENAMES)
        if new is None:
            unknown.append(key)
            continue
        if _CLASSIFIER.search(key):
            value = torch.roll(value, shifts=1, dims=0)  # [c0..cK-1, bg] -> [bg, c0..cK-1]
        converted[new] = value
    if unknown:
        raise ValueError(f"mmdet checkpoint has keys this detector does not know: {unknown[:8]} "
                         f"({len(unknown)} in all); only Cascade R-CNN box heads are supported")
    return converted


def ours_to_mmdet(state: dict[str, torch.Tensor], *, batch_norm_counters: bool = True) -> dict[str, torch.Tensor]:
    """``CascadeRCNN`` keys -> mmdet keys (background row moved last), for mmdet's ``load_checkpoint``."""
    converted = {}
    for key, value in state.items():
        new = _rename(key, _REVERSE)
        if new is None:
            raise ValueError(f"parameter {key!r} has no mmdet counterpart")
        if _CLASSIFIER.search(key):
            value = torch.roll(value, shifts=-1, dims=0)
        converted[new] = value.detach().clone()
        if batch_norm_counters and new.endswith(".running_var"):
            counter = new.removesuffix("running_var") + "num_batches_tracked"
            converted.setdefault(counter, torch.tensor(0, dtype=torch.int64))
    return converted


def mmdet_architecture(state: dict[str, torch.Tensor]) -> dict:
    """``build_detector`` arguments read off an mmdet Cascade R-CNN state dict.

    Returns ``backbone`` (torchvision-style name), ``dcn``, ``num_classes``, ``fpn_channels``,
    ``representation_size``. Raises ``ValueError`` for what ``CascadeRCNN`` cannot represent
    (class-specific regression, DCN in only some stages, modulated DCN, another stage count).
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
    if not blocks or "backbone.layer1.0.conv3.weight" not in state:
        raise ValueError("mmdet checkpoint has no ResNet/ResNeXt bottleneck backbone (backbone.layer*.conv3)")
    depth = _BACKBONE_DEPTHS.get(len(blocks))
    if depth is None:
        raise ValueError(f"unsupported ResNet depth: {len(blocks)} blocks in layer3")
    conv2 = state["backbone.layer1.0.conv2.weight"]
    width, groups = conv2.shape[0], conv2.shape[0] // conv2.shape[1]
    if groups == 1 and width == 64:
        backbone = f"resnet{depth}"
    else:
        backbone = f"resnext{depth}_{groups}x{width // groups}d"
    offsets = {k.split(".")[1] for k in state if k.endswith("conv2.conv_offset.weight")}
    dcn = bool(offsets)
    if dcn and offsets != {"layer2", "layer3", "layer4"}:
        raise ValueError(f"DCN in stages {sorted(offsets)}; only c3-c5 (layer2-layer4) is supported")
    if dcn and any(v.shape[0] != 18 for k, v in state.items() if k.endswith("conv_offset.weight")):
        raise ValueError("modulated or grouped DCN offsets (not 18 channels) are not supported")
    stages = {int(m.group(1)) for k in state if (m := re.match(r"roi_head\.bbox_head\.(\d+)\.fc_cls\.", k))}
    if stages != {0, 1, 2}:
        raise ValueError(f"expected a 3-stage cascade, found box heads {sorted(stages)}")
    for stage in sorted(stages):
        rows = state[f"roi_head.bbox_head.{stage}.fc_reg.weight"].shape[0]
        if rows != 4:
            raise ValueError(f"stage {stage} regresses {rows // 4} classes; only class-agnostic (4) is supported")
    return {
        "backbone": backbone,
        "dcn": dcn,
        "num_classes": int(state["roi_head.bbox_head.0.fc_cls.weight"].shape[0]) - 1,
        "fpn_channels": int(state["neck.lateral_convs.0.conv.weight"].shape[0]),
        "representation_size": int(state["roi_head.bbox_head.0.shared_fcs.1.weight"].shape[0]),
    }


def mmdet_class_names(metadata: dict) -> list[str] | None:
    """Class names stored in an mmdet checkpoint's ``meta`` (3.x ``dataset_meta.classes``, 2.x ``CLASSES``)."""
    meta = metadata.get("meta") if isinstance(metadata, dict) else None
    if not isinstance(meta, dict):
        return None
    classes = (meta.get("dataset_meta") or {}).get("classes") or meta.get("CLASSES")
    return [str(c) for c in classes] if classes else None
