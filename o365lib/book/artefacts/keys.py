"""Artefact keys: a short hash of *everything that determines* an artefact.

Every artefact a chapter reads (generated data, pretrained backbones, derived training sets,
models, predictions, metrics) lives under ``results/<profile>/`` in a folder or file whose name
ends in such a key:

- the parameters that change what is computed (model and training settings, the random seed,
  evaluation settings such as ``score_threshold`` and ``max_dets``, test-time augmentation);
- the *content* of the data files (:func:`content_hash`, memoised by path, size and modification
  time, so an edited annotation file is a new key even at the same path);
- the content of initial weights (a file hash, or the key of the model they come from);
- the generator's code version (it is part of the generated data's manifest, which is hashed).

So a changed setting or file gives a new key and a new artefact, and an unchanged one is found.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def key_of(obj: Any, *, length: int = 10) -> str:
    """Short stable hash of a JSON-able object (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, memoised by (path, size, mtime) for the life of the process."""
    path = Path(path).resolve()
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _FILE_HASHES[memo] = digest.hexdigest()[:16]
    return _FILE_HASHES[memo]
