"""Dynamic batching through the real server and the real clients (tritonclient HTTP and gRPC)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc.aio as grpcclient
import tritonclient.http.aio as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import matmul_chain_model, mlp_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

REQUESTS = 300


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch-repo")
    write_model(
        root,
        "mlp",
        mlp_model(),
        config={
            "max_batch_size": 32,
            "dynamic_batching": {"max_queue_delay_us": 2000, "max_queue_size": 1024},
            "workers": {"min": 2, "max": 2, "threads": 1},
        },
    )
    write_model(
        root,
        "slow",
        matmul_chain_model(),
        config={
            "max_batch_size": 64,
            "dynamic_batching": {"max_queue_delay_us": 0, "max_queue_size": 2},
            "workers": {"min": 1, "max": 1, "threads": 1},
        },
    )
    write_model(root, "bare", mlp_model(seed=4))  # no config.yaml: batch support read from the graph
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with start_server(repository) as handle:
        yield handle


def random_inputs(seed: int) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, 9)), 16)).astype(np.float32) for _ in range(REQUESTS)]


def expected_outputs(repository: Path, inputs: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
    session = ort.InferenceSession(
        str(repository / "mlp" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return [session.run(None, {"features": x})[0] for x in inputs]


def open_client(server: ServerProcess, client_module: Any) -> Any:
    """An aio client of ``client_module`` (``tritonclient.http.aio`` or ``.grpc.aio``) on ``server``."""
    if client_module is httpclient:
        return httpclient.InferenceServerClient(server.http_url, conn_limit=64)
    return grpcclient.InferenceServerClient(server.grpc_url)


@pytest.mark.parametrize("client_module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_hundreds_of_concurrent_requests_match_onnx_runtime(
    server: ServerProcess, repository: Path, client_module: Any
) -> None:
    inputs = random_inputs(11)
    before = server_stats(server)

    async def scenario() -> list[np.ndarray[Any, Any]]:
        client = open_client(server, client_module)
        try:

            async def one(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
                tensor = client_module.InferInput("features", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)  # binary (raw) data in both protocols
                result = await client.infer("mlp", [tensor])
                output: np.ndarray[Any, Any] = result.as_numpy("probabilities")
                return output

            return await asyncio.gather(*(one(x) for x in inputs))
        finally:
            await client.close()

    results = asyncio.run(asyncio.wait_for(scenario(), 120))
    for got, want in zip(results, expected_outputs(repository, inputs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    after = server_stats(server)
    executions, rows = (after[key] - before[key] for key in ("execution_count", "inference_count"))
    assert executions < rows  # rows of this protocol's requests really shared batches


def server_stats(server: ServerProcess, model: str = "mlp") -> dict[str, int]:
    import httpx

    body = httpx.get(f"http://{server.http_url}/v2/models/{model}/stats", timeout=10).json()
    entry = body["model_stats"][0]
    return {
        "inference_count": int(entry["inference_count"]),
        "execution_count": int(entry["execution_count"]),
    }


def slow_request(client_module: Any) -> Any:
    tensor = client_module.InferInput("x", [64, 1024], "FP32")
    tensor.set_data_from_numpy(np.ones((64, 1024), np.float32))
    return tensor


async def _flood(infer: Any, count: int) -> list[Any]:
    return await asyncio.gather(*(infer() for _ in range(count)), return_exceptions=True)


def test_full_queue_is_http_503_naming_the_queue_size(server: ServerProcess) -> None:
    async def scenario() -> list[Any]:
        client = httpclient.InferenceServerClient(server.http_url, conn_limit=32)
        try:
            return await _flood(lambda: client.infer("slow", [slow_request(httpclient)]), 12)
        finally:
            await client.close()

    results = asyncio.run(asyncio.wait_for(scenario(), 120))
    refused = [r for r in results if isinstance(r, InferenceServerException)]
    assert refused, "12 requests at once against a queue of 2 behind one busy worker: some must be refused"
    assert all(r.status() == "503" for r in refused)
    assert all("queue is full" in r.message() and "max_queue_size 2" in r.message() for r in refused)
    assert len(refused) < len(results)  # and the others were served


def test_full_queue_is_grpc_unavailable(server: ServerProcess) -> None:

    async def scenario() -> list[Any]:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            return await _flood(lambda: client.infer("slow", [slow_request(grpcclient)]), 12)
        finally:
            await client.close()

    results = asyncio.run(asyncio.wait_for(scenario(), 120))
    refused = [r for r in results if isinstance(r, InferenceServerException)]
    assert refused
    assert all(r.status() == "StatusCode.UNAVAILABLE" for r in refused)
    assert all("queue is full" in r.message() for r in refused)


async def wait_until_running(server: ServerProcess, model: str) -> None:
    """Until the management API shows a batch of ``model`` running (bounded)."""
    import httpx

    async with httpx.AsyncClient(base_url=f"http://{server.management_url}", timeout=10) as management:
        for _ in range(500):
            entry = (await management.get(f"/models/{model}")).json()[0]
            if entry["jobQueueStatus"]["batchesInFlight"] >= 1:
                return
            await asyncio.sleep(0.002)
    raise AssertionError(f"no batch of {model} started")


def test_request_timeout_drops_a_queued_request(server: ServerProcess) -> None:
    async def scenario() -> tuple[Any, Any]:
        client = httpclient.InferenceServerClient(server.http_url, conn_limit=8)
        try:
            # Two ~50 ms batches: one running, one queued (the queue holds 2).
            busy = [asyncio.ensure_future(client.infer("slow", [slow_request(httpclient)])) for _ in range(2)]
            await wait_until_running(server, "slow")
            # Queued behind them with a 1 ms timeout (the protocol's `timeout` parameter, microseconds).
            late = await asyncio.gather(
                client.infer("slow", [slow_request(httpclient)], timeout=1000), return_exceptions=True
            )
            return (await asyncio.gather(*busy))[0], late[0]
        finally:
            await client.close()

    busy, late = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert busy.as_numpy("y").shape == (64, 1024)
    assert isinstance(late, InferenceServerException)
    assert late.status() == "504"
    assert "timeout expired" in late.message()


def test_a_model_without_config_gets_dynamic_batching_as_in_triton(server: ServerProcess) -> None:
    import httpx

    entry = httpx.get(f"http://{server.management_url}/models/bare", timeout=10).json()[0]
    assert entry["config"]["dynamic_batching"]["enabled"] is True
    # Triton's /config tells the same (perf_analyzer and model_analyzer read it there).
    triton = httpx.get(f"http://{server.http_url}/v2/models/bare/config", timeout=10).json()
    assert (
        triton["dynamic_batching"]["max_queue_delay_microseconds"]
        == entry["config"]["dynamic_batching"]["max_queue_delay_us"]
    )
    x = np.ones((2, 16), np.float32)

    async def scenario() -> None:
        client = httpclient.InferenceServerClient(server.http_url, conn_limit=32)
        try:

            async def one() -> None:
                tensor = httpclient.InferInput("features", [2, 16], "FP32")
                tensor.set_data_from_numpy(x)
                await client.infer("bare", [tensor])

            await asyncio.gather(*(one() for _ in range(200)))
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
    stats = server_stats(server, "bare")
    assert stats["inference_count"] == 400
    assert stats["execution_count"] < 200
