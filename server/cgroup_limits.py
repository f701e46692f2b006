"""This process's cgroup limits, read from the files cgroups v2 and v1 expose (``/sys/fs/cgroup``).

One reading for every user: ``modelport doctor`` reports them, ``--memory-budget`` as a fraction is taken of
:func:`memory_limit_bytes`. Values at or above 2**60 (v1's "no limit", a page-rounded ``LONG_MAX``) count as
no limit.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CGROUP_ROOT", "memory_limit_bytes", "read_cgroup_file"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_NO_LIMIT = 2**60


def read_cgroup_file(relative: str, root: Path = CGROUP_ROOT) -> str | None:
    """The stripped text of ``root/relative``, or None when it cannot be read (absent, no permission)."""
    try:
        return (root / relative).read_text().strip()
    except OSError:
        return None


def memory_limit_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """The cgroup's memory limit in bytes (v2 ``memory.max``, else v1 ``memory.limit_in_bytes``), or None
    when there is none (``max``, no cgroup files, or v1's huge "unlimited" value)."""
    text = read_cgroup_file("memory.max", root) or read_cgroup_file("memory/memory.limit_in_bytes", root)
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < _NO_LIMIT else None
