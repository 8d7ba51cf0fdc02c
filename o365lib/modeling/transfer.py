"""All weight loading and transfer of the detector: files, backbones, COCO-pretrained starts.

Nothing is ever downloaded. Files may hold a raw state dict or a training checkpoint (the state
dict under "model" or "state_dict"); a ``module.`` prefix (DDP) is ignored. Every failure names
the file and the offending keys, because a silently half-loaded detector trains or evaluates as if
from scratch.

- ``read_weights_file`` / ``read_state_dict``: a state dict (and the file's other entries);
- ``load_backbone_weights``: ImageNet-style backbone files into a bare ResNet/tiny body;
- ``load_model_weights``: a whole ``CascadeRCNN`` (strict by default);
- ``transfer_weights``: as above, with classifier rows remapped **by category id** (the
  ByteDance talk's chain: experts from the full model, the tiny track from the full track);
- ``init_detector_weights``: a start from an mmdet (2.x/3.x) checkpoint, one of ours or a
  torchvision state dict: everything but the classifier is copied where it fits, classifier rows
  are copied for classes whose **names** match (COCO-80 -> Objects365 v1/v2 through
  ``o365lib.modeling.coco_objects365_names``), the rest stays freshly initialised.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from o365lib.modeling.coco_objects365_names import COCO80_NAMES, match_category_names
from o365lib.modeling.mmdet_keys import is_mmdet_state_dict, mmdet_class_names, mmdet_to_ours

LOGGER = logging.getLogger(__name__)


def read_weights_file(path: Path, *, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, metadata)`` from a local file: a raw state dict, or a checkpoint holding it
    under "model"/"state_dict" (metadata: the checkpoint's other top-level entries).

    ``allow_pickle=True`` unpickles arbitrary objects (training checkpoints of other frameworks
    that store Python objects next to the weights); only for files you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as error:  # pickle / zip errors: say which file
        raise ValueError(f"cannot read weights file {path}: {error}") from error
    metadata: dict = {}
    for key in ("model", "state_dict"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            metadata = {k: v for k, v in blob.items() if k != key}
            blob = blob[key]
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    return blob, metadata


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file: raw, or under "model"/"state_dict" (training checkpoints)."""
    return read_weights_file(Path(path))[0]


def load_backbone_weights(body: nn.Module, path: str | Path) -> None:
    """Load backbone weights (e.g. torchvision ImageNet ``resnet50-*.pth``) from a local file.

    Classifier keys (``fc.*``) and a ``module.``/``backbone.body.`` prefix are ignored. Deformable
    offset convolutions may be missing (they start at zero); any other missing or unexpected key, or a
    shape mismatch, raises ``ValueError`` naming the file and the keys.
    """
    path = Path(path)
    state = read_state_dict(path)
    cleaned = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone.body.", "body."):
            key = key.removeprefix(prefix)
        if not key.startswith("fc."):
            cleaned[key] = value
    try:
        result = body.load_state_dict(cleaned, strict=False)
    except RuntimeError as error:
        raise ValueError(f"backbone weights {path} do not fit the backbone: {error}") from error
    missing = [k for k in result.missing_keys if "conv_offset" not in k and "num_batches_tracked" not in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"backbone weights {path} do not match the backbone: "
            f"missing keys {missing[:8]} ({len(missing)} in all), "
            f"unexpected keys {result.unexpected_keys[:8]} ({len(result.unexpected_keys)} in all)"
        )


def load_model_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> dict:
    """Load a full model from ``path`` (training checkpoint with "model", or raw state dict).

    A shape mismatch always raises ``ValueError`` naming the file; so does any missing or
    unexpected key with ``strict=True``. Returns ``{"missing_keys", "unexpected_keys", "metadata"}``
    (metadata: the checkpoint's other entries, e.g. iteration and config; empty for a raw file).
    """
    path = Path(path)
    state, metadata = read_weights_file(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatch: e.g. a checkpoint for another num_classes
        raise ValueError(f"weights file {path} does not fit this model: {error}") from error
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ValueError(
            f"weights file {path} does not match this model: "
            f"missing keys {result.missing_keys[:8]} ({len(result.missing_keys)} in all), "
            f"unexpected keys {result.unexpected_keys[:8]} ({len(result.unexpected_keys)} in all)"
        )
    return {
        "missing_keys": result.missing_keys,
        "unexpected_keys": result.unexpected_keys,
        "metadata": metadata,
    }




CLASSIFIER_SUFFIXES = ("cls_score.weight", "cls_score.bias")


def _row_index(source_label_map, target_label_map) -> tuple[list[int], list[int]]:
    """Rows (target, source) of the categories both label maps know, background included."""
    target_rows, source_rows = [0], [0]
    source_ids = set(source_label_map.category_ids)
    for cat_id in target_label_map.category_ids:
        if cat_id in source_ids:
            target_rows.append(target_label_map.to_label(cat_id))
            source_rows.append(source_label_map.to_label(cat_id))
    return target_rows, source_rows


def transfer_weights(model: nn.Module, source: str | Path | dict, *, source_label_map=None,
                     target_label_map=None, prefixes: tuple[str, ...] = ()) -> dict:
    """Copy what fits from ``source`` (a file or a state dict) into ``model``; returns a report.

    The report counts ``copied`` tensors, lists ``remapped`` classifier tensors with the number of
    categories carried over, and ``skipped`` names (absent in the source or of another shape).
    Raises ``ValueError`` when nothing at all could be copied: that is always a wrong file.
    """
    state = read_state_dict(Path(source)) if not isinstance(source, dict) else source
    state = {k.removeprefix("module."): v for k, v in state.items()}
    rows = None
    if source_label_map is not None and target_label_map is not None:
        rows = _row_index(source_label_map, target_label_map)
    own = model.state_dict()
    copied, remapped, skipped = 0, {}, []
    with torch.no_grad():
        for name, tensor in own.items():
            if prefixes and not name.startswith(prefixes):
                continue
            src = state.get(name)
            if src is None:
                skipped.append(name)
            elif src.shape == tensor.shape and (rows is None or not name.endswith(CLASSIFIER_SUFFIXES)):
                tensor.copy_(src)
                copied += 1
            elif rows is not None and name.endswith(CLASSIFIER_SUFFIXES) and src.shape[1:] == tensor.shape[1:]:
                target_rows, source_rows = rows
                tensor[target_rows] = src[source_rows].to(tensor.dtype)
                remapped[name] = len(target_rows) - 1
                copied += 1
            else:
                skipped.append(name)
    if copied == 0:
        where = source if not isinstance(source, dict) else "the given state dict"
        raise ValueError(f"no tensor of {where} fits this model (prefixes={prefixes or 'all'})")
    model.load_state_dict(own)
    return {"copied": copied, "remapped": remapped, "skipped": skipped}


def start_new_classifiers(model: nn.Module, state: dict[str, torch.Tensor], *, convert: bool) -> dict:
    """The start ``state`` for a ``model`` whose classification loss differs from the one ``state`` was
    trained with: every classifier (``cls_score``) entry is dropped, so those layers keep the model's
    fresh initialisation, unless ``convert`` is true and the state's classifier is softmax. Then each
    cascade stage's classifier starts from the state's through its loss's ``classifier_from_softmax``
    (sigmoid losses: log-odds against background; Seesaw: no counterpart, fresh).
    """
    from o365lib.modeling.losses import ClassLoss

    out = {k: v for k, v in state.items() if not k.endswith(CLASSIFIER_SUFFIXES)}
    if not convert:
        return out
    for name, module in model.named_modules():
        loss = getattr(module, "class_loss", None)
        if not isinstance(loss, ClassLoss):
            continue
        prefix = f"{name}.box_predictor.cls_score"
        weight, bias = state.get(f"{prefix}.weight"), state.get(f"{prefix}.bias")
        if weight is None or bias is None or weight.shape[0] != loss.num_classes + 1:
            continue
        start = loss.classifier_from_softmax(weight, bias)
        if start is not None:
            out[f"{prefix}.weight"], out[f"{prefix}.bias"] = start
    return out


def _category_names(categories) -> list[str] | None:
    """Names in label order from names (label order) or COCO category dicts (sorted by id)."""
    if categories is None:
        return None
    categories = list(categories)
    if categories and isinstance(categories[0], dict):
        return [str(c["name"]) for c in sorted(categories, key=lambda c: c["id"])]
    return [str(c) for c in categories]


def _as_detector_state(state: dict[str, torch.Tensor], metadata: dict) -> tuple[str, dict, list[str] | None]:
    """(format, state dict in our key names, class names stored with it or None)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if is_mmdet_state_dict(state):
        names = mmdet_class_names(metadata)
        return "mmdet", mmdet_to_ours(state), names
    if any(k.startswith("roi_heads.stages.") for k in state):
        return "o365lib", state, metadata.get("class_names") if isinstance(metadata, dict) else None
    if any(k.startswith("backbone.body.") for k in state):
        return "torchvision_detector", state, None
    if "conv1.weight" in state or any(k.startswith("layer1.") for k in state):
        body = {f"backbone.body.{k}": v for k, v in state.items() if not k.startswith("fc.")}
        return "torchvision_backbone", body, None
    raise ValueError("weights are neither an mmdet, an o365lib nor a torchvision detector/backbone state dict")


def init_detector_weights(
    model: nn.Module,
    source: str | Path | dict,
    *,
    target_categories=None,
    source_categories=None,
    allow_pickle: bool = False,
) -> dict:
    """Initialise ``model`` (a ``CascadeRCNN``) from a detector or backbone trained elsewhere.

    ``source``: a file or a state dict in mmdet 2.x/3.x key names (``load_mmdet_checkpoint``'s
    input), ours, a torchvision detector's or a torchvision classification backbone's.
    Every tensor whose (translated) name and shape match is copied, except the classifiers
    (``cls_score``): their background row and the rows of target classes with a same-named source
    class are copied, the other rows keep the model's fresh initialisation.

    ``target_categories`` / ``source_categories``: class names in label order, or COCO category
    dicts (label order = sorted ids). Source names default to those stored in an mmdet checkpoint,
    or COCO-80 for an 81-row mmdet classifier. Without names on either side no classifier row is
    copied (unless both classifiers have the same shape and neither side named its classes: then
    the classes are taken to be the same and copied whole).

    Returns a report: ``format``, ``copied`` (tensors), ``skipped`` (names not copied),
    ``classifier_rows`` (foreground rows copied per classifier tensor), ``matched`` (target name
    -> source name). Raises ``ValueError`` when nothing fits.
    """
    if isinstance(source, dict):
        state, metadata = source, {}
        where = "the given state dict"
    else:
        state, metadata = read_weights_file(Path(source), allow_pickle=allow_pickle)
        where = str(source)
    kind, state, stored_names = _as_detector_state(state, metadata)
    target_names = _category_names(target_categories)
    source_names = _category_names(source_categories) or stored_names
    own = model.state_dict()
    classifier_keys = [k for k in own if k.endswith(CLASSIFIER_SUFFIXES)]
    if source_names is None and kind == "mmdet" and target_names is not None:
        rows = {state[k].shape[0] for k in classifier_keys if k in state}
        if rows == {len(COCO80_NAMES) + 1}:
            source_names = list(COCO80_NAMES)
    matches = {}
    if target_names is not None and source_names is not None:
        matches = match_category_names(source_names, target_names)
    copied, skipped, classifier_rows = 0, [], {}
    with torch.no_grad():
        for name, tensor in own.items():
            src = state.get(name)
            if src is None:
                skipped.append(name)
            elif name in classifier_keys:
                if target_names is None and source_names is None and src.shape == tensor.shape:
                    tensor.copy_(src)
                    classifier_rows[name] = tensor.shape[0] - 1
                    copied += 1
                elif src.shape[1:] == tensor.shape[1:] and (matches or target_names is not None):
                    target_rows = [0, *(t + 1 for t in matches)]
                    source_rows = [0, *(s + 1 for s in matches.values())]
                    if max(source_rows) >= src.shape[0] or max(target_rows) >= tensor.shape[0]:
                        raise ValueError(
                            f"{where}: classifier {name} has {src.shape[0] - 1} source / "
                            f"{tensor.shape[0] - 1} target classes, fewer than the category names given"
                        )
                    tensor[target_rows] = src[source_rows].to(tensor.dtype)
                    classifier_rows[name] = len(target_rows) - 1
                    copied += 1
                else:
                    skipped.append(name)
            elif src.shape == tensor.shape:
                tensor.copy_(src)
                copied += 1
            else:
                skipped.append(name)
    if copied == 0:
        raise ValueError(f"no tensor of {where} fits this model")
    model.load_state_dict(own)
    matched = {target_names[t]: source_names[s] for t, s in matches.items()} if matches else {}
    LOGGER.info(
        "init_detector_weights: %s weights from %s, %d tensors copied, %d skipped, %d classifier rows "
        "copied per stage (%d classes matched by name)",
        kind, where, copied, len(skipped), max(classifier_rows.values(), default=0), len(matched),
    )
    return {
        "format": kind,
        "copied": copied,
        "skipped": skipped,
        "classifier_rows": classifier_rows,
        "matched": matched,
    }
