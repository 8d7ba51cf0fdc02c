"""CPU bf16 autocast only where the CPU runs bf16 natively; float32 elsewhere (measured ~10x faster there)."""

from __future__ import annotations

import torch

from o365lib.engine import precision


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert {"avx2", "avx512_bf16"} <= precision._cpu_flags(info)
    info.write_text("processor\t: 0\n")
    assert precision._cpu_flags(info) is None
    assert precision._cpu_flags(tmp_path / "missing") is None


def test_cpu_bf16_autocast_follows_native_support(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_bf16_is_native", lambda: True)
    assert precision.autocast_dtype("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_bf16_is_native", lambda: False)
    assert precision.autocast_dtype("bf16", cpu) is None  # emulated bf16: float32 instead
    for amp in (False, True, "fp16"):
        assert precision.autocast_dtype(amp, cpu) is None  # on a CPU only "bf16" means anything


def test_native_bf16_needs_both_onednn_and_the_cpu_flags(monkeypatch):
    class Ops:
        def __init__(self, value):
            self.value = value

        def _is_mkldnn_bf16_supported(self):
            return self.value

    for onednn, flags, expected in ((True, {"avx512_bf16"}, True), (True, {"amx_bf16"}, True),
                                    (True, {"avx512f", "avx2"}, False), (False, {"avx512_bf16"}, False),
                                    (True, None, True)):
        monkeypatch.setattr(torch.ops, "mkldnn", Ops(onednn))
        monkeypatch.setattr(precision, "_cpu_flags", lambda flags=flags: flags)
        precision.cpu_bf16_is_native.cache_clear()
        assert precision.cpu_bf16_is_native() is expected, (onednn, flags)
    precision.cpu_bf16_is_native.cache_clear()
