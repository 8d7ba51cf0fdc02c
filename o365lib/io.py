"""Atomic file writes: the one helper every module uses to write a result file.

A write goes to a temporary file in the target's folder and is moved into place with
``os.replace``, so a run killed while writing never leaves a truncated file, and a reader sees
either the old complete file or the new complete one. The file gets the permissions a newly created
file gets from a plain ``open(path, "w")`` (``0o666`` less the process umask), not the private
``0o600`` of the temporary file. JSON is written as standard JSON: NaN and infinite floats become
``null``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "current_umask", "finite", "write_json", "write_text"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read the only portable way, by
    setting it and restoring it at once (under a lock, since the umask is process-global).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)``, then move the temporary file onto ``path`` (creating folders).

    The file ends with mode ``0o666 & ~umask``, as a newly created file (``mkstemp`` makes it ``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~current_umask())
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
