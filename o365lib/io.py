"""Atomic file writes: the one helper every module uses to write a result file.

A write goes to a temporary file in the target's folder and is moved into place with
``os.replace``, so a run killed while writing never leaves a truncated file, and a reader sees
either the old complete file or the new complete one. JSON is written as standard JSON: NaN and
infinite floats become ``null``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "finite", "write_json", "write_text"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)``, then move the temporary file onto ``path`` (creating folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def finite(obj: Any) -> Any:
    """``obj`` with NaN / infinite floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> Path:
    """Standard JSON (sorted keys, NaN -> null), atomically."""
    text = json.dumps(finite(obj), indent=indent, sort_keys=True, default=str, allow_nan=False)
    return write_text(path, text)
