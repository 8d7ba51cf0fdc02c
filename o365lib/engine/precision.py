"""Which autocast dtype a training run gets on its device, and whether a CPU runs bf16 natively.

On a CPU, ``amp="bf16"`` runs oneDNN's bf16 kernels. They pay only where the CPU has bf16
instructions (AVX512-BF16 or AMX): there the default detector's step was 1.2-1.45x faster than in
float32. Elsewhere oneDNN has no bf16 kernels or emulates them: on an AVX2-only AMD EPYC the same
step took 5.2 s in bf16 against 0.54 s in float32, 9.6x slower (``bench/README.md``). So ``"bf16"``
on a CPU without native bf16 trains in float32, and says so once in the log.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

LOGGER = logging.getLogger(__name__)
#: /proc/cpuinfo flags of native bf16 arithmetic on x86 (Cooper Lake / Sapphire Rapids and later, Zen 4 and later)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux), None where that cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return set(line.split(":", 1)[1].split())
    return None


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_native() -> bool:
    """True when oneDNN has bf16 kernels here and (where the flags can be read) the CPU has bf16 instructions."""
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False
    flags = _cpu_flags()
    return onednn and (flags is None or any(flag in flags for flag in BF16_FLAGS))


def autocast_dtype(amp, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run: on CUDA bf16 (or fp16 for ``"fp16"``, or where bf16 is missing) for any
    ``amp``; on a CPU bf16 only for ``amp="bf16"`` and only where :func:`cpu_bf16_is_native`; else None."""
    if device.type == "cpu":
        if amp != "bf16":
            return None
        if cpu_bf16_is_native():
            return torch.bfloat16  # oneDNN bf16 kernels; no loss scaling needed
        _log_fallback_once()
        return None
    if device.type != "cuda" or not amp:
        return None
    if amp == "fp16" or (amp is True and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


@functools.lru_cache(maxsize=1)
def _log_fallback_once() -> None:
    LOGGER.info("amp='bf16' on a CPU without native bf16 (no avx512_bf16 / amx_bf16): training in float32, "
                "which is several times faster there")
