"""Artefact keys and the train-or-load rule: nothing is reused stale, nothing is computed twice.

Every artefact a chapter reads (generated data, pretrained backbones, derived training sets, models,
predictions, metrics) lives under ``results/<profile>/`` in a folder or file whose name ends in a
key: a short hash of *everything that determines it*:

- the parameters that change what is computed (model and training settings, the random seed,
  evaluation settings such as ``score_threshold`` and ``max_dets``, test-time augmentation);
- the *content* of the data files (:func:`content_hash`, memoised by path, size and modification
  time, so an edited annotation file is a new key even at the same path);
- the content of initial weights (a file hash, or the key of the model they come from);
- the generator's code version (it is part of the generated data's manifest, which is hashed).

So a changed setting or file gives a new key and a new artefact, and an unchanged one is found.

Under ``torchrun`` every train-or-load step follows one rule (:func:`produce`): rank 0 computes and
writes, the other ranks wait at a barrier and then read. Training itself is the exception: every
rank trains (DDP) and rank 0 writes the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

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


# -------------------------------------------------------------------------- processes (torchrun)
def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def init_distributed(device: str) -> None:
    """Join the torchrun process group early (gloo on CPU, NCCL on CUDA), so steps can barrier."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        from o365lib.engine.distributed import setup_distributed

        setup_distributed(device)


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def produce(path: str | os.PathLike, build: Callable[[], T], *, write: Callable[[T, Path], Any],
            read: Callable[[Path], T], exists: Callable[[Path], bool] | None = None) -> T:
    """The artefact at ``path``: read it if it exists, else rank 0 builds and writes it, then all read.

    ``build`` must not use collectives (only rank 0 runs it). ``write`` must be atomic
    (``o365lib.io``), so a reader never sees half a file. ``exists`` defaults to ``path.exists()``.
    """
    path = Path(path)
    there = exists or (lambda p: p.exists())
    if is_main_process() and not there(path):
        write(build(), path)
    barrier()
    if not there(path):
        raise FileNotFoundError(f"{path} was not produced (rank {rank()}): the step on rank 0 failed")
    return read(path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
