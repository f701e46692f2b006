"""The registry of client regions on its own (no server): the server's own regions refused however they are
reached, unregister while a request holds a region, a file shrunk under a region, close at shutdown.
Whether a file is still mapped is read from this process's ``/proc/self/maps``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from modelport.server.errors import InvalidInput
from modelport.server.shared_memory import SystemSharedMemory
from modelport.server.workers.shm import Region


def mapped(file_name: str) -> bool:
    with open("/proc/self/maps") as maps:
        return any(line.rstrip().endswith(f"/dev/shm/{file_name}") for line in maps)


@pytest.fixture
def shm_file() -> Iterator[tuple[str, int]]:
    """A 4 KiB shared memory object in /dev/shm, as a client makes one: its name and descriptor."""
    name = f"mp_unit_{uuid.uuid4().hex[:12]}"
    fd = os.open(f"/dev/shm/{name}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, 4096)
    os.pwrite(fd, bytes(range(256)) * 16, 0)
    yield name, fd
    os.close(fd)
    os.unlink(f"/dev/shm/{name}")


def test_a_file_the_server_maps_for_its_workers_cannot_be_registered(shm_file: tuple[str, int]) -> None:
    name, fd = shm_file
    registry = SystemSharedMemory()
    own = Region(os.dup(fd), 4096)  # as the pool maps a worker's region
    with pytest.raises(InvalidInput, match="is not a shared memory object a client created"):
        registry.register("r", key=f"/{name}", offset=0, byte_size=64)
    assert registry.status() == []
    own.close()
    registry.register("r", key=f"/{name}", offset=0, byte_size=64)  # no longer the server's
    registry.close()


def test_unregister_while_a_request_holds_the_region_closes_it_when_let_go(shm_file: tuple[str, int]) -> None:
    name, _ = shm_file
    registry = SystemSharedMemory()
    registry.register("r", key=name, offset=256, byte_size=512)
    assert mapped(name)
    region = registry.hold("r", "input 'x'")
    view = region.view(16, 4, "input 'x'")
    registry.unregister("r")
    assert registry.status() == [] and mapped(name)  # the name is gone; the request still reads
    assert bytes(view) == bytes([16, 17, 18, 19])  # offset 256 + 16 into the file
    with pytest.raises(InvalidInput, match="unable to find system shared memory region 'r'"):
        registry.hold("r", "input 'x'")
    view.release()
    region.let_go()
    assert not mapped(name)


def test_a_region_whose_file_shrank_is_refused_not_read_past_its_end(shm_file: tuple[str, int]) -> None:
    name, fd = shm_file
    registry = SystemSharedMemory()
    registry.register("r", key=name, offset=0, byte_size=4096)
    os.ftruncate(fd, 100)
    region = registry.hold("r", "input 'x'")
    with pytest.raises(InvalidInput, match=r"has shrunk to 100 bytes, below the 4096 bytes registered"):
        region.view(0, 64, "input 'x'")
    region.let_go()
    registry.close()


def test_close_unmaps_every_region(shm_file: tuple[str, int]) -> None:
    name, _ = shm_file
    registry = SystemSharedMemory()
    for index in range(3):
        registry.register(f"r{index}", key=name, offset=index * 1024, byte_size=1024)
    assert len(registry.status()) == 3 and mapped(name)
    registry.close()
    assert registry.status() == [] and not mapped(name)
