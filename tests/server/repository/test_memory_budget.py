"""``--memory-budget`` and ``--load-on-demand`` through a real server: a repository of more models than the
budget holds, traffic cycling through them with tritonclient, every answer checked against numpy, the
measured memory (the ``modelport_model_memory_bytes`` series) under the budget at every step, and the
evictions counted, in the metrics and in the repository index."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.cgroup_limits import budget_bytes, memory_limit_bytes
from modelport.server.repository.memory_budget import EVICTED_REASON
from onnx import numpy_helper
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import matmul_model, slow_model, write_model
from tests.helpers.scrape import scrape
from tests.helpers.server_process import ServerExited, start_server

FEATURES = 2048
MODELS = 4
MODEL_BYTES = FEATURES * 4096 * 4  # about 33.5 MB of weights each (outputs 4096 + 8 k)
BUDGET = int(2.6 * MODEL_BYTES)  # two fit, the third evicts
WORKER_BYTES = 25 * 2**20  # what a worker process adds to its version's PSS (interpreter, ONNX Runtime)


def _repository(root: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Write ``MODELS`` matmul models of distinct output widths; returns each one's weight."""
    weights = {}
    for k in range(MODELS):
        model: onnx.ModelProto = matmul_model(FEATURES, 4096 + 8 * k)
        write_model(root, f"big{k}", model, config={"max_batch_size": 4})
        weights[f"big{k}"] = numpy_helper.to_array(model.graph.initializer[0])
    return weights


@contextlib.contextmanager
def _client(url: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url, network_timeout=120)
    try:
        yield client
    finally:
        client.close()


def _infer(client: httpclient.InferenceServerClient, name: str, features: np.ndarray[Any, Any]) -> Any:
    tensor = httpclient.InferInput("INPUT0", list(features.shape), "FP32")
    tensor.set_data_from_numpy(features)
    return client.infer(name, [tensor]).as_numpy("OUTPUT0")


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_traffic_cycling_through_more_models_than_fit(tmp_path: Path, kind: str) -> None:
    weights = _repository(tmp_path)
    budget = BUDGET if kind == "thread" else int(2.6 * (MODEL_BYTES + WORKER_BYTES))
    args = ["--model-control", "explicit", "--load-on-demand", "--memory-budget", str(budget)]
    with start_server(tmp_path, *args, "--instance-kind", kind) as server, _client(server.http_url) as client:
        assert client.is_server_ready()  # nothing loaded yet: loads happen on demand
        features = np.random.default_rng(0).standard_normal((2, FEATURES)).astype(np.float32)
        for step, k in enumerate([0, 1, 2, 3, 0, 2, 1, 3]):
            name = f"big{k}"
            answer = _infer(client, name, features)
            np.testing.assert_allclose(answer, features @ weights[name], rtol=1e-4, atol=1e-3)
            metrics = scrape(server.metrics_url)
            held = metrics.value("modelport_model_memory_bytes")
            assert 0 < held <= budget, f"step {step}: {held} bytes held, budget {budget}"
        evictions = metrics.value("modelport_model_evictions_total")
        index = client.get_model_repository_index()
        reasons = {row["name"]: row.get("reason", "") for row in index if row.get("state") != "READY"}
        assert EVICTED_REASON in reasons.values(), index
        ready = [row["name"] for row in index if row.get("state") == "READY"]
        # Two versions fit, or three where a worker's PSS is smaller than WORKER_BYTES (PSS splits the shared
        # library pages among every process mapping them, so a machine running other servers lowers it). LRU
        # over 0 1 2 3 0 2 1 3 then evicts 6 or 4 times; the budget assertion above holds either way.
        assert len(ready) in ({2, 3} if kind == "process" else {2}), index
        assert evictions >= {2: 6, 3: 4}[len(ready)]
        described = httpx.get(f"http://{server.management_url}/models/{ready[0]}", timeout=10).json()
        assert [v["memoryBytes"] for v in described] == [
            metrics.value("modelport_model_memory_bytes", model=ready[0])
        ]


def test_concurrent_requests_share_one_load_and_unknown_models_are_refused(tmp_path: Path) -> None:
    weights = _repository(tmp_path)
    args = ("--model-control", "explicit", "--load-on-demand", "--memory-budget", str(BUDGET))
    with start_server(tmp_path, *args) as server, _client(server.http_url) as client:
        features = np.ones((1, FEATURES), np.float32)
        with (
            grpcclient.InferenceServerClient(server.grpc_url) as grpc,
            pytest.raises(InferenceServerException) as unknown,
        ):
            grpc.infer("nope", [grpcclient.InferInput("INPUT0", [1, FEATURES], "FP32")])
        assert "unknown model: 'nope'" in str(unknown.value)  # at once, as Triton answers it (no load)

        late = httpclient.InferInput("INPUT0", [1, FEATURES], "FP32")
        late.set_data_from_numpy(features)
        with pytest.raises(InferenceServerException) as timed_out:
            client.infer("big0", [late], timeout=1)  # 1 us: ends before the on-demand load does
        assert timed_out.value.status() == "504", timed_out.value
        assert "loading on demand" in str(timed_out.value)
        np.testing.assert_allclose(
            _infer(client, "big0", features), features @ weights["big0"], rtol=1e-4, atol=1e-3
        )

        def one(_: int) -> Any:
            with _client(server.http_url) as own:
                return _infer(own, "big1", features)

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(one, range(6)))
        for answer in answers:
            np.testing.assert_allclose(answer, features @ weights["big1"], rtol=1e-4, atol=1e-3)
        metrics = scrape(server.metrics_url)
        assert metrics.value("modelport_model_loads_total", model="big1") == 1


def test_a_model_larger_than_the_budget_fails_with_the_numbers(tmp_path: Path) -> None:
    _repository(tmp_path)
    args = ("--model-control", "explicit", "--memory-budget", str(MODEL_BYTES // 2))
    with start_server(tmp_path, *args) as server, _client(server.http_url) as client:
        with pytest.raises(InferenceServerException) as refused:
            client.load_model("big0")
        assert "more than the whole --memory-budget" in str(refused.value), refused.value


def test_a_fraction_is_of_the_cgroup_memory_limit(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("1000000000\n")
    assert budget_bytes(0.5, tmp_path) == 500_000_000
    assert budget_bytes(123456789.0, tmp_path) == 123456789
    (tmp_path / "memory.max").write_text("max\n")
    with pytest.raises(ValueError, match="give the budget in bytes"):
        budget_bytes(0.8, tmp_path)


@pytest.mark.skipif(memory_limit_bytes() is not None, reason="this machine's cgroup has a memory limit")
def test_a_fraction_without_a_cgroup_limit_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ServerExited) as refused, start_server(tmp_path, "--memory-budget", "0.8"):
        pass
    assert "give the budget in bytes" in str(refused.value)


def test_a_version_with_a_request_in_flight_is_not_evicted(tmp_path: Path) -> None:
    write_model(tmp_path, "slow", slow_model(1448), config={"max_batch_size": 0})  # 17 MB of files
    _repository(tmp_path)
    # Process workers (PSS about 40 MB for slow, 55 MB for big0): either fits alone, not both.
    args = ("--model-control", "explicit", "--memory-budget", str(80 * 2**20), "--instance-kind", "process")
    with start_server(tmp_path, *args) as server, _client(server.http_url) as client:
        client.load_model("slow")

        def slow(iterations: int) -> Any:
            tensor = httpclient.InferInput("ITERATIONS", [1], "INT64")
            tensor.set_data_from_numpy(np.array([iterations], np.int64))
            with _client(server.http_url) as own:
                return own.infer("slow", [tensor])

        started = time.monotonic()
        slow(8)  # each iteration is a 1448 x 1448 matmul: tens of ms
        iterations = max(8, int(8 * 2.0 / (time.monotonic() - started)))  # about 2 s
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(slow, iterations)
            time.sleep(0.5)
            with pytest.raises(InferenceServerException) as refused:
                client.load_model("big0")
            assert "busy" in str(refused.value), refused.value
            running.result()
        client.load_model("big0")  # idle now: evicted to make room
        index = {row["name"]: row for row in client.get_model_repository_index()}
        assert index["slow"]["reason"] == EVICTED_REASON
        assert index["big0"]["state"] == "READY"
