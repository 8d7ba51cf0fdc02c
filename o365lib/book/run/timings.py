"""What a book run cost: ``results/<profile>/timings.json``, and the plan the next run prints from it.

The runner records, after every chapter, the chapter's seconds and the artefacts the run found
or made (``made`` is false for one found cached). Trained models and pretrained backbones carry
their training seconds and images per second (``cost.json`` beside the checkpoint). A partial run
(``--chapters 03``) updates its chapters and keeps the others' last numbers, so the file always
holds the latest cost of every chapter, and :func:`expected_seconds` can plan a whole book. A
chapter that never ran here is planned from the profile's from-nothing reference run, when the
project ships one (:data:`REFERENCE`, :func:`fill_from_reference`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from o365lib.io import write_json

TIMINGS = "timings.json"


def read_timings(results_dir: str | Path) -> dict:
    """The last recorded timings (empty sections when there are none or the file is unreadable)."""
    path = Path(results_dir) / TIMINGS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        data = {}
    return {"chapters": dict(data.get("chapters") or {}), "artefacts": list(data.get("artefacts") or []),
            **{k: v for k, v in data.items() if k not in ("chapters", "artefacts")}}


def snapshot(results_dir: str | Path) -> dict[str, dict]:
    """Every trained artefact under ``results_dir/models`` now: folder name -> kind, seconds, images/s."""
    found = {}
    for folder in sorted((Path(results_dir) / "models").glob("*")):
        checkpoint = next((p for p in (folder / "final.pt", folder / "backbone.pt") if p.is_file()), None)
        if not folder.is_dir() or checkpoint is None:
            continue
        try:
            cost = json.loads((folder / "cost.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cost = {}
        kind = "backbone" if folder.name.startswith("pretrained-backbone") else "model"
        found[folder.name] = {"kind": kind, "name": folder.name, "seconds": cost.get("seconds"),
                              "images_per_second": cost.get("images_per_s")}
    return found


def record_chapter(results_dir: str | Path, *, chapter: str, seconds: float, ok: bool,
                   run_start: dict[str, dict], profile: str) -> dict:
    """Add one chapter's run to ``timings.json``.

    ``run_start`` is the :func:`snapshot` taken when the runner started: an artefact present now is
    ``made`` when it was not there then, otherwise it was found cached. Its ``seconds`` are always
    what making it cost (for a cached one: when it was made), its ``chapter`` the first chapter that
    was seen to need it.
    """
    timings = read_timings(results_dir)
    timings["chapters"][chapter] = {"seconds": round(seconds, 1), "ok": bool(ok),
                                    "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                    "load_avg_1m": round(os.getloadavg()[0], 2)}
    first_seen = {entry.get("name"): entry.get("chapter") for entry in timings["artefacts"]}
    timings["artefacts"] = [dict(entry, made=name not in run_start, chapter=first_seen.get(name) or chapter)
                            for name, entry in snapshot(results_dir).items()]
    timings["profile"] = profile
    timings["total_seconds"] = round(sum(c["seconds"] for c in timings["chapters"].values()), 1)
    write_json(Path(results_dir) / TIMINGS, timings)
    return timings


#: A whole book of a profile measured from nothing, ``bench/results/book_<profile>_from_nothing.json``
#: under the project root: what the runner expects of a chapter that never ran here.
REFERENCE = "bench/results/book_{profile}_from_nothing.json"


def read_reference(root: str | Path, profile: str) -> dict:
    """The from-nothing reference run of ``profile`` (``chapters``: name -> seconds, ``date``, ``machine``),
    empty when the project has none for it or it cannot be read."""
    path = Path(root) / REFERENCE.format(profile=profile)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("chapters"), dict) else {}


def expected_seconds(results_dir: str | Path, chapters: list[str]) -> dict[str, float | None]:
    """Each chapter's seconds in the last recorded run (None where it never ran)."""
    recorded = read_timings(results_dir)["chapters"]
    return {chapter: (recorded.get(chapter) or {}).get("seconds") for chapter in chapters}


def fill_from_reference(expected: dict[str, float | None], reference: dict) -> tuple[dict[str, float | None],
                                                                                    frozenset[str]]:
    """``expected`` (:func:`expected_seconds`) with each chapter that never ran here taken from ``reference``
    (a :func:`read_reference` record) where it was timed there, and the set of chapters so taken."""
    timed = reference.get("chapters") or {}
    taken = frozenset(chapter for chapter, seconds in expected.items() if seconds is None and chapter in timed)
    return {chapter: timed[chapter] if chapter in taken else seconds for chapter, seconds in expected.items()}, taken


def format_duration(seconds: float | None) -> str:
    """``"12 min 05 s"`` / ``"48 s"`` / ``"?"``."""
    if seconds is None:
        return "?"
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def plan_lines(expected: dict[str, float | None], *, from_reference: frozenset[str] = frozenset()) -> list[str]:
    """The lines the runner prints before it starts: each chapter's expected time and the total;
    chapters in ``from_reference`` are marked as the reference run's time."""
    known = [v for v in expected.values() if v is not None]
    lines = [f"  {chapter:<28} {format_duration(seconds):>12}"
             + ("  (never ran)" if seconds is None else "  (reference run)" if chapter in from_reference else "")
             for chapter, seconds in expected.items()]
    total = format_duration(sum(known)) if known else "?"
    unknown = sum(v is None for v in expected.values())
    lines.append(f"  {'expected in all':<28} {total:>12}" + (f"  (+ {unknown} chapter(s) never timed)" if unknown else ""))
    return lines


def chapter_table(results_dir: str | Path):
    """The last recorded run time of each chapter (a pandas DataFrame; empty when nothing was recorded)."""
    import pandas as pd

    recorded = read_timings(results_dir)["chapters"]
    rows = [{"chapter": name, "time": format_duration(entry.get("seconds")), "seconds": entry.get("seconds"),
             "succeeded": "yes" if entry.get("ok") else "no", "when": entry.get("when", ""),
             "load average (1 min)": entry.get("load_avg_1m")} for name, entry in sorted(recorded.items())]
    if rows:
        total = sum(r["seconds"] or 0 for r in rows)
        rows.append({"chapter": "all", "time": format_duration(total), "seconds": round(total, 1), "succeeded": "",
                     "when": "", "load average (1 min)": None})
    return pd.DataFrame(rows, columns=["chapter", "time", "seconds", "succeeded", "when", "load average (1 min)"])


def artefact_table(results_dir: str | Path):
    """Every trained artefact: kind, name, whether the last run made it, training seconds and images/s."""
    import pandas as pd

    rows = [{"kind": a.get("kind"), "name": a.get("name"), "made by the last run": "yes" if a.get("made") else "no",
             "training seconds": a.get("seconds") and round(a["seconds"], 1),
             "images / s": a.get("images_per_second") and round(a["images_per_second"], 1)}
            for a in read_timings(results_dir)["artefacts"]]
    return pd.DataFrame(rows, columns=["kind", "name", "made by the last run", "training seconds", "images / s"])
