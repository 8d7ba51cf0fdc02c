"""Progress bars that a person can follow in the terminal and that never land in a rendered page.

Inside a Jupyter kernel, both ``sys.stderr`` and the process's own file descriptor 2 end up in the
notebook (ipykernel captures the file descriptors too), so a bar written to either lands in the
executed page. The book runner therefore sets ``O365BOOK_PROGRESS=<file>`` for its kernels: every bar
of the library (training: iteration, loss, images/s, elapsed and remaining time; pretraining;
inference) is appended to that file, and the runner echoes it to its terminal as it grows.
``TQDM_DISABLE=1`` turns all bars off.
"""

from __future__ import annotations

import os
import sys
import warnings

from tqdm.std import tqdm as _plain_tqdm

with warnings.catch_warnings():
    # tqdm.auto warns at import in a Jupyter kernel without ipywidgets (every book kernel) and then
    # falls back to the text bar; the warning would otherwise land in the executed page.
    warnings.filterwarnings("ignore", message="IProgress not found")
    from tqdm.auto import tqdm as _auto_tqdm

PROGRESS_ENV = "O365BOOK_PROGRESS"


def progress_enabled() -> bool:
    """False when ``TQDM_DISABLE`` is set to a true value."""
    return os.environ.get("TQDM_DISABLE", "0").lower() in ("", "0", "false")


def progress_bar(*, total: int | None = None, desc: str, disable: bool = False, **kwargs):
    """A tqdm bar; with ``O365BOOK_PROGRESS=<file>`` a plain text bar appended to that file."""
    disable = disable or not progress_enabled()
    target = os.environ.get(PROGRESS_ENV)
    if target:
        handle = sys.__stderr__ if target == "terminal" else open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        return _plain_tqdm(total=total, desc=desc, disable=disable, file=handle, mininterval=2.0,
                           dynamic_ncols=False, ncols=110, ascii=True, **kwargs)
    return _auto_tqdm(total=total, desc=desc, disable=disable, **kwargs)
