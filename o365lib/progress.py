"""Progress bars that a person can follow in the terminal and that never land in a rendered page.

Inside a Jupyter kernel, ``sys.stderr`` is the notebook's output stream: a bar written there ends up
in the executed page. ``sys.__stderr__`` is the kernel process's own standard error, which the book
runner's terminal shows. The runner sets ``O365BOOK_PROGRESS=terminal`` for its kernels, and every
bar of the library (training: iteration, loss, images/s, elapsed and remaining time; pretraining;
inference) is then written there. ``TQDM_DISABLE=1`` turns all bars off.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _plain_tqdm

PROGRESS_ENV = "O365BOOK_PROGRESS"


def progress_enabled() -> bool:
    """False when ``TQDM_DISABLE`` is set to a true value."""
    return os.environ.get("TQDM_DISABLE", "0").lower() in ("", "0", "false")


def progress_bar(*, total: int | None = None, desc: str, disable: bool = False, **kwargs):
    """A tqdm bar; with ``O365BOOK_PROGRESS=terminal`` a plain text bar on the process's real stderr."""
    disable = disable or not progress_enabled()
    if os.environ.get(PROGRESS_ENV) == "terminal":
        return _plain_tqdm(total=total, desc=desc, disable=disable, file=sys.__stderr__, mininterval=2.0,
                           dynamic_ncols=False, ncols=110, **kwargs)
    return _auto_tqdm(total=total, desc=desc, disable=disable, **kwargs)
