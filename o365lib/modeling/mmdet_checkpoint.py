"""mmdet 2.x/3.x Cascade R-CNN checkpoints in and out of ``CascadeRCNN``.

``load_mmdet_checkpoint(path)`` reads an mmdet checkpoint of cascade-rcnn_{r50,r101,x101-32x4d,
x101-64x4d}_fpn (plain or with DCN in c3-c5), builds the matching detector with
``build_detector(..., preset="mmdet")`` and returns it in eval mode. It then reproduces mmdet's
own inference (measured on random weights against mmdet 3.3.0: see tests/modeling/
test_mmdet_parity.py) while keeping this project's calling convention: a list of RGB float images in
[0, 1], results ``{"boxes" (input pixels), "labels" (1..K), "scores"}``. As in mmdet's test
pipeline an image is resized so that its short side is 800 px and its long side at most 1333 px
(an 800 x 1200 image is not resized), normalised with mmdet's mean/std and padded to a multiple
of 32.

``save_mmdet_checkpoint(model, path)`` writes the other direction: a file mmdet's
``load_checkpoint`` / ``init_detector`` takes for the same config (``num_classes`` = the model's).
"""

from __future__ import annotations

from pathlib import Path

import torch

from o365lib.modeling.build import build_detector
from o365lib.modeling.detector import CascadeRCNN
from o365lib.modeling.mmdet_keys import mmdet_architecture, mmdet_class_names, mmdet_to_ours, ours_to_mmdet
from o365lib.modeling.transfer import read_weights_file

MMDET_CONFIG_NAMES = {
    "resnet50": "cascade-rcnn_r50_fpn",
    "resnet101": "cascade-rcnn_r101_fpn",
    "resnext101_32x4d": "cascade-rcnn_x101-32x4d_fpn",
    "resnext101_64x4d": "cascade-rcnn_x101-64x4d_fpn",
}


def load_mmdet_checkpoint(
    path: str | Path | dict,
    *,
    num_classes: int | None = None,
    allow_pickle: bool = False,
    **overrides,
) -> CascadeRCNN:
    """A ``CascadeRCNN`` (eval mode, ``preset="mmdet"``) holding an mmdet checkpoint's weights.

    Args:
        path: the ``.pth`` file (``{"state_dict", "meta"}`` or a bare state dict), or a state dict.
        num_classes: expected number of classes; ``None`` takes the checkpoint's. A mismatch raises.
        allow_pickle: unpickle non-tensor objects (full mmengine training checkpoints store some);
            only for trusted files. Model-zoo checkpoints load without it.
        **overrides: ``build_detector`` keywords (e.g. ``min_size``, ``score_thresh``,
            ``stage_score_average="probabilities"``, ``preset``).

    The model gets ``model.class_names`` (from the checkpoint's meta, else ``None``) and
    ``model.mmdet_config`` (the mmdet config name the architecture corresponds to).
    """
    if isinstance(path, dict):
        state, metadata, where = path, {}, "the given state dict"
    else:
        state, metadata = read_weights_file(Path(path), allow_pickle=allow_pickle)
        where = str(path)
    try:
        arch = mmdet_architecture(state)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error
    if num_classes is not None and num_classes != arch["num_classes"]:
        raise ValueError(f"{where} has {arch['num_classes']} classes, not num_classes={num_classes}")
    settings = {
        "backbone": arch["backbone"],
        "dcn": arch["dcn"],
        "fpn_channels": arch["fpn_channels"],
        "representation_size": arch["representation_size"],
        "norm": "frozen_bn",
        "preset": "mmdet",
        **overrides,
    }
    model = build_detector(arch["num_classes"], **settings)
    converted = mmdet_to_ours(state)
    result = model.load_state_dict(converted, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{where} does not fit {arch['backbone']} Cascade R-CNN: missing {missing[:8]} "
            f"({len(missing)} in all), unexpected {result.unexpected_keys[:8]} "
            f"({len(result.unexpected_keys)} in all)"
        )
    model.class_names = mmdet_class_names(metadata)
    model.mmdet_config = MMDET_CONFIG_NAMES.get(arch["backbone"], "") + ("_dconv-c3-c5" if arch["dcn"] else "")
    return model.eval()


def save_mmdet_checkpoint(model: CascadeRCNN, path: str | Path, *, class_names=None) -> Path:
    """Write ``model``'s weights as an mmdet 3.x checkpoint (``{"meta", "state_dict"}``).

    The model must use a ResNet/ResNeXt with BN or frozen BN and the FPN levels P2-P6 (the
    ``"resnet"`` or ``"mmdet"`` preset); GroupNorm or the tiny backbone have no mmdet config to load
    into. ``class_names`` (label order) goes to ``meta.dataset_meta.classes``, as mmdet stores it.
    """
    state = model.state_dict()
    config = getattr(model, "config", {})
    if config.get("backbone", "") not in MMDET_CONFIG_NAMES:
        raise ValueError(
            f"backbone {config.get('backbone')!r} has no mmdet Cascade R-CNN config; "
            f"use one of {tuple(MMDET_CONFIG_NAMES)}"
        )
    if config.get("norm") == "gn":
        raise ValueError("a GroupNorm backbone does not load into mmdet's BN ResNet; train with norm='frozen_bn'/'bn'")
    if "backbone.fpn.inner_blocks.3.0.weight" not in state or "backbone.fpn.inner_blocks.4.0.weight" in state:
        raise ValueError("mmdet's cascade configs need FPN inputs c2-c5 (returned_layers 1-4)")
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    if names is not None and len(names) != model.num_classes:
        raise ValueError(f"{len(names)} class names for a {model.num_classes}-class model")
    meta = {
        "mmdet_version": "3.3.0",
        "written_by": "o365lib.modeling.save_mmdet_checkpoint",
        "config_name": MMDET_CONFIG_NAMES[config["backbone"]] + ("_dconv-c3-c5" if config.get("dcn") else ""),
    }
    if names is not None:
        meta["dataset_meta"] = {"classes": tuple(str(n) for n in names)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "state_dict": ours_to_mmdet(state)}, path)
    return path
