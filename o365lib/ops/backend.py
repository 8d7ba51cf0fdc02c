"""Where the small sequential box algorithms (soft-NMS, WBF) run: numba kernel or torch ops.

Soft-NMS and weighted boxes fusion are sequential within a class. Two implementations share
each public function:

* ``"numba"``: a compiled loop over plain numpy arrays (``@njit(cache=True)``). No per-op
  dispatch cost, so one image (a few hundred boxes) takes tens of microseconds, and it scales
  linearly to many images in one call. CPU only; needs the optional ``numba`` package.
* ``"torch"``: ops vectorised over all classes (and images) at once, one Python step per box
  of the largest class. Runs on any device (CUDA included) without extra packages.

``backend="auto"`` picks numba for CPU inputs when numba imports, torch otherwise. Both give
the same outputs (tests compare them to each other and to ensemble-boxes 1.0.9).

The torch path runs its many small CPU ops on one intra-op thread (:func:`one_cpu_thread`).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["BACKENDS", "HAVE_NUMBA", "one_cpu_thread", "resolve_backend", "serial_on_cpu"]

BACKENDS = ("auto", "numba", "torch")
# numba is optional: the GPU machines carry only pure-Python wheels
HAVE_NUMBA = importlib.util.find_spec("numba") is not None


def resolve_backend(backend: str, device: torch.device, *, caller: str) -> str:
    """``"numba"`` or ``"torch"`` for inputs on ``device``; ``caller`` names the function in errors.

    ``"auto"``: numba on CPU when installed, else torch. Asking for ``"numba"`` with CUDA
    inputs or without numba installed is an error, not a silent fallback.
    """
    if backend not in BACKENDS:
        raise ValueError(f"{caller}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "numba" if HAVE_NUMBA and device.type == "cpu" else "torch"
    if backend == "numba":
        if not HAVE_NUMBA:
            raise ValueError(f"{caller}: backend='numba' needs the numba package (pip install numba)")
        if device.type != "cpu":
            raise ValueError(f"{caller}: backend='numba' runs on CPU tensors, got device {device}")
    return backend


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run many small CPU ops on one intra-op thread, then restore the setting.

    Soft-NMS and WBF are hundreds of small kernels; some (e.g. ``max(dim=...)``) enter OpenMP
    regions whatever their size, and with 2+ threads on a busy machine each such region can
    wait milliseconds for a descheduled worker.  Measured on the shared 2-core machine (load
    3-6): a [70, 62] ``max`` went from 15 us to over 1 ms; torch soft-NMS per image 2.1 ms with
    one thread vs 18.5 ms with two, WBF 1000 images batched 2.0 vs 4.7 ms per image.
    """
    previous = torch.get_num_threads()
    if device.type != "cpu" or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def serial_on_cpu(fn):
    """Decorator: run ``fn(boxes, ...)`` under :func:`one_cpu_thread` for ``boxes``' device."""

    @functools.wraps(fn)
    def wrapper(boxes, *args, **kwargs):
        device = boxes.device if isinstance(boxes, torch.Tensor) else torch.device("cpu")
        with one_cpu_thread(device):
            return fn(boxes, *args, **kwargs)

    return wrapper
