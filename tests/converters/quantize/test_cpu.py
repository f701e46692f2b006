"""``reduce_range`` follows the CPU: VNNI -> 8-bit weights, no VNNI -> 7-bit weights, a flag overrides.

The flags are read from real ``/proc/cpuinfo``-format files (an excerpt of each CPU kind), because the machine
that runs the tests is not the machine a model is served on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from modelport.converters.quantize.cpu import CpuFeatures, decide_reduce_range, read_cpu_features

_AVX2_ONLY = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi1 bmi2"
_AVX512_VNNI = _AVX2_ONLY + " avx512f avx512bw avx512vl avx512_vnni"
_AVX_VNNI = _AVX2_ONLY + " avx_vnni"


def _cpuinfo(tmp_path: Path, flags: str, name: str = "Test CPU") -> Path:
    path = tmp_path / "cpuinfo"
    block = f"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: {name}\nflags\t\t: {flags}\n\n"
    path.write_text(block + block.replace(": 0", ": 1", 1))
    return path


@pytest.mark.parametrize(
    ("flags", "expected", "named"),
    [(_AVX2_ONLY, True, "no VNNI"), (_AVX512_VNNI, False, "avx512_vnni"), (_AVX_VNNI, False, "avx_vnni")],
)
def test_reduce_range_follows_vnni(tmp_path: Path, flags: str, expected: bool, named: str) -> None:
    cpu = read_cpu_features(_cpuinfo(tmp_path, flags, "Xeon"))
    assert cpu.model_name == "Xeon"
    assert cpu.source.endswith("cpuinfo")
    decision = decide_reduce_range(cpu)
    assert decision.value is expected
    assert decision.decided_by == "cpu"
    assert named in decision.reason


def test_flag_overrides_the_cpu(tmp_path: Path) -> None:
    cpu = read_cpu_features(_cpuinfo(tmp_path, _AVX512_VNNI))
    forced = decide_reduce_range(cpu, override=True)
    assert (forced.value, forced.decided_by) == (True, "flag")
    assert "--reduce-range" in forced.reason
    off = decide_reduce_range(read_cpu_features(_cpuinfo(tmp_path, _AVX2_ONLY)), override=False)
    assert (off.value, off.decided_by) == (False, "flag")
    assert "--no-reduce-range" in off.reason


def test_unknown_cpu_takes_the_safe_choice(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("processor\t: 0\n")
    cpu = CpuFeatures("x86_64", "", frozenset(), "unavailable")
    assert decide_reduce_range(cpu).value is True
    # A file without flags falls through to py-cpuinfo (if installed) or to "unavailable", never raises.
    assert read_cpu_features(empty).source in {"py-cpuinfo", "unavailable"}
    assert read_cpu_features(tmp_path / "missing").source in {"py-cpuinfo", "unavailable"}


def test_arm_keeps_full_range() -> None:
    cpu = CpuFeatures("aarch64", "", frozenset({"fp", "asimd", "asimddp"}), "/proc/cpuinfo")
    decision = decide_reduce_range(cpu)
    assert decision.value is False
    assert "aarch64" in decision.reason


def test_this_machine_is_decided_from_its_flags() -> None:
    cpu = read_cpu_features()
    decision = decide_reduce_range(cpu)
    if cpu.flags and cpu.machine in {"x86_64", "amd64"}:
        assert decision.value is (not cpu.vnni)
