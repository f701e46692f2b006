"""System shared memory over a server of this module's own: a region unregistered while a request uses it
(the request still answers into it; the mapping goes once it is done), register and unregister refused to a
client off loopback, and every region closed when the server stops. Whether the server maps a client's file
is read from its ``/proc/PID/maps``."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import slow_iterations, slow_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.server.repository.test_explicit_control import REMOTE, needs_remote

SIZE = 128  # slow_model's OUTPUT0 is FP32 [SIZE, SIZE]
OUTPUT_BYTES = SIZE * SIZE * 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("shm-lifecycle")
    write_model(root, "slow", slow_model(SIZE))
    with start_server(root, "--host", "0.0.0.0") as handle:
        yield handle


def mapped(server: ServerProcess, key: str) -> bool:
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    return any(line.rstrip().endswith(f"/dev/shm/{key.lstrip('/')}") for line in maps.splitlines())


class Shared:
    """One client region of ``byte_size`` bytes, registered as ``name``."""

    def __init__(self, client: Any, stem: str, byte_size: int) -> None:
        self.name, self.key = f"{stem}_{uuid.uuid4().hex[:8]}", f"/mp_{stem}_{uuid.uuid4().hex[:8]}"
        self.handle = shm.create_shared_memory_region(self.name, self.key, byte_size)
        client.register_system_shared_memory(self.name, self.key, byte_size)

    def destroy(self) -> None:
        shm.destroy_shared_memory_region(self.handle)


def test_unregister_while_a_request_uses_the_region(server: ServerProcess) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    iterations = Shared(client, "iterations", 8)
    output = Shared(client, "output", OUTPUT_BYTES)
    try:

        def infer(count: int) -> Any:
            shm.set_shared_memory_region(iterations.handle, [np.array([count], np.int64)])
            tensor = grpcclient.InferInput("ITERATIONS", [1], "INT64")
            tensor.set_shared_memory(iterations.name, 8)
            wanted = grpcclient.InferRequestedOutput("OUTPUT0")
            wanted.set_shared_memory(output.name, OUTPUT_BYTES)
            return client.infer("slow", [tensor], outputs=[wanted], client_timeout=60)

        count = slow_iterations(infer, 1.5)
        shm.set_shared_memory_region(output.handle, [np.zeros((SIZE, SIZE), np.float32)])
        answered: list[Any] = []
        worker = threading.Thread(target=lambda: answered.append(infer(count)))
        worker.start()
        time.sleep(0.3)  # the request is in the model now (it runs for about 1.5 s)
        assert worker.is_alive()
        client.unregister_system_shared_memory()  # every region, while the request runs
        assert client.get_system_shared_memory_status().regions == {}
        assert mapped(server, output.key)  # held by the request until its answer is written
        worker.join(60)
        assert answered and answered[0].get_output("OUTPUT0").shape == [SIZE, SIZE]
        written = shm.get_contents_as_numpy(output.handle, np.float32, [SIZE, SIZE])
        assert np.isfinite(written).all() and np.abs(written).sum() > 0  # the answer landed in the region
        assert not mapped(server, output.key) and not mapped(server, iterations.key)
        with pytest.raises(InferenceServerException, match="unable to find system shared memory region"):
            infer(1)
    finally:
        client.unregister_system_shared_memory()
        iterations.destroy()
        output.destroy()
        client.close()


@needs_remote
def test_register_and_unregister_are_refused_off_loopback(server: ServerProcess) -> None:
    region = Shared(httpclient.InferenceServerClient(server.http_url), "remote", 64)
    port = server.http_url.rpartition(":")[2]
    try:
        with httpx.Client(base_url=f"http://{REMOTE}:{port}/v2/systemsharedmemory", timeout=30) as remote:
            body = {"key": region.key, "offset": 0, "byte_size": 64}
            for answer in (
                remote.post("/region/other/register", json=body),
                remote.post(f"/region/{region.name}/unregister"),
                remote.post("/unregister"),
            ):
                assert answer.status_code == 403, answer.text
                assert "allowed only from loopback clients" in answer.json()["error"]
            assert [row["name"] for row in remote.get("/status").json()] == [region.name]
    finally:
        httpx.post(f"http://{server.http_url}/v2/systemsharedmemory/unregister", timeout=30)
        region.destroy()


def test_every_region_is_closed_when_the_server_stops(tmp_path: Path) -> None:
    write_model(tmp_path, "slow", slow_model(8))
    with start_server(tmp_path) as server:
        client = httpclient.InferenceServerClient(server.http_url)
        regions = [Shared(client, f"stop{index}", 4096) for index in range(3)]
        try:
            assert all(mapped(server, region.key) for region in regions)
            assert server.stop() == 0
            assert "unregistered 3 system shared memory region(s)" in server.logs()
        finally:
            for region in regions:
                region.destroy()
