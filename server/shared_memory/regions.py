"""The client's system shared-memory regions registered with this server (Triton's extension).

:meth:`SystemSharedMemory.register` opens the key in ``/dev/shm`` (``O_NOFOLLOW``: a symbolic link planted
there is refused; the file must be a regular file, and not one of the server's own regions), checks the
region against the file's size and maps just that range. Every use checks the tensor's offset and size
against the region, and the region against the file's size *now* (a client that shrank its file since
registering is refused rather than read past its end).

Lifetime: a request holds its regions from the moment its tensors are found until its answer is written
(:meth:`ClientRegion.hold` / :meth:`ClientRegion.let_go`). Unregistering a region removes the name at once;
the mapping is closed when the last request holding it lets go. Numpy views of the mapping keep it mapped
until they are gone (``mmap.close`` refuses while they exist, and the mapping is then unmapped when the last
view is freed), so no view ever points at unmapped memory. :meth:`SystemSharedMemory.close` (at shutdown)
unregisters everything.

Registering, unregistering and looking regions up happen on the event loop only.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import stat
from dataclasses import dataclass

from ..errors import AlreadyExists, ErrorCode, InvalidInput, ModelportError, PayloadTooLarge
from ..workers.shm import is_internal_file
from .keys import check_key, check_region_name

__all__ = ["MAX_REGIONS", "ClientRegion", "RegionNotFound", "RegionStatus", "SystemSharedMemory"]

logger = logging.getLogger(__name__)

SHM_DIRECTORY = "/dev/shm"  # where glibc's shm_open keeps POSIX shared-memory objects
MAX_REGIONS = 1024  # each holds a mapping and a descriptor
_INT64_MAX = 2**63 - 1


class RegionNotFound(ModelportError):
    """A status request for a region that is not registered (Triton answers NOT_FOUND)."""

    code = ErrorCode.NOT_FOUND


@dataclass(frozen=True, slots=True)
class RegionStatus:
    name: str
    key: str
    offset: int
    byte_size: int


class ClientRegion:
    """One registered region: ``byte_size`` bytes at ``offset`` into the shared-memory object ``key``."""

    def __init__(self, name: str, key: str, offset: int, byte_size: int, fd: int) -> None:
        self.status = RegionStatus(name, key, offset, byte_size)
        start = offset - offset % mmap.ALLOCATIONGRANULARITY  # mmap's offset must be page-aligned
        self._map = mmap.mmap(fd, offset + byte_size - start, offset=start)  # it keeps its own descriptor
        self._view = memoryview(self._map)[offset - start :]
        self._users = 0
        self._unregistered = False

    @property
    def name(self) -> str:
        return self.status.name

    def view(self, offset: int, byte_size: int, what: str) -> memoryview:
        """The ``byte_size`` bytes at ``offset`` into the region, for ``what`` (a tensor, for the messages);
        :class:`InvalidInput` naming the region when they are not all inside it, or when the client's file
        has shrunk below the region since it was registered."""
        region = self.status
        if offset < 0 or byte_size < 0 or offset + byte_size > region.byte_size:
            raise InvalidInput(
                f"{what}: shared_memory_offset {offset} + shared_memory_byte_size {byte_size} runs past the "
                f"end of system shared memory region '{region.name}' ({region.byte_size} bytes); give an "
                "offset and size inside the region"
            )
        file_size = self._map.size()
        if file_size < region.offset + region.byte_size:
            raise InvalidInput(
                f"{what}: the shared memory object '{region.key}' of region '{region.name}' has shrunk to "
                f"{file_size} bytes, below the {region.offset + region.byte_size} bytes registered; register "
                "the region again"
            )
        return self._view[offset : offset + byte_size]

    def hold(self) -> None:
        self._users += 1

    def let_go(self) -> None:
        self._users -= 1
        if self._users == 0 and self._unregistered:
            self._close()

    def unregister(self) -> None:
        self._unregistered = True
        if self._users == 0:
            self._close()

    def _close(self) -> None:
        self._view.release()
        # A numpy view of the mapping may still exist (a request abandoned at its deadline, its batch still
        # queued): the mapping is then unmapped when that view is freed.
        with contextlib.suppress(BufferError):
            self._map.close()


def _count(value: object, field: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
        raise InvalidInput(
            f"system shared memory region '{name}': '{field}' must be a non-negative integer (bytes), "
            f"got {value!r:.40}"
        )
    return value


class SystemSharedMemory:
    """The registry of one server: register, unregister, status, and the lookup that inference uses."""

    def __init__(self, directory: str = SHM_DIRECTORY) -> None:
        self._directory = directory
        self._regions: dict[str, ClientRegion] = {}

    def register(self, name: str, *, key: object, offset: object, byte_size: object) -> None:
        """Register ``byte_size`` bytes at ``offset`` into the shared-memory object ``key`` as ``name``;
        :class:`InvalidInput` (bad key, sizes, a file that is missing, too small, not a regular file or the
        server's own), :class:`AlreadyExists` for a name already registered."""
        check_region_name(name)
        file_name = check_key(key, region=name)
        start = _count(offset, "offset", name)
        size = _count(byte_size, "byte_size", name)
        if size == 0:
            raise InvalidInput(f"system shared memory region '{name}': 'byte_size' must be at least 1")
        if name in self._regions:
            raise AlreadyExists(
                f"system shared memory region '{name}' is already registered; unregister it first or choose "
                "another name"
            )
        if len(self._regions) >= MAX_REGIONS:
            raise PayloadTooLarge(
                f"system shared memory region '{name}': {MAX_REGIONS} regions are registered already, the "
                "most this server holds; unregister some first"
            )
        fd = self._open(name, str(key), file_name)
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or is_internal_file(status):
                raise InvalidInput(
                    f"system shared memory region '{name}': key '{key}' is not a shared memory object a "
                    "client created; create one with shm_open and register that"
                )
            if start + size > status.st_size:
                raise InvalidInput(
                    f"system shared memory region '{name}': offset {start} + byte_size {size} runs past the "
                    f"end of the shared memory object '{key}' ({status.st_size} bytes); register a range "
                    "inside it"
                )
            try:
                self._regions[name] = ClientRegion(name, str(key), start, size, fd)
            except (OSError, ValueError) as error:  # the file shrank meanwhile, or cannot be mapped
                raise InvalidInput(
                    f"system shared memory region '{name}': unable to map key '{key}' ({error})"
                ) from None
        finally:
            os.close(fd)

    def _open(self, name: str, key: str, file_name: str) -> int:
        try:
            return os.open(
                os.path.join(self._directory, file_name),
                os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY,
            )
        except FileNotFoundError:
            reason = "no shared memory object has this key; create it (shm_open) before registering it"
        except PermissionError:
            reason = "the server may not read and write it; create it with permissions for the server's user"
        except OSError as error:
            if error.errno == errno.ELOOP:
                reason = "it is a symbolic link, not a shared memory object"
            else:
                reason = f"it cannot be opened ({os.strerror(error.errno or 0)})"
        raise InvalidInput(f"system shared memory region '{name}': unable to open key '{key}': {reason}")

    def unregister(self, name: str = "") -> None:
        """Unregister ``name`` ("" = every region); a name that is not registered is no error, as in Triton.
        A region some request still uses is closed when that request finishes."""
        names = list(self._regions) if not name else [name] if name in self._regions else []
        for each in names:
            self._regions.pop(each).unregister()

    def status(self, name: str = "") -> list[RegionStatus]:
        """Every region ("" ) or the one called ``name`` (:class:`RegionNotFound` if not registered)."""
        if not name:
            return [region.status for region in self._regions.values()]
        region = self._regions.get(name)
        if region is None:
            raise RegionNotFound(f"unable to find system shared memory region: '{name}'")
        return [region.status]

    def hold(self, name: str, what: str) -> ClientRegion:
        """The region called ``name``, held for one request (:meth:`ClientRegion.let_go` when done);
        :class:`InvalidInput` naming ``what`` (a tensor) when it is not registered."""
        region = self._regions.get(name)
        if region is None:
            raise InvalidInput(
                f"{what}: unable to find system shared memory region '{name}'; register it first "
                "(POST /v2/systemsharedmemory/region/NAME/register or SystemSharedMemoryRegister)"
            )
        region.hold()
        return region

    def close(self) -> None:
        """Unregister every region (the server stops)."""
        count = len(self._regions)
        self.unregister()
        if count:
            logger.info("unregistered %d system shared memory region(s)", count)
