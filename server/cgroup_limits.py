"""This process's cgroup limits, read from the files cgroups v2 and v1 expose (``/sys/fs/cgroup``).

One reading for every user: ``modelport doctor`` reports them, ``--memory-budget`` as a fraction is taken of
:func:`memory_limit_bytes`, worker and thread budgets come from :func:`usable_cpus` (the affinity mask
narrowed by the CPU quota, so ``docker run --cpus 1`` on a 16-core host budgets 1 CPU, not 16).
Values at or above 2**60 (v1's "no limit", a page-rounded ``LONG_MAX``) count as
no limit.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = [
    "CGROUP_ROOT",
    "budget_bytes",
    "cpu_quota",
    "describe_limits",
    "memory_limit_bytes",
    "usable_cpus",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_NO_LIMIT = 2**60


def _read(relative: str, root: Path = CGROUP_ROOT) -> str | None:
    """The stripped text of ``root/relative``, or None when it cannot be read (absent, no permission)."""
    try:
        return (root / relative).read_text().strip()
    except OSError:
        return None


def memory_limit_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """The cgroup's memory limit in bytes (v2 ``memory.max``, else v1 ``memory.limit_in_bytes``), or None
    when there is none (``max``, no cgroup files, or v1's huge "unlimited" value)."""
    text = _read("memory.max", root) or _read("memory/memory.limit_in_bytes", root)
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < _NO_LIMIT else None


def budget_bytes(setting: float, root: Path = CGROUP_ROOT) -> int:
    """The bytes ``--memory-budget`` allows: a value up to 1 is that fraction of the cgroup's memory limit
    (ValueError when there is none), a larger one a number of bytes."""
    if setting > 1:
        return int(setting)
    limit = memory_limit_bytes(root)
    if limit is None:
        raise ValueError(
            f"{setting} is a fraction of the cgroup's memory limit, and this process has none (memory.max, "
            "memory.limit_in_bytes): give the budget in bytes"
        )
    return int(setting * limit)


def cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in CPUs (v2 ``cpu.max`` "quota period", else v1 ``cpu/cpu.cfs_quota_us`` over
    ``cpu/cpu.cfs_period_us``), or None when there is none (``max``, v1's -1, unreadable files)."""
    text = _read("cpu.max", root)
    if text:
        quota, _, period = text.partition(" ")
    else:
        quota = _read("cpu/cpu.cfs_quota_us", root) or ""
        period = _read("cpu/cpu.cfs_period_us", root) or ""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max", or no files
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process can use at once: its affinity mask (a cpuset narrows it), capped by the CPU
    quota rounded up (a 1.5-CPU quota gives 2), at least 1."""
    cores = len(os.sched_getaffinity(0))
    quota = cpu_quota(root)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def describe_limits(root: Path = CGROUP_ROOT) -> str:
    """Both limits in words, for one start-up log line and ``modelport doctor``."""
    quota = cpu_quota(root)
    memory = memory_limit_bytes(root)
    cpu = f"CPU quota {quota:.2f}" if quota is not None else "no CPU quota"
    mem = f"memory limit {memory / 2**30:.2f} GiB" if memory is not None else "no memory limit"
    return (
        f"{usable_cpus(root)} usable CPUs ({len(os.sched_getaffinity(0))} in the affinity mask, {cpu}); {mem}"
    )
