"""The one rule for every artefact: found and verified, else rank 0 makes it and the others wait.

:func:`resolve` is the only place that decides whether an artefact (data, a backbone, a derived
training set, a model, predictions, metrics) is made. Under ``torchrun`` rank 0 makes and writes,
the other ranks wait at a barrier and then read; training is the one exception, where every rank
takes part (DDP) and rank 0 writes the checkpoint (``every_rank_makes=True``). A found artefact is
verified (``verify``) before it is reused, so a truncated checkpoint is an error naming it.

Each call is recorded (:data:`LEDGER`: kind, name, path, made, seconds). Made artefacts are also
written to ``results/<profile>/artefacts.json`` (rank 0), which :mod:`.plan` reads to say how long
an artefact took the last time it was made.

:func:`planning` switches to a dry run: missing artefacts are listed, not made (unless ``cheap``,
such as generated data and derived training sets, which the keys of the others need).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from o365lib.book.artefacts.keys import content_hash, key_of  # noqa: F401 (re-exported for callers)

T = TypeVar("T")

#: Kinds of artefact, from the bottom of the graph to the top.
KINDS = ("data", "backbone", "model", "predictions", "metrics")
#: The record of made artefacts in a profile's results folder.
TIMINGS_FILE = "artefacts.json"


@dataclass(frozen=True)
class Resolution:
    """One :func:`resolve` call: what was asked for and whether it was made (and how long it took)."""

    kind: str
    name: str
    path: str
    made: bool
    seconds: float
    exists: bool = True  # False only while planning: the artefact is missing and was not made


#: Every resolution of this process, in order (the chapter's walk through the graph).
LEDGER: list[Resolution] = []
_PLANNING: list[bool] = []


# -------------------------------------------------------------------------- processes (torchrun)
def rank() -> int:
    from o365lib.engine.distributed import env_rank

    return env_rank()


def is_main_process() -> bool:
    return rank() == 0


def init_distributed(device: str) -> None:
    """Join the torchrun process group early (gloo on CPU, NCCL on CUDA), so steps can barrier."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        from o365lib.engine.distributed import setup_distributed

        setup_distributed(device)


def barrier() -> None:
    from o365lib.engine.distributed import barrier as process_barrier

    process_barrier()


# -------------------------------------------------------------------------- planning
@contextlib.contextmanager
def planning() -> Iterator[list[Resolution]]:
    """Within this block :func:`resolve` makes nothing that is not cheap; yields the resolutions seen."""
    start = len(LEDGER)
    _PLANNING.append(True)
    seen: list[Resolution] = []
    try:
        yield seen
    finally:
        _PLANNING.pop()
        seen.extend(LEDGER[start:])


def is_planning() -> bool:
    return bool(_PLANNING)


# -------------------------------------------------------------------------- the rule
def resolve(profile_dir: str | os.PathLike, *, kind: str, name: str, path: str | os.PathLike,
            make: Callable[[], T], write: Callable[[T, Path], Any] | None = None,
            read: Callable[[Path], Any] = lambda p: p, exists: Callable[[Path], bool] | None = None,
            verify: Callable[[Path], Any] | None = None, every_rank_makes: bool = False,
            cheap: bool = False, planned: Any = None) -> Any:
    """The artefact at ``path``: found (and verified), else made, then read on every rank.

    ``make`` returns the value ``write(value, path)`` stores (rank 0 only; ``write`` must be atomic,
    ``o365lib.io``), or writes the artefact itself when ``write`` is None. It runs on rank 0 only and
    must not use collectives, unless ``every_rank_makes`` (training under DDP). ``exists`` defaults to
    ``path.exists()``. While :func:`planning`, a missing artefact that is not ``cheap`` is not made:
    the call records it and returns ``planned`` (default: the path).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown artefact kind {kind!r}; known: {KINDS}")
    path = Path(path)
    there = exists or (lambda p: p.exists())
    if there(path):
        if verify is not None:
            verify(path)
        LEDGER.append(Resolution(kind=kind, name=name, path=str(path), made=False, seconds=0.0))
        return read(path)
    if is_planning() and not cheap:
        LEDGER.append(Resolution(kind=kind, name=name, path=str(path), made=False, seconds=0.0, exists=False))
        return path if planned is None else planned
    started = time.perf_counter()
    if every_rank_makes or is_main_process():
        value = make()
        if write is not None and is_main_process():
            write(value, path)
    barrier()
    if not there(path):
        raise FileNotFoundError(f"{path} was not produced (rank {rank()}): the step on rank 0 failed")
    done = Resolution(kind=kind, name=name, path=str(path), made=True, seconds=time.perf_counter() - started)
    LEDGER.append(done)
    if is_main_process():
        _record_timing(Path(profile_dir), done)
    return read(path)


def _record_timing(profile_dir: Path, done: Resolution) -> None:
    from o365lib.io import write_json

    timings = last_timings(profile_dir)
    relative = os.path.relpath(done.path, profile_dir)
    timings[relative] = {**asdict(done), "path": relative,
                         "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    write_json(profile_dir / TIMINGS_FILE, timings)


def last_timings(profile_dir: str | os.PathLike) -> dict[str, dict]:
    """Path (relative to the profile's folder) -> the record of the last time it was made."""
    path = Path(profile_dir) / TIMINGS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

