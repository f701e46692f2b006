"""Which integer kernels this CPU gives ONNX Runtime, and the ``reduce_range`` choice that follows.

On x86 CPUs without VNNI, ONNX Runtime's U8S8 integer kernels (``MatMulInteger``, ``QLinearConv``,
``DynamicQuantizeLSTM``) multiply with ``vpmaddubsw``, whose 16-bit intermediate sums saturate when both the
activation (8 bits) and the weight (8 bits) are large: a model can lose most of its accuracy (one LSTM went
from an error of 0.004 to 0.23). Quantizing weights to 7 bits (``reduce_range=True``) keeps the sums in range.
VNNI (``avx512_vnni`` or ``avx_vnni``) accumulates in 32 bits and needs no such sacrifice; neither do ARM's
dot-product kernels.

The flags come from ``/proc/cpuinfo`` (Linux) or, elsewhere, from ``py-cpuinfo`` when it is installed. When
nothing can be read the safe choice is taken (``reduce_range=True``), since a quantized model may well be
served on another machine than the one that quantized it.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VNNI_FLAGS", "CpuFeatures", "ReduceRangeDecision", "decide_reduce_range", "read_cpu_features"]

# Spellings of the VNNI flags in /proc/cpuinfo and in py-cpuinfo.
VNNI_FLAGS: frozenset[str] = frozenset({"avx512_vnni", "avx512vnni", "avx_vnni", "avxvnni"})
_ARM_MACHINES = frozenset({"aarch64", "arm64", "armv8l", "armv7l"})


@dataclass(frozen=True, slots=True)
class CpuFeatures:
    """What the decision needs to know about a CPU. ``flags`` is empty when they could not be read."""

    machine: str  # platform.machine(): "x86_64", "aarch64", ...
    model_name: str
    flags: frozenset[str]
    source: str  # where the flags came from: "/proc/cpuinfo", "py-cpuinfo" or "unavailable"

    @property
    def vnni(self) -> list[str]:
        """The VNNI flags present, sorted."""
        return sorted(self.flags & VNNI_FLAGS)


@dataclass(frozen=True, slots=True)
class ReduceRangeDecision:
    """The ``reduce_range`` value used, who decided it (``"cpu"`` or ``"flag"``), and why, in one sentence."""

    value: bool
    decided_by: str
    reason: str


def _parse_proc_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    model_name = ""
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model_name:
            model_name = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 calls them flags, ARM Features
            flags = frozenset(value.split())
    return model_name, flags


def read_cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures:
    """Read this machine's CPU flags; never raises (an unreadable source gives empty flags)."""
    machine = platform.machine().lower()
    try:
        model_name, flags = _parse_proc_cpuinfo(cpuinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        pass
    else:
        if flags:
            return CpuFeatures(machine, model_name, flags, str(cpuinfo))
    try:
        import cpuinfo as py_cpuinfo  # type: ignore[import-not-found]  # optional: py-cpuinfo, untyped
    except ImportError:
        return CpuFeatures(machine, platform.processor(), frozenset(), "unavailable")
    info = py_cpuinfo.get_cpu_info()
    return CpuFeatures(
        machine,
        str(info.get("brand_raw", "")),
        frozenset(str(f) for f in info.get("flags", [])),
        "py-cpuinfo",
    )


def decide_reduce_range(cpu: CpuFeatures, override: bool | None = None) -> ReduceRangeDecision:
    """Choose ``reduce_range`` for ``cpu``; ``override`` (the user's flag) wins and is reported as such."""
    if override is not None:
        return ReduceRangeDecision(
            override, "flag", f"set by --{'' if override else 'no-'}reduce-range (the CPU was not consulted)"
        )
    if cpu.machine in _ARM_MACHINES:
        return ReduceRangeDecision(
            False,
            "cpu",
            f"{cpu.machine}: ARM integer kernels accumulate in 32 bits; full 8-bit weights are safe",
        )
    if not cpu.flags:
        return ReduceRangeDecision(
            True,
            "cpu",
            "CPU flags could not be read; 7-bit weights avoid U8S8 saturation on CPUs without VNNI",
        )
    if cpu.vnni:
        return ReduceRangeDecision(
            False,
            "cpu",
            f"CPU has {', '.join(cpu.vnni)}: VNNI accumulates in 32 bits, so full 8-bit weights do not "
            "saturate (serving on a CPU without VNNI? pass --reduce-range)",
        )
    return ReduceRangeDecision(
        True,
        "cpu",
        "CPU has no VNNI (avx512_vnni/avx_vnni): ONNX Runtime's U8S8 kernels would saturate 16-bit sums, "
        "so weights use 7 bits",
    )
