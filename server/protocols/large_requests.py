"""Large requests: decoded off the event loop, and their memory handed back to the OS once answered.

A body of :data:`INLINE_BYTES` or more is decoded in a thread (``asyncio.to_thread``): fixed-size tensors are
views that cost nothing, but a BYTES tensor of millions of elements is a Python loop (or slices of numpy
``tolist``) that hands the GIL back to the event loop every switch interval (5 ms), so health probes and small
requests keep being answered while it runs. Smaller bodies are decoded inline: a thread hop (~50 us) would
cost the common small request more than its decoding does.

After a request of :data:`TRIM_BYTES` or more has been answered, :func:`after_large_request` asks glibc to
return freed heap pages (``malloc_trim(0)``, in a thread: it releases the GIL and takes milliseconds on a
large heap). Without it glibc keeps the pages of the request's freed objects (its mmap threshold grows with
every large free), and the server's RSS stays at its peak.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import TypeVar

__all__ = ["INLINE_BYTES", "TRIM_BYTES", "after_large_request", "decode_off_loop"]

logger = logging.getLogger(__name__)

INLINE_BYTES = 1 << 20
TRIM_BYTES = 8 << 20

_T = TypeVar("_T")


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    result: Callable[[int], int] = trim
    return result


_malloc_trim = _load_malloc_trim()
_trimming: set[asyncio.Task[None]] = set()  # at most one; held so the task is not collected mid-run


async def decode_off_loop(size: int, decode: Callable[[], _T]) -> _T:
    """``decode()``, run in a thread when the request is ``size`` >= :data:`INLINE_BYTES` bytes."""
    if size < INLINE_BYTES:
        return decode()
    return await asyncio.to_thread(decode)


def after_large_request(size: int) -> None:
    """Call once a request of ``size`` bytes has been answered (on the event loop): for a large one, return
    the freed memory to the OS in the background. Trims do not pile up: one runs at a time."""
    if size < TRIM_BYTES or _malloc_trim is None or _trimming:
        return
    task = asyncio.get_running_loop().create_task(_trim(_malloc_trim))
    _trimming.add(task)
    task.add_done_callback(_trimming.discard)


async def _trim(trim: Callable[[int], int]) -> None:
    try:
        await asyncio.to_thread(trim, 0)
    except Exception:  # never fatal: the memory is only kept longer
        logger.debug("malloc_trim failed", exc_info=True)
