"""The book runner: execute chapters with papermill, then build the HTML with Jupyter Book.

``python -m o365lib.book run --profile default [--chapters 01 03]``:

1. each chapter source ``book/NN_name.py`` becomes a notebook in ``_build/notebooks/``
   (the paired sources are never written);
2. papermill runs it with the ``python3`` kernel, ``profile`` and the chapter's parameter file
   the chapter's own parameter defaults, into ``_build/executed/<profile>/``;
   the chapter itself writes its results and ``parameters.json`` under ``results/<profile>/``;
3. the intro (``00_*``) runs last, since it summarises the other chapters' metrics;
4. ``jupyter-book build book -W -n --keep-going --all`` renders the book into ``_build/html``;
   the local Sphinx extension ``book/_ext/executed_notebooks.py`` swaps each committed,
   output-free notebook for its executed copy (``O365BOOK_EXECUTED_DIR``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from o365lib.book.config.profiles import chapter_parameters, load_profile, profile_path, project_root
from o365lib.book.run.notebooks import chapter_sources, source_to_notebook
from o365lib.book.run.records import clear_failed, failed_chapters, mark_failed
from o365lib.book.run.timings import (
    expected_seconds,
    fill_from_reference,
    format_duration,
    plan_lines,
    read_reference,
    record_chapter,
    snapshot,
)
from o365lib.io import write_json
from o365lib.progress import PROGRESS_ENV

#: The chapter kernels' own log only says, on every chapter, that a kernel on the loopback address
#: talks over unencrypted TCP; its errors still reach the notebook, so only its errors are logged.
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)
#: Environment variable the Sphinx extension reads to find the executed notebooks.
EXECUTED_ENV = "O365BOOK_EXECUTED_DIR"


@dataclass
class ChapterRun:
    """The outcome of one chapter execution."""

    chapter: str
    executed: str
    seconds: float
    ok: bool
    error: str = ""


def order_chapters(sources: list[Path]) -> list[Path]:
    """Chapters in run order: numbered chapters first, the intro (``00_*``) last."""
    intro = [s for s in sources if s.name.startswith("00_")]
    return [s for s in sources if s not in intro] + intro


def select_chapters(sources: list[Path], wanted: list[str] | None) -> list[Path]:
    """The sources named by ``wanted`` (``"03"`` or ``"03_experts"``), in run order; all if None.

    The intro is always added (last): it shows the summary of whatever has run.
    """
    ordered = order_chapters(sources)
    if not wanted:
        return ordered
    chosen = []
    for item in wanted:
        item = str(item).removesuffix(".py").removesuffix(".ipynb")
        match = [s for s in ordered if s.stem == item or s.stem.split("_", 1)[0] == item]
        if not match:
            raise ValueError(f"no chapter {item!r}; chapters: {[s.stem for s in ordered]}")
        chosen += [m for m in match if m not in chosen]
    chosen += [s for s in ordered if s.name.startswith("00_") and s not in chosen]
    return [s for s in ordered if s in chosen]


def execute_chapter(source: Path, *, profile: str, build_dir: Path, root: Path,
                    kernel_name: str = "python3", log_output: bool = False, progress: bool = True) -> ChapterRun:
    """Run one chapter with papermill; returns a :class:`ChapterRun` (it never raises on cell errors).

    The notebook is executed into a temporary file and moved into ``_build/executed/<profile>/`` only
    when the chapter succeeded and wrote its record; a failed run leaves the last good executed
    notebook and record in place, keeps the partial notebook under ``failed/`` and writes the chapter's
    failure marker (``o365lib.book.run.records``). With ``progress`` papermill's cell bar and the
    library's training bars are shown in the terminal, never in the page.
    """
    import papermill

    profile_name = profile_path(profile, root=root).stem
    notebook = source_to_notebook(source, build_dir / "notebooks" / f"{source.stem}.ipynb")
    executed = build_dir / "executed" / profile_name / f"{source.stem}.ipynb"
    partial = build_dir / "executed" / profile_name / "running" / f"{source.stem}.ipynb"
    partial.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**chapter_parameters(source.stem, root=root), "profile": profile}
    results_dir = Path(load_profile(profile, root=root).results_dir)
    started_at = time.time()
    start = time.perf_counter()
    error = ""
    log = build_dir / "progress" / f"{source.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(log)  # the kernel appends its bars there, never to the page
    echo = _ProgressEcho(log, prefix=f"[o365book] {source.stem} | ") if progress else None
    try:
        papermill.execute_notebook(str(notebook), str(partial), parameters=parameters,
                                   kernel_name=kernel_name, cwd=str(root), progress_bar=progress,
                                   log_output=log_output, extra_arguments=list(KERNEL_ARGUMENTS))
    except Exception as exc:  # noqa: BLE001 - papermill's error names the failing cell; keep it for the report
        error = f"{type(exc).__name__}: {str(exc)[-2000:]}"
    finally:
        if echo is not None:
            echo.stop()
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
    seconds = time.perf_counter() - start
    written = [p for p in (results_dir / source.stem).glob("**/parameters.json") if p.stat().st_mtime >= started_at - 1]
    if not error and not written:
        error = (f"the chapter wrote no parameters.json under {results_dir / source.stem} (its last cell must "
                 "call o365lib.book.run.records.write_chapter_record)")
    if error:
        failed = build_dir / "executed" / profile_name / "failed" / f"{source.stem}.ipynb"
        try:  # a failure to record the failure must not hide the chapter's own error
            failed.parent.mkdir(parents=True, exist_ok=True)
            if partial.exists():
                os.replace(partial, failed)
            mark_failed(results_dir, chapter=source.stem, error=error, notebook=str(failed))
        except OSError as exc:
            error += (f"\nand recording this failure failed too ({type(exc).__name__}: {exc}); the pages may "
                      f"still show the last good run of {source.stem} without saying that this run failed")
        return ChapterRun(source.stem, str(failed if failed.exists() else partial), seconds, False, error)
    os.replace(partial, executed)
    (build_dir / "executed" / profile_name / "failed" / f"{source.stem}.ipynb").unlink(missing_ok=True)
    clear_failed(results_dir, chapter=source.stem)
    return ChapterRun(source.stem, str(executed), seconds, True)


class _ProgressEcho:
    """Echo what a chapter's kernel appends to its progress file to this terminal, every few seconds.

    tqdm redraws a bar with carriage returns; only the latest state of each bar is printed.
    """

    def __init__(self, path: Path, *, prefix: str, every: float = 5.0) -> None:
        import threading

        self.path, self.prefix, self.every = path, prefix, every
        self._done = threading.Event()
        self._offset = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _flush(self) -> None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                handle.seek(self._offset)
                text = handle.read()
                self._offset = handle.tell()
        except OSError:
            return
        latest = [part.strip() for part in text.replace("\n", "\r").split("\r") if part.strip()]
        if latest:
            print(self.prefix + latest[-1], file=sys.stderr, flush=True)

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self._flush()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self._flush()


def jupyter_book_command() -> list[str]:
    """The ``jupyter-book`` executable of this Python environment."""
    local = Path(sys.executable).with_name("jupyter-book")
    found = str(local) if local.exists() else shutil.which("jupyter-book")
    if not found:
        raise FileNotFoundError("jupyter-book is not installed: pip install -e '.[book]'")
    return [found]


def build_html(*, root: Path, executed_dir: Path | None, output_root: Path | None = None,
               strict: bool = True) -> subprocess.CompletedProcess:
    """``jupyter-book build book`` (warnings as errors when ``strict``); HTML in ``<output_root>/_build/html``.

    ``executed_dir`` holds the executed notebooks to render (None: the committed ones only).
    """
    command = jupyter_book_command() + ["build", str(root / "book"), "--all"]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    if output_root is not None:
        command += ["--path-output", str(output_root)]
    env = dict(os.environ)
    env[EXECUTED_ENV] = str(executed_dir) if executed_dir else str(root / "_build" / "no-executed")
    return subprocess.run(command, cwd=root, env=env, text=True, capture_output=True, check=False)


def run_book(*, profile: str = "default", chapters: list[str] | None = None, build: bool = True,
             output_root: str | Path | None = None, keep_going: bool = False,
             log_output: bool = False, echo=print) -> int:
    """Execute the chosen chapters, then build the book; returns a process exit code.

    ``output_root`` (default: the project root) receives ``_build/{notebooks,executed,html}``.
    Stops at the first failing chapter unless ``keep_going``; never builds after a failure.
    """
    root = project_root()
    out = Path(output_root).resolve() if output_root else root
    build_dir = out / "_build"
    profile_name = profile_path(profile, root=root).stem
    selected = select_chapters(chapter_sources(root / "book"), chapters)
    results_dir = Path(load_profile(profile, root=root).results_dir)
    reference = read_reference(root, profile_name)
    expected, from_reference = fill_from_reference(expected_seconds(results_dir, [s.stem for s in selected]),
                                                   reference)
    echo(f"[o365book] profile {profile_name}: {len(selected)} chapter(s); expected from the last recorded run "
         f"({results_dir / 'timings.json'}), cached artefacts make a chapter faster:")
    if from_reference:
        echo(f"  (chapters that never ran here: the run from nothing of {reference.get('date', '?')} on "
             f"{reference.get('machine', '?')}; a CPU without native bf16 trains in float32, several times slower)")
    for line in plan_lines(expected, from_reference=from_reference):
        echo(line)
    run_start, book_start = snapshot(results_dir), time.perf_counter()
    env_root = os.environ.get("O365BOOK_ROOT")
    os.environ["O365BOOK_ROOT"] = str(root)  # the kernels resolve paths against it
    runs: list[ChapterRun] = []
    try:
        for index, source in enumerate(selected):
            echo(f"[o365book] {source.stem}: running with profile {profile_name} ...")
            run = execute_chapter(source, profile=profile, build_dir=build_dir, root=root,
                                  log_output=log_output)
            runs.append(run)
            try:  # a read-only folder or a full disk must not hide the chapter's own outcome
                record_chapter(results_dir, chapter=source.stem, seconds=run.seconds, ok=run.ok,
                               run_start=run_start, profile=profile_name)
            except OSError as exc:
                echo(f"[o365book] {source.stem}: its time was not recorded ({type(exc).__name__}: {exc})")
            left = [expected[s.stem] for s in selected[index + 1:]]
            remaining = (format_duration(sum(v for v in left if v is not None)) if any(v is not None for v in left)
                         else ("0 s" if not left else "?"))
            echo(f"[o365book] {source.stem}: {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s; elapsed "
                 f"{format_duration(time.perf_counter() - book_start)}, about {remaining} left"
                 + ("" if run.ok else f"\n{run.error}\n  partial notebook: {run.executed}\n  the last good record "
                                      "of this chapter stays in place; its page and the intro say the run failed"))
            if not run.ok and not keep_going:
                break
    finally:
        if env_root is None:
            os.environ.pop("O365BOOK_ROOT", None)
        else:
            os.environ["O365BOOK_ROOT"] = env_root
    executed_dir = build_dir / "executed" / profile_name
    executed_dir.mkdir(parents=True, exist_ok=True)
    write_json(executed_dir / "run.json", {"profile": profile, "chapters": [asdict(r) for r in runs],
                                           "total_seconds": sum(r.seconds for r in runs)})
    failed = [r.chapter for r in runs if not r.ok]
    if failed:
        echo(f"[o365book] failed chapters: {failed}; the book was not built")
        return 1
    if not build:
        return 0
    still_failed = failed_chapters(Path(load_profile(profile, root=root).results_dir))
    if still_failed:
        echo(f"[o365book] note: the latest run of {sorted(still_failed)} failed; their pages show the last good run")
    echo("[o365book] building the book (warnings are errors) ...")
    start = time.perf_counter()
    result = build_html(root=root, executed_dir=executed_dir, output_root=out if output_root else None)
    echo(result.stdout[-3000:] if result.returncode else result.stdout[-600:])
    if result.returncode:
        echo(result.stderr[-6000:])
        echo(f"[o365book] jupyter-book build failed (exit {result.returncode})")
        return result.returncode
    echo(f"[o365book] book built in {time.perf_counter() - start:.1f} s: {build_dir / 'html' / 'index.html'}")
    return 0
