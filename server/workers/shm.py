"""Tensors in shared memory between the server and its worker processes.

A :class:`Region` is an anonymous shared-memory file (``memfd``) mapped into both processes: the side that
creates one passes its file descriptor over the worker's Unix socket (``SCM_RIGHTS``), the other maps it.
There are no names to leak or unlink: the memory is freed when the last mapping and descriptor close, even
after a SIGKILL. Only a :class:`TensorLayout` (name, datatype, shape, offset, size) travels over the socket;
tensor bytes are never pickled or copied through it.

Fixed-size datatypes are written row-major at 64-byte aligned offsets and read back as zero-copy numpy views;
BYTES tensors use the protocol's 4-byte length-prefixed encoding inside the region.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import Datatype, by_name, by_numpy, decode_bytes_tensor, encode_bytes_tensor
from ..inference import Tensors

__all__ = [
    "ALIGN",
    "INTERNAL_PREFIX",
    "OutgoingRegion",
    "Region",
    "TensorLayout",
    "adopt_region",
    "is_internal_file",
    "read_tensors",
    "region_size_for",
    "write_tensors",
]

ALIGN = 64
_MIN_REGION = 1 << 16
# The name prefix of every shared-memory file the server makes (a memfd's name, seen in /proc/PID/fd); the
# client shared-memory extension refuses keys that start with it.
INTERNAL_PREFIX = "modelport"
# (st_dev, st_ino) of every region mapped in this process: the client shared-memory extension refuses a key
# that opens one of them, however it was reached.
_INTERNAL_FILES: set[tuple[int, int]] = set()


def is_internal_file(status: os.stat_result) -> bool:
    """Whether ``status`` (an ``os.fstat``) is the file of a region this process maps for its workers."""
    return (status.st_dev, status.st_ino) in _INTERNAL_FILES


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def region_size_for(nbytes: int) -> int:
    """The size to allocate for ``nbytes`` of tensors: the next power of two (so regions rarely regrow)."""
    size = _MIN_REGION
    while size < nbytes:
        size *= 2
    return size


class Region:
    """One shared-memory buffer mapped in this process; ``fd`` is what to send to the other side."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._map = mmap.mmap(fd, size)
        self.buffer = memoryview(self._map)
        status = os.fstat(fd)
        self._identity = (status.st_dev, status.st_ino)
        _INTERNAL_FILES.add(self._identity)

    @classmethod
    def create(cls, size: int) -> Region:
        """A new zero-filled region of ``size`` bytes."""
        fd = os.memfd_create(f"{INTERNAL_PREFIX}-tensors", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            return cls(fd, size)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        """Unmap and close the descriptor; views into :attr:`buffer` must be gone by now."""
        _INTERNAL_FILES.discard(self._identity)
        self.buffer.release()
        # A numpy view may still point into the map (a caller kept an output view): the GC unmaps it then.
        with contextlib.suppress(BufferError):
            self._map.close()
        os.close(self.fd)


def adopt_region(current: Region | None, size: int | None, fds: list[int]) -> Region | None:
    """The region a message brought (``size`` set, its descriptor first in ``fds``; then ``current`` is
    closed), else ``current``. Every other descriptor received with it is closed."""
    region = current
    if size is not None:
        if not fds:
            raise ValueError("protocol error: a new region arrived without its descriptor")
        if current is not None:
            current.close()
        region = Region(fds.pop(0), int(size))
    for fd in fds:
        os.close(fd)
    return region


class OutgoingRegion:
    """The region one side writes tensors into for the other (the server's inputs, a worker's outputs).

    :meth:`fit` grows it by replacement (to :func:`region_size_for` the need); a new region is
    :attr:`pending` until :meth:`sent` says a message carried its descriptor, so a batch that fails before
    its message went leaves the other side's view right: the next message carries the region again.
    """

    def __init__(self) -> None:
        self._region: Region | None = None
        self._unsent = False

    def fit(self, nbytes: int) -> Region:
        """A region of at least ``nbytes``: the current one, or a new one (the old one closed)."""
        if self._region is None or self._region.size < nbytes:
            if self._region is not None:
                self._region.close()
            self._region = Region.create(region_size_for(nbytes))
            self._unsent = True
        return self._region

    @property
    def pending(self) -> Region | None:
        """The region the other side does not have yet (attach its descriptor to the next message)."""
        return self._region if self._unsent else None

    def sent(self) -> None:
        """The message carrying :attr:`pending` went out."""
        self._unsent = False

    def close(self) -> None:
        """Release the region (the other side keeps its own mapping until it closes it)."""
        if self._region is not None:
            self._region.close()
            self._region = None


@dataclass(frozen=True, slots=True)
class TensorLayout:
    """Where one tensor lies in a region; small enough to send as a control message."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    def to_wire(self) -> list[Any]:
        """A compact JSON-able form."""
        return [self.name, self.datatype, list(self.shape), self.offset, self.nbytes]

    @classmethod
    def from_wire(cls, item: Sequence[Any]) -> TensorLayout:
        """The inverse of :meth:`to_wire`."""
        name, datatype, shape, offset, nbytes = item
        return cls(str(name), str(datatype), tuple(map(int, shape)), int(offset), int(nbytes))


Parts = Sequence[npt.NDArray[np.generic]]


def _concat_shape(parts: Parts) -> tuple[int, ...]:
    first = parts[0].shape
    if len(parts) == 1:
        return tuple(first)
    return (sum(int(p.shape[0]) for p in parts), *first[1:])


def write_tensors(
    parts_by_name: Mapping[str, Parts], get_region: Callable[[int], Region]
) -> tuple[Region, list[TensorLayout]]:
    """Concatenate each name's parts on axis 0 straight into shared memory.

    ``get_region(nbytes)`` returns a region of at least ``nbytes`` (the caller's, or a new larger one); the
    parts of one name must share dtype and trailing dimensions (the batcher groups requests so they do).
    """
    plan: list[tuple[str, Datatype, tuple[int, ...], int, bytes | None]] = []  # None: copy the parts
    total = 0
    for name, parts in parts_by_name.items():
        shape = _concat_shape(parts)
        datatype = by_numpy(parts[0].dtype)
        encoded: bytes | None = None
        if datatype.itemsize == 0:  # BYTES
            encoded = b"".join(encode_bytes_tensor(p.astype(np.object_)) for p in parts)
            nbytes = len(encoded)
        else:
            nbytes = math.prod(shape) * datatype.itemsize
        plan.append((name, datatype, shape, nbytes, encoded))
        total = _aligned(total) + nbytes
    region = get_region(total)
    layouts: list[TensorLayout] = []
    offset = 0
    for name, datatype, shape, nbytes, encoded in plan:
        offset = _aligned(offset)
        target = region.buffer[offset : offset + nbytes]
        if encoded is not None:
            target[:] = encoded
        else:
            out = np.frombuffer(target, dtype=datatype.numpy).reshape(shape)
            parts = parts_by_name[name]
            if len(parts) == 1:
                out[...] = parts[0]
            else:
                np.concatenate(parts, axis=0, out=out)
        layouts.append(TensorLayout(name, datatype.name, shape, offset, nbytes))
        offset += nbytes
    return region, layouts


def read_tensors(region: Region, layouts: Sequence[TensorLayout]) -> Tensors:
    """Views of the tensors in ``region`` (BYTES are decoded into new object arrays).

    The views alias shared memory: copy what must outlive the region's next use.
    """
    result: Tensors = {}
    for layout in layouts:
        raw = region.buffer[layout.offset : layout.offset + layout.nbytes]
        datatype = by_name(layout.datatype)
        if datatype.name == "BYTES":
            count = math.prod(layout.shape)
            result[layout.name] = decode_bytes_tensor(raw, count, tensor=layout.name).reshape(layout.shape)
        else:
            result[layout.name] = np.frombuffer(raw, dtype=datatype.numpy).reshape(layout.shape)
    return result
