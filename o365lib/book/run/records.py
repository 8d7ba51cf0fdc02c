"""A chapter's record: its metrics and the parameters it ran with, written only when it succeeds.

The last cell of every chapter calls :func:`write_chapter_record`, which writes ``metrics.json`` (the
``summary`` rows the intro collects, plus details) and ``parameters.json`` (the validated profile,
the chapter's parameters and overrides, package versions) side by side. Both are written atomically
and only at the end, so a chapter that fails never replaces the last good record.

The runner marks a failed run with ``FAILED.json`` in the chapter's folder (:func:`mark_failed`)
and clears it after a successful one (:func:`clear_failed`); the intro page and the chapter's own
page then say that the latest run failed and that the numbers shown are the last good ones.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from o365lib.book.artefacts import resolver
from o365lib.io import write_json

FAILED = "FAILED.json"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_chapter_record(ctx, *, summary: dict, details: dict | None = None, subdir: str = "") -> Path:
    """Write ``metrics.json`` and ``parameters.json`` of a successful chapter run; returns the metrics path.

    ``subdir`` keys results by a parameter (e.g. the expert range: ``03_experts/301-365/``).
    ``summary`` values are numbers, or per-seed statistics (see ``o365lib.book.present.report``).
    """
    folder = Path(ctx.results_dir) / subdir
    path = folder / "metrics.json"
    if resolver.is_main_process():
        write_json(folder / "parameters.json", {**ctx.record, "finished": _now()})
        write_json(path, {"chapter": ctx.chapter, "profile": ctx.profile, "summary": summary,
                          "details": details or {}})
    resolver.barrier()
    return path


def mark_failed(results_dir: Path, *, chapter: str, error: str, notebook: str) -> Path:
    """Record that the latest run of a chapter failed (the last good record stays in place)."""
    return write_json(Path(results_dir) / chapter / FAILED,
                      {"chapter": chapter, "error": error[-4000:], "notebook": notebook, "when": _now()})


def clear_failed(results_dir: Path, *, chapter: str) -> None:
    (Path(results_dir) / chapter / FAILED).unlink(missing_ok=True)


def failed_chapters(results_dir: Path) -> dict[str, dict]:
    """Chapter -> its failure record, for every chapter whose latest run failed."""
    out = {}
    for path in sorted(Path(results_dir).glob(f"*/{FAILED}")):
        try:
            out[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            out[path.parent.name] = {"chapter": path.parent.name, "error": "unreadable failure record"}
    return out
