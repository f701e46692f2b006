"""Large requests: decoded off the event loop, and their memory handed back to the OS once answered.

A body of :data:`INLINE_BYTES` or more is decoded in a thread (``asyncio.to_thread``): fixed-size tensors are
views that cost nothing, but a BYTES tensor of millions of elements is a Python loop (or slices of numpy
``tolist``) that hands the GIL back to the event loop every switch interval (5 ms), so health probes and small
requests keep being answered while it runs. Smaller bodies are decoded inline: a thread hop (~50 us) would
cost the common small request more than its decoding does. A large JSON document is not one C call either:
its long lists are parsed in pieces (:mod:`rest_json_slices`), and so is a large JSON response written.

After a request of :data:`TRIM_BYTES` or more has been answered, :func:`after_large_request` frees its BYTES
tensors a slice of elements at a time in a thread (freeing 10 million elements at once is a second of GIL on
the event loop), then asks glibc to return freed heap pages (``malloc_trim(0)``, in a thread: it releases
the GIL and takes milliseconds on a large heap). Without it glibc keeps the pages of the request's freed
objects (its mmap threshold grows with every large free), and the server's RSS stays at its peak. A large
response is still held by the transport then: :func:`after_large_response` trims once more when it is sent.
A gRPC call holds its request message (the received bytes, which its raw tensors are views of) and its
response until the call ends: :func:`after_large_call` trims once more then.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..inference import Tensors

__all__ = [
    "INLINE_BYTES",
    "TRIM_BYTES",
    "after_large_call",
    "after_large_request",
    "after_large_response",
    "decode_off_loop",
    "map_large_allocations",
]

logger = logging.getLogger(__name__)

INLINE_BYTES = 1 << 20
TRIM_BYTES = 8 << 20

_T = TypeVar("_T")


def _libc(name: str, *argtypes: type[ctypes.c_int] | type[ctypes.c_size_t]) -> Callable[..., int] | None:
    """glibc's function ``name``, or None where the C library has none (musl, macOS)."""
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    result: Callable[..., int] = function
    return result


_malloc_trim = _libc("malloc_trim", ctypes.c_size_t)
_mallopt = _libc("mallopt", ctypes.c_int, ctypes.c_int)
_M_MMAP_THRESHOLD = -3  # <malloc.h>
_background: set[asyncio.Task[None]] = set()  # held so a task is not collected mid-run
_trimming: list[bool] = []  # non-empty while a trim runs; a second entry: run one more when it ends
SLICE = 1 << 16  # elements freed per step: a few ms of GIL


def map_large_allocations() -> None:
    """Have glibc give every allocation of :data:`INLINE_BYTES` or more a mapping of its own, unmapped when
    it is freed. Call once, at start. By default glibc raises its mmap threshold to the size of each mapped
    block freed (up to 32 MiB): after one large request, the next one's buffers come from the heap, where
    the small objects allocated meanwhile pin them, and malloc_trim cannot return them (measured: RSS +40 %
    for good after a few 16 MiB gRPC requests, back within 6 % with the threshold fixed). A fixed threshold
    also turns that adjustment off. No-op without glibc."""
    if _mallopt is not None:
        _mallopt(_M_MMAP_THRESHOLD, INLINE_BYTES)


async def decode_off_loop(size: int, decode: Callable[[], _T]) -> _T:
    """``decode()``, run in a thread when the request is ``size`` >= :data:`INLINE_BYTES` bytes."""
    if size < INLINE_BYTES:
        return decode()
    return await asyncio.to_thread(decode)


def after_large_request(size: int, tensors: Tensors | None = None) -> None:
    """Call once a request of ``size`` bytes has been answered (on the event loop), handing over its decoded
    ``tensors`` (the caller keeps no reference): for a large request, release them and return the freed
    memory to the OS in the background. Trims do not pile up: one runs at a time."""
    if size < TRIM_BYTES:
        return
    held = tensors or {}
    _start_background(lambda: _release(held))


async def _release(tensors: Tensors) -> None:
    """Free BYTES tensors element slice by element slice, in a thread: the deallocation of an object array
    of millions of elements is one C loop that holds the GIL (a second for 10 million), and it would run on
    the event loop, where the last reference is dropped."""
    arrays = list(tensors.values())
    tensors.clear()
    if any(array.dtype == np.object_ for array in arrays):
        await asyncio.to_thread(_free_in_slices, arrays)
    del arrays
    await _trim_once()


def after_large_response(size: int, written: Callable[[], Awaitable[object]]) -> None:
    """Call once a response of ``size`` bytes is handed to the transport; ``written()`` waits until the
    transport has sent it (as good as: below its low-water mark). For a large response the freed memory
    (the response's, and its request's, whose trim ran while the response was still held) then goes back
    to the OS."""
    if size < TRIM_BYTES:
        return

    async def trim_when_written() -> None:
        await written()
        await _trim_once()

    _start_background(trim_when_written)


def after_large_call(size: int, add_done_callback: Callable[[Callable[[Any], None]], None]) -> None:
    """For a gRPC call whose request is ``size`` bytes: once the call has ended (``add_done_callback`` of its
    servicer context) and grpc has dropped the request and the answer, the freed memory goes back
    to the OS."""
    if size < TRIM_BYTES:
        return
    loop = asyncio.get_running_loop()

    def trim_when_done(_: Any) -> None:
        # grpc drops its references to the message after the callbacks: trim on a later turn of the loop.
        with contextlib.suppress(RuntimeError):  # the loop has closed: the process is ending anyway
            loop.call_soon_threadsafe(_start_background, _trim_once)

    add_done_callback(trim_when_done)


def _start_background(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    task = asyncio.get_running_loop().create_task(work())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _trim_once() -> None:
    """malloc_trim in a thread; one at a time, and one more after it when asked for meanwhile."""
    if _malloc_trim is None:
        return
    if _trimming:
        _trimming[1:] = [True]
        return
    _trimming.append(True)
    try:
        while True:
            await _trim(_malloc_trim)
            if len(_trimming) == 1:
                break
            del _trimming[1:]
    finally:
        _trimming.clear()


def _free_in_slices(arrays: list[npt.NDArray[Any]]) -> None:
    """Empty each object array that nothing else holds (the request's own), :data:`SLICE` elements per step,
    handing the GIL back between steps; an array still held elsewhere (a batch being cancelled) is left to
    its other holder."""
    while arrays:
        array = arrays.pop()
        owner = array if array.base is None else array.base
        # References: `array` here (+ the getrefcount argument); the owner also from `array` as its base.
        if array.dtype != np.object_ or sys.getrefcount(array) > 2 or not isinstance(owner, np.ndarray):
            continue
        if owner is not array and sys.getrefcount(owner) > 3:
            continue
        flat = owner.reshape(-1)
        for start in range(0, flat.size, SLICE):
            flat[start : start + SLICE] = None


async def _trim(trim: Callable[[int], int]) -> None:
    try:
        await asyncio.to_thread(trim, 0)
    except Exception:  # never fatal: the memory is only kept longer
        logger.debug("malloc_trim failed", exc_info=True)
