"""What chapters need, before anything trains: each artefact, whether it exists, its last cost.

:func:`plan_artefacts` runs a walk (functions that call the ``ensure_*`` steps) under
:func:`resolver.planning`, where a missing artefact is listed instead of made, and joins each with
the time it took the last time it was made (``results/<profile>/artefacts.json``, or the
``cost.json`` of an earlier model of the same name and seed, whatever its key).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from o365lib.book.artefacts import resolver


@dataclass(frozen=True)
class PlannedArtefact:
    """One artefact a walk needs."""

    chapter: str
    kind: str
    name: str
    path: str
    exists: bool
    last_seconds: float | None  # how long it took the last time one of this name was made


def plan_artefacts(profile_dir: str | Path, walks: Iterable[tuple[str, Callable[[], object]]]) -> list[PlannedArtefact]:
    """Run each ``(chapter, walk)`` under planning; every distinct artefact once, in the order first needed."""
    profile_dir = Path(profile_dir)
    timings = resolver.last_timings(profile_dir)
    seen: dict[str, PlannedArtefact] = {}
    for chapter, walk in walks:
        with resolver.planning() as resolutions:
            walk()
        for item in resolutions:
            if item.path not in seen:
                seen[item.path] = PlannedArtefact(
                    chapter=chapter, kind=item.kind, name=item.name, path=item.path, exists=item.exists,
                    last_seconds=None if item.exists else _last_seconds(profile_dir, item, timings))
    return list(seen.values())


def _last_seconds(profile_dir: Path, item: resolver.Resolution, timings: dict) -> float | None:
    """Seconds the last made artefact of the same kind and name took (any key)."""
    made = [t for t in timings.values() if t.get("kind") == item.kind and t.get("name") == item.name and t.get("made")]
    if made:
        return float(max(made, key=lambda t: t.get("when", ""))["seconds"])
    if item.kind == "model":  # models trained before the ledger existed: their cost.json
        costs = sorted((profile_dir / "models").glob(f"{item.name}-*/cost.json"), key=lambda p: p.stat().st_mtime)
        for path in reversed(costs):
            try:
                return float(json.loads(path.read_text(encoding="utf-8"))["seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return None


def plan_text(planned: list[PlannedArtefact], *, profile_dir: str | Path) -> str:
    """The plan as the runner prints it: one line per artefact, then what is left to make."""
    root = Path(profile_dir)
    lines = [f"{'chapter':14s} {'kind':11s} {'state':8s} {'last time':>10s}  artefact"]
    for item in planned:
        state = "found" if item.exists else "to make"
        last = "" if item.exists else ("?" if item.last_seconds is None else f"{item.last_seconds:.0f} s")
        shown = Path(item.path)
        shown = shown.relative_to(root) if shown.is_relative_to(root) else shown
        lines.append(f"{item.chapter:14s} {item.kind:11s} {state:8s} {last:>10s}  {shown}")
    missing = [p for p in planned if not p.exists]
    known = sum(p.last_seconds for p in missing if p.last_seconds is not None)
    unknown = sum(p.last_seconds is None for p in missing)
    lines.append(f"{len(planned)} artefacts: {len(planned) - len(missing)} found, {len(missing)} to make "
                 f"(last time {known:.0f} s" + (f", {unknown} never timed)" if unknown else ")")
                 + "; predictions and metrics are made after their models")
    return "\n".join(lines)
