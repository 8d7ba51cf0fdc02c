"""Loading weights from local files: backbone (e.g. ImageNet) weights and full detectors.

Nothing is ever downloaded. Files may hold a raw state dict or a training checkpoint (the state
dict under "model" or "state_dict"); a ``module.`` prefix (DDP) is ignored. Every failure names
the file and the offending keys, because a silently half-loaded detector trains or evaluates
as if from scratch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def read_weights_file(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, metadata)`` from a local file: a raw state dict, or a checkpoint holding it
    under "model"/"state_dict" (metadata: the checkpoint's other top-level entries)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
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
