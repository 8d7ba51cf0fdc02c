"""Checkpoints: atomic writes, random-number-generator state, loading for inference and fine-tuning.

A training checkpoint (``last.pt``) holds everything needed to continue bit-exactly: model,
optimizer and grad-scaler state, the position in the run (iteration, epoch, batch within the
epoch) and the torch / numpy / Python RNG states of every process. Everything is stored as
tensors and plain containers so ``torch.load(weights_only=True)`` reads it (no pickled code).
Writes go to a temporary file in the same folder and are moved into place with ``os.replace``:
a run killed while writing never leaves a truncated ``last.pt``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from o365lib.io import atomic_write
from o365lib.modeling.transfer import load_model_weights


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file + ``os.replace`` (``o365lib.io.atomic_write``).

    ``torch.save`` given a file *name* names the zip archive inside after it, here the random
    temporary name, so the same tensors gave different bytes (and content keys) on every save.
    Given an open file, it names the archive "archive": equal tensors give equal bytes.
    """
    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            torch.save(obj, handle)

    return atomic_write(Path(path), write)


def capture_rng_state() -> dict:
    """This process's torch (CPU and CUDA), numpy and Python RNG states as plain data."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [
            kind,
            torch.from_numpy(keys.astype(np.int64)),
            int(position),
            int(has_gauss),
            float(cached),
        ],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of ``capture_rng_state``."""
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint as a dict; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a training checkpoint (no 'model' entry)")
    return checkpoint


def load_checkpoint(path: str | Path, model: nn.Module) -> dict:
    """Load model weights from a training checkpoint (``{"model": ...}``) or a raw state dict.

    Strict: every key must match (``ValueError`` naming the file otherwise). Returns the
    checkpoint's metadata (iteration, config, ...; empty for a raw state dict).
    """
    metadata = load_model_weights(model, path, strict=True)["metadata"]
    return {k: v for k, v in metadata.items() if k not in ("optimizer", "scaler", "rng")}


__all__ = [
    "capture_rng_state",
    "load_checkpoint",
    "read_checkpoint",
    "restore_rng_state",
    "save_atomic",
]
