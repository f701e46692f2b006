"""The response cache (Triton's ``response_cache``): a repeated request is answered without running the model.

One cache per server, ``--cache-size`` bytes, least recently used first out. Each model version that enables
it (``response_cache: {enable: true}``) gets a :class:`VersionCache`, its share of the one store: entries are
keyed by a BLAKE2b-256 digest of the version (a token unique to this load), every input's name, datatype,
shape and bytes, and the requested outputs in their order. Nothing else of a request changes the data plane's
answer: parameters such as ``binary_data`` act when the adapter encodes it, after the cache. A hit is
answered from the cache before the batcher; a miss runs and its outputs are copied into the cache
(read-only arrays, so no encoder can change a cached answer). When a version stops serving (unloaded,
reloaded, evicted) its entries go with it.

Entries are counted at their arrays' bytes (BYTES: each element's bytes plus a pointer) plus a fixed
overhead per entry and per output; an answer larger than the whole cache is not stored. Used on the event
loop only: no locking.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .datatypes import by_numpy, encode_bytes_tensor
from .executor import ExecutionResult
from .inference import Tensors

__all__ = ["CacheUsage", "ResponseCache", "VersionCache", "answer"]

_ENTRY_OVERHEAD = 256  # the key, the entry and its dict: bytes counted per entry beyond its arrays
_OUTPUT_OVERHEAD = 128  # an array object and its name
_owners = itertools.count(1)


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """The cache as the metrics show it."""

    capacity_bytes: int
    used_bytes: int
    entries: int
    evictions: int


@dataclass(slots=True)
class _Entry:
    owner: int
    outputs: dict[str, npt.NDArray[Any]]
    size: int


class ResponseCache:
    """The server's cache of ``capacity_bytes`` (> 0), shared by every version that enables it."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"a response cache needs a size > 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._entries: collections.OrderedDict[bytes, _Entry] = collections.OrderedDict()
        self._by_owner: dict[int, set[bytes]] = {}
        self._used = 0
        self._evictions = 0

    def for_version(self, model: str, version: int) -> VersionCache:
        """A new share for one loaded version of ``model``, until :meth:`VersionCache.clear`."""
        owner = next(_owners)
        self._by_owner[owner] = set()
        return VersionCache(self, owner, f"{model}\0{version}\0{owner}".encode())

    def usage(self) -> CacheUsage:
        return CacheUsage(self.capacity_bytes, self._used, len(self._entries), self._evictions)

    def _get(self, key: bytes) -> dict[str, npt.NDArray[Any]] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return dict(entry.outputs)

    def _put(self, owner: int, key: bytes, outputs: Mapping[str, npt.NDArray[Any]]) -> None:
        keys = self._by_owner.get(owner)
        if keys is None or key in self._entries:  # a cleared version, or a concurrent miss stored it
            return
        size = _ENTRY_OVERHEAD + sum(_OUTPUT_OVERHEAD + _nbytes(a) for a in outputs.values())
        if size > self.capacity_bytes:
            return
        while self._used + size > self.capacity_bytes:
            self._evictions += 1
            self._remove(next(iter(self._entries)))
        self._entries[key] = _Entry(owner, {name: _frozen(a) for name, a in outputs.items()}, size)
        keys.add(key)
        self._used += size

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self._used -= entry.size
        owned = self._by_owner.get(entry.owner)
        if owned is not None:
            owned.discard(key)

    def _clear(self, owner: int) -> None:
        for key in self._by_owner.pop(owner, set()):
            entry = self._entries.pop(key)
            self._used -= entry.size


class VersionCache:
    """One loaded version's share of the :class:`ResponseCache`."""

    def __init__(self, store: ResponseCache, owner: int, prefix: bytes) -> None:
        self._store = store
        self._owner = owner
        self._prefix = prefix

    def key(self, inputs: Tensors, output_names: Sequence[str]) -> bytes:
        """The digest of everything that decides this version's answer to a request (inputs already
        checked against the signature)."""
        digest = hashlib.blake2b(self._prefix, digest_size=32)
        for name in sorted(inputs):
            array = inputs[name]
            data: bytes | memoryview = (
                encode_bytes_tensor(array)  # type: ignore[arg-type]  # an object array: BYTES
                if array.dtype == np.object_
                else np.ascontiguousarray(array).view(np.uint8).data
            )
            header = f"{len(name)}:{name}:{by_numpy(array.dtype).name}:{array.shape}:{len(data)}:"
            digest.update(header.encode())
            digest.update(data)
        digest.update(f"{len(output_names)}".encode())
        for name in output_names:
            digest.update(f":{len(name)}:{name}".encode())
        return digest.digest()

    def get(self, key: bytes) -> dict[str, npt.NDArray[Any]] | None:
        return self._store._get(key)  # the store's methods, for its shares only

    def put(self, key: bytes, outputs: Mapping[str, npt.NDArray[Any]]) -> None:
        self._store._put(self._owner, key, outputs)

    def clear(self) -> None:
        """Drop this version's entries; later answers are no longer stored."""
        self._store._clear(self._owner)


async def answer(
    cache: VersionCache | None,
    inputs: Tensors,
    output_names: Sequence[str],
    run: Callable[[], Awaitable[ExecutionResult]],
) -> ExecutionResult:
    """``run()``'s answer, or the cached one: a hit does not call ``run`` (it never reaches the batcher);
    the result says which (``cache``) and how long the lookup (and, on a miss, the insertion) took."""
    if cache is None:
        return await run()
    started = time.monotonic_ns()
    key = cache.key(inputs, output_names)
    outputs = cache.get(key)
    if outputs is not None:
        took = time.monotonic_ns() - started
        return ExecutionResult(outputs, 0, 0, 0, 0, batch_size=0, cache="hit", cache_ns=took)
    looked_up = time.monotonic_ns() - started
    result = await run()
    started = time.monotonic_ns()
    cache.put(key, {name: result.outputs[name] for name in output_names})
    return replace(result, cache="miss", cache_ns=looked_up + time.monotonic_ns() - started)


def _nbytes(array: npt.NDArray[Any]) -> int:
    if array.dtype == np.object_:
        return 8 * array.size + sum(len(item) for item in array.ravel() if isinstance(item, bytes | str))
    return int(array.nbytes)


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    copy = np.array(array, copy=True)
    copy.setflags(write=False)
    return copy
