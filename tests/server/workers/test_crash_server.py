"""Worker crashes through the real server: SIGKILL under load fails no request; a crash loop marks the model
unavailable with its cause while another model keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient_sync
import tritonclient.http.aio as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import mlp_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

WORKERS = {"min": 2, "max": 2, "threads": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("crash-repo")
    batching = {"max_queue_delay_us": 500, "max_queue_size": 4096}
    for name in ("mlp", "victim", "healthy"):
        write_model(
            root,
            name,
            mlp_model(),
            config={"max_batch_size": 16, "dynamic_batching": batching, "workers": WORKERS},
        )
    with start_server(root, "--instance-kind", "process") as handle:
        yield handle


def workers(server: ServerProcess, model: str) -> list[dict[str, Any]]:
    response = httpx.get(f"http://{server.management_url}/models/{model}", timeout=10)
    response.raise_for_status()
    entry: dict[str, Any] = response.json()[0]
    return list(entry.get("workers", []))


def describe(server: ServerProcess, model: str) -> dict[str, Any]:
    entry: dict[str, Any] = httpx.get(f"http://{server.management_url}/models/{model}", timeout=10).json()[0]
    return entry


async def infer(client: httpclient.InferenceServerClient, model: str, rows: int = 4) -> np.ndarray[Any, Any]:
    tensor = httpclient.InferInput("features", [rows, 16], "FP32")
    tensor.set_data_from_numpy(np.ones((rows, 16), np.float32))
    result = await client.infer(model, [tensor])
    output: np.ndarray[Any, Any] = result.as_numpy("probabilities")
    return output


def test_sigkill_of_a_worker_under_load_fails_no_request(server: ServerProcess) -> None:
    before = workers(server, "mlp")
    assert len(before) == 2
    victim = before[0]["pid"]

    async def scenario() -> list[Any]:
        client = httpclient.InferenceServerClient(server.http_url, conn_limit=32)
        try:

            async def killer() -> None:
                await asyncio.sleep(0.3)  # in the middle of the load
                os.kill(victim, signal.SIGKILL)

            results: list[Any] = await asyncio.gather(
                killer(), *(infer(client, "mlp") for _ in range(1500)), return_exceptions=True
            )
            return results[1:]
        finally:
            await client.close()

    started = time.monotonic()
    results = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert time.monotonic() - started > 0.3, "the load must still be running when the worker is killed"
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert all(r.shape == (4, 10) for r in results)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = workers(server, "mlp")
        if len(now) == 2 and all(w["status"] == "READY" for w in now):
            break
        time.sleep(0.05)
    pids = {w["pid"] for w in workers(server, "mlp")}
    assert len(pids) == 2 and victim not in pids  # restarted
    assert f"worker pid {victim} killed by signal 9 (SIGKILL)" in server.logs()  # logged with its cause


def test_crash_looping_model_is_unavailable_with_its_cause_while_another_serves(
    server: ServerProcess,
) -> None:
    ping = f"http://{server.http_url}/ping"  # TorchServe's health: Unhealthy once a model's workers are gone
    assert httpx.get(ping, timeout=10).json() == {"status": "Healthy"}
    killed: set[int] = set()
    deadline = time.monotonic() + 60
    entry = describe(server, "victim")
    # Kill each of the victim's workers as soon as it is ready, as a model that crashes its workers would.
    while time.monotonic() < deadline and entry["status"] == "READY":
        for worker in entry.get("workers", []):
            if worker["status"] == "READY" and worker["pid"] not in killed:
                killed.add(worker["pid"])
                os.kill(worker["pid"], signal.SIGKILL)
        time.sleep(0.02)
        entry = describe(server, "victim")
    assert entry["status"] == "UNAVAILABLE", entry
    assert "killed by signal 9 (SIGKILL)" in entry["reason"]
    assert "last stderr: modelport worker" in entry["reason"]  # the worker's own last lines
    assert len(killed) >= 5
    unhealthy = httpx.get(ping, timeout=10)
    assert unhealthy.status_code == 500 and unhealthy.json() == {"status": "Unhealthy"}

    async def scenario() -> tuple[Any, list[Any]]:
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            refused = await asyncio.gather(infer(client, "victim"), return_exceptions=True)
            served = await asyncio.gather(*(infer(client, "healthy") for _ in range(50)))
            return refused[0], served
        finally:
            await client.close()

    refused, served = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert isinstance(refused, InferenceServerException)
    assert refused.status() == "503"
    assert "victim" in refused.message() and "SIGKILL" in refused.message()
    assert len(served) == 50 and all(r.shape == (4, 10) for r in served)
    assert describe(server, "healthy")["status"] == "READY"
    assert_unavailable_on_both_protocols(server, "victim")


def assert_unavailable_on_both_protocols(server: ServerProcess, model: str) -> None:
    """The repository index and the model-ready endpoints of REST and gRPC agree: UNAVAILABLE, the cause."""
    rest = httpclient_sync.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        assert not rest.is_model_ready(model)
        assert not rest.is_model_ready(model, "1")
        assert rest.is_model_ready("healthy")
        rows = [r for r in rest.get_model_repository_index() if r["name"] == model]
        assert [(r["version"], r["state"]) for r in rows] == [("1", "UNAVAILABLE")], rows
        assert "SIGKILL" in rows[0]["reason"]
        assert not grpc.is_model_ready(model)
        assert grpc.is_model_ready("healthy")
        entries = [m for m in grpc.get_model_repository_index().models if m.name == model]
        assert [(m.version, m.state) for m in entries] == [("1", "UNAVAILABLE")]
        assert "SIGKILL" in entries[0].reason
        ready_only = httpx.post(f"http://{server.http_url}/v2/repository/index", json={"ready": True}).json()
        assert model not in {r["name"] for r in ready_only}
        with pytest.raises(InferenceServerException) as caught:
            grpc.infer(model, [_grpc_features()])
        assert caught.value.status() == "StatusCode.UNAVAILABLE"
        assert "SIGKILL" in caught.value.message()
    finally:
        rest.close()
        grpc.close()


def _grpc_features() -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("features", [4, 16], "FP32")
    tensor.set_data_from_numpy(np.ones((4, 16), np.float32))
    return tensor
