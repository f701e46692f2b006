"""The response cache (``response_cache: {enable: true}`` and ``--cache-size``): a repeated request is
answered from the cache, byte for byte as computed, without reaching the batcher; hits and misses are in
Triton's statistics fields (REST and gRPC) and in Prometheus; entries are keyed by everything that decides
the answer, evicted by size (least recently used first) and dropped with their version; a model with random
operators cannot enable it, and a model that enables it on a server without a cache serves uncached.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.response_cache import CacheUsage, ResponseCache
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import add_sub_model, identity_model, slow_iterations, slow_model, write_model
from tests.helpers.scrape import scrape
from tests.helpers.server_process import ServerProcess, start_server

CACHED = {"response_cache": {"enable": True}}
CACHE_SIZE = 1 << 20


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("response-cache")
    write_model(root, "simple", add_sub_model("FP32", (-1, 16)), config=CACHED)
    write_model(root, "uncached", add_sub_model("FP32", (-1, 16)))
    write_model(root, "any_shape", identity_model("FP32", (-1, -1)), config=CACHED)
    write_model(root, "strings", identity_model("BYTES", (-1, 2)), config=CACHED)
    write_model(root, "slow", slow_model(), config={**CACHED, "workers": {"min": 1, "max": 1}})
    noise = helper.make_graph(
        [helper.make_node("RandomNormalLike", ["x"], ["noise"], name="jitter")],
        "noise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", 4])],
    )
    write_model(root, "random", helper.make_model(noise, opset_imports=[helper.make_opsetid("", 17)]))
    (root / "random" / "config.yaml").write_text("response_cache: {enable: true}\n")
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with start_server(repository, "--cache-size", str(CACHE_SIZE)) as server:
        yield server


def _http_inputs(first: np.ndarray[Any, Any], second: np.ndarray[Any, Any]) -> list[httpclient.InferInput]:
    inputs = [httpclient.InferInput(n, list(first.shape), "FP32") for n in ("INPUT0", "INPUT1")]
    inputs[0].set_data_from_numpy(first)
    inputs[1].set_data_from_numpy(second)
    return inputs


def _grpc_inputs(first: np.ndarray[Any, Any], second: np.ndarray[Any, Any]) -> list[grpcclient.InferInput]:
    inputs = [grpcclient.InferInput(n, list(first.shape), "FP32") for n in ("INPUT0", "INPUT1")]
    inputs[0].set_data_from_numpy(first)
    inputs[1].set_data_from_numpy(second)
    return inputs


def _inference_stats(server: ServerProcess, model: str) -> dict[str, Any]:
    response = httpx.get(f"http://{server.http_url}/v2/models/{model}/stats", timeout=10)
    stats: dict[str, Any] = response.json()["model_stats"][0]
    return stats


def _rest_infer(server: ServerProcess, model: str, body: dict[str, Any]) -> bytes:
    response = httpx.post(f"http://{server.http_url}/v2/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def test_a_repeated_request_is_answered_byte_for_byte_from_the_cache(server: ServerProcess) -> None:
    rng = np.random.default_rng(7)
    a, b = (rng.standard_normal((3, 16)).astype(np.float32) for _ in range(2))
    before = _inference_stats(server, "simple")
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        computed = http.infer("simple", _http_inputs(a, b), request_id="r1")
        cached = http.infer("simple", _http_inputs(a, b), request_id="r1")
        reference = http.infer("uncached", _http_inputs(a, b), request_id="r1")
        for name in ("OUTPUT0", "OUTPUT1"):
            assert cached.as_numpy(name).tobytes() == computed.as_numpy(name).tobytes()
            assert cached.as_numpy(name).tobytes() == reference.as_numpy(name).tobytes()
        assert cached.get_response() == computed.get_response()
        grpc_cached = grpc.infer("simple", _grpc_inputs(a, b), request_id="r1")
        grpc_reference = grpc.infer("uncached", _grpc_inputs(a, b), request_id="r1")
        cached_message, reference_message = grpc_cached.get_response(), grpc_reference.get_response()
        assert list(cached_message.raw_output_contents) == list(reference_message.raw_output_contents)
        assert [o.shape for o in cached_message.outputs] == [o.shape for o in reference_message.outputs]
        body = {
            "id": "j",
            "inputs": [
                {"name": n, "shape": [3, 16], "datatype": "FP32", "data": x.ravel().tolist()}
                for n, x in (("INPUT0", a), ("INPUT1", b))
            ],
        }
        assert _rest_infer(server, "simple", body) == _rest_infer(server, "uncached", body).replace(
            b'"model_name":"uncached"', b'"model_name":"simple"'
        )
        stats = _inference_stats(server, "simple")
        grpc_stats = grpc.get_inference_statistics("simple", as_json=True)["model_stats"][0]
    finally:
        http.close()
        grpc.close()
    hits = stats["inference_stats"]["cache_hit"]["count"] - before["inference_stats"]["cache_hit"]["count"]
    misses = (
        stats["inference_stats"]["cache_miss"]["count"] - before["inference_stats"]["cache_miss"]["count"]
    )
    assert (hits, misses) == (3, 1)  # http, grpc and the JSON request hit; the first one computed
    assert (
        stats["inference_stats"]["cache_hit"]["ns"] > 0 and stats["inference_stats"]["cache_miss"]["ns"] > 0
    )
    assert stats["inference_count"] - before["inference_count"] == 3  # the computed request's rows only
    assert stats["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"] == 4
    assert grpc_stats["inference_stats"]["cache_hit"]["count"] == str(
        stats["inference_stats"]["cache_hit"]["count"]
    )
    assert grpc_stats["inference_stats"]["cache_miss"]["count"] == str(
        stats["inference_stats"]["cache_miss"]["count"]
    )
    metrics = scrape(server.metrics_url)
    labels = {"model": "simple", "version": "1"}
    assert (
        metrics.value("modelport_cache_hits_total", **labels)
        == stats["inference_stats"]["cache_hit"]["count"]
    )
    assert (
        metrics.value("modelport_cache_misses_total", **labels)
        == stats["inference_stats"]["cache_miss"]["count"]
    )
    assert metrics.value("modelport_cache_capacity_bytes") == CACHE_SIZE
    assert 0 < metrics.value("modelport_cache_used_bytes") <= CACHE_SIZE
    assert metrics.value("modelport_cache_entries") >= 1


def test_anything_that_changes_the_answer_is_a_miss(server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    try:
        # Same bytes, another shape: each answer has its own shape.
        data = np.arange(4, dtype=np.float32)
        for shape in ([1, 4], [2, 2], [4, 1], [1, 4]):
            feed = httpclient.InferInput("INPUT0", shape, "FP32")
            feed.set_data_from_numpy(data.reshape(shape))
            assert http.infer("any_shape", [feed]).as_numpy("OUTPUT0").shape == tuple(shape)
        stats = _inference_stats(server, "any_shape")["inference_stats"]
        assert (stats["cache_miss"]["count"], stats["cache_hit"]["count"]) == (3, 1)
        # Other requested outputs, other values.
        a = np.ones((1, 16), np.float32)
        for output, second, expected in (("OUTPUT0", a, 2.0), ("OUTPUT1", a, 0.0), ("OUTPUT0", 2 * a, 3.0)):
            wanted = [httpclient.InferRequestedOutput(output)]
            result = http.infer("simple", _http_inputs(a, second), outputs=wanted, request_id="c")
            assert result.as_numpy(output).tolist() == [[expected] * 16]
            assert result.as_numpy("OUTPUT1" if output == "OUTPUT0" else "OUTPUT0") is None
        # BYTES: the elements' bytes decide, not only their count.
        for words in ([b"a", b"bc"], [b"ab", b"c"], [b"a", b"bc"]):
            feed = httpclient.InferInput("INPUT0", [1, 2], "BYTES")
            feed.set_data_from_numpy(np.array([words], dtype=np.object_))
            assert http.infer("strings", [feed]).as_numpy("OUTPUT0").tolist() == [words]
        stats = _inference_stats(server, "strings")["inference_stats"]
        assert (stats["cache_miss"]["count"], stats["cache_hit"]["count"]) == (2, 1)
    finally:
        http.close()


def test_a_hit_does_not_wait_for_the_batcher(server: ServerProcess) -> None:
    """The slow model's one instance is busy with a long request; a cached answer comes at once."""

    def run(iterations: int) -> float:
        # A client per call: tritonclient's HTTP client is not to be shared between threads.
        client = httpclient.InferenceServerClient(server.http_url, network_timeout=120)
        feed = httpclient.InferInput("ITERATIONS", [1], "INT64")
        feed.set_data_from_numpy(np.array([iterations], dtype=np.int64))
        try:
            started = time.monotonic()
            client.infer("slow", [feed])
            return time.monotonic() - started
        finally:
            client.close()

    long = slow_iterations(run, 1.5)
    run(1)  # now cached
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        busy = pool.submit(run, long)
        time.sleep(0.3)  # the long request holds the instance
        hit = run(1)
        assert not busy.done()
        took = busy.result(timeout=60)
    assert hit < 0.5 * took, f"cached answer took {hit:.3f} s while the instance was busy for {took:.3f} s"
    stats = _inference_stats(server, "slow")["inference_stats"]
    assert stats["cache_hit"]["count"] == 1


def test_a_random_model_cannot_enable_the_cache(server: ServerProcess) -> None:
    rows = httpx.post(f"http://{server.http_url}/v2/repository/index", timeout=10).json()
    [row] = [r for r in rows if r["name"] == "random"]
    assert row["state"] == "UNAVAILABLE"
    assert "response_cache.enable" in row["reason"] and "non-deterministic" in row["reason"]
    assert "RandomNormalLike (node 'jitter')" in row["reason"]
    assert httpx.get(f"http://{server.http_url}/v2/models/simple/config").json()["response_cache"] == {
        "enable": True
    }


def test_entries_are_evicted_by_size_least_recently_used_first(tmp_path: Path) -> None:
    write_model(tmp_path, "simple", add_sub_model("FP32", (-1, 16)), config=CACHED)
    # One answer: two outputs of 64 rows x 16 FP32 = 8 KiB plus overheads; the cache holds three.
    with start_server(tmp_path, "--cache-size", str(3 * 8192 + 3 * 600)) as server:
        http = httpclient.InferenceServerClient(server.http_url)
        try:
            requests = [np.full((64, 16), i, np.float32) for i in range(5)]
            for values in requests:
                http.infer("simple", _http_inputs(values, values))
            misses = _inference_stats(server, "simple")["inference_stats"]["cache_miss"]["count"]
            http.infer("simple", _http_inputs(requests[4], requests[4]))  # the newest: still there
            http.infer("simple", _http_inputs(requests[0], requests[0]))  # the oldest: evicted
            stats = _inference_stats(server, "simple")["inference_stats"]
        finally:
            http.close()
        assert stats["cache_hit"]["count"] == 1 and stats["cache_miss"]["count"] == misses + 1 == 6
        metrics = scrape(server.metrics_url)
        assert metrics.value("modelport_cache_evictions_total") >= 2
        assert metrics.value("modelport_cache_used_bytes") <= metrics.value("modelport_cache_capacity_bytes")
        assert metrics.value("modelport_cache_entries") == 3


def test_unloading_a_version_drops_its_entries(tmp_path: Path) -> None:
    write_model(tmp_path, "simple", add_sub_model("FP32", (-1, 16)), config=CACHED)
    with start_server(tmp_path, "--cache-size", str(CACHE_SIZE), "--model-control", "explicit") as server:
        http = httpclient.InferenceServerClient(server.http_url)
        a = np.ones((2, 16), np.float32)
        try:
            http.load_model("simple")
            http.infer("simple", _http_inputs(a, a))
            http.infer("simple", _http_inputs(a, a))
            assert _inference_stats(server, "simple")["inference_stats"]["cache_hit"]["count"] == 1
            assert scrape(server.metrics_url).value("modelport_cache_entries") == 1
            http.unload_model("simple")
            metrics = scrape(server.metrics_url)
            assert (
                metrics.value("modelport_cache_entries") == 0
                and metrics.value("modelport_cache_used_bytes") == 0
            )
            http.load_model("simple")
            http.infer("simple", _http_inputs(a, a))
            stats = _inference_stats(server, "simple")["inference_stats"]
        finally:
            http.close()
        assert (stats["cache_hit"]["count"], stats["cache_miss"]["count"]) == (0, 1)


def test_a_model_enabling_the_cache_on_a_server_without_one_serves_uncached(tmp_path: Path) -> None:
    write_model(tmp_path, "simple", add_sub_model("FP32", (-1, 16)), config=CACHED)
    with start_server(tmp_path) as server:
        http = httpclient.InferenceServerClient(server.http_url)
        a = np.ones((1, 16), np.float32)
        try:
            for _ in range(2):
                http.infer("simple", _http_inputs(a, a))
        finally:
            http.close()
        stats = _inference_stats(server, "simple")["inference_stats"]
        assert stats["cache_hit"]["count"] == stats["cache_miss"]["count"] == 0
        assert stats["success"]["count"] == 2
        assert (
            "response_cache.enable is set but the server has no response cache" in server.log_path.read_text()
        )


def test_a_triton_config_enables_the_cache_and_a_bad_cache_size_is_refused(tmp_path: Path) -> None:
    write_model(tmp_path, "simple", add_sub_model("FP32", (-1, 16)))
    with start_server(tmp_path, "--cache-size", str(CACHE_SIZE), "--model-control", "explicit") as server:
        http = httpclient.InferenceServerClient(server.http_url)
        a = np.ones((1, 16), np.float32)
        try:
            http.load_model("simple", config='{"max_batch_size": 8, "response_cache": {"enable": true}}')
            for _ in range(2):
                http.infer("simple", _http_inputs(a, a))
            with pytest.raises(InferenceServerException) as refused:
                http.load_model("simple", config='{"max_batch_size": 8, "response_cache": {"enabled": true}}')
            assert "response_cache.enabled" in refused.value.message() and "enable" in refused.value.message()
        finally:
            http.close()
        stats = _inference_stats(server, "simple")["inference_stats"]
        assert (stats["cache_hit"]["count"], stats["cache_miss"]["count"]) == (1, 1)
    result = subprocess.run(
        [sys.executable, "-m", "modelport.server", "--repository", str(tmp_path), "--cache-size", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "cache" in result.stderr.lower()


def test_the_key_tells_apart_what_the_wire_tells_apart() -> None:
    """Same bytes under another datatype, shape, input name or output order are other keys."""
    share = ResponseCache(1 << 20).for_version("m", 1)
    raw = np.arange(4, dtype=np.int32)
    keys = {
        share.key({"x": raw}, ["y"]),
        share.key({"x": raw.view(np.float32)}, ["y"]),
        share.key({"x": raw.view(np.uint32)}, ["y"]),
        share.key({"x": raw.reshape(2, 2)}, ["y"]),
        share.key({"z": raw}, ["y"]),
        share.key({"x": raw}, ["y", "w"]),
        share.key({"x": raw}, ["w", "y"]),
        share.key({"x": np.array([b"ab", b"c"], dtype=np.object_)}, ["y"]),
        share.key({"x": np.array([b"a", b"bc"], dtype=np.object_)}, ["y"]),
        ResponseCache(1 << 20).for_version("m", 1).key({"x": raw}, ["y"]),  # another load of the version
    }
    assert len(keys) == 10
    assert share.key({"x": raw.copy()}, ["y"]) == share.key({"x": raw}, ["y"])


def test_the_store_evicts_least_recently_used_and_never_holds_more_than_its_size() -> None:
    cache = ResponseCache(3 * 4096)
    share = cache.for_version("m", 1)
    answers = {i: {"y": np.full(768, i, np.float32)} for i in range(4)}  # ~3.4 KiB each with overheads
    for i in range(3):
        share.put(bytes([i]), answers[i])
    assert share.get(bytes([0])) is not None  # 0 is now the most recently used
    share.put(bytes([3]), answers[3])  # evicts 1, the least recently used
    assert share.get(bytes([1])) is None and share.get(bytes([0])) is not None
    usage = cache.usage()
    assert usage.entries == 3 and usage.evictions == 1 and usage.used_bytes <= usage.capacity_bytes
    cached = share.get(bytes([3]))
    assert cached is not None and not cached["y"].flags.writeable  # no encoder can change a cached answer
    share.put(b"huge", {"y": np.zeros(4096, np.float32)})  # larger than the whole cache: not stored
    assert share.get(b"huge") is None and cache.usage().entries == 3
    share.clear()
    share.put(bytes([5]), answers[0])  # a cleared (unloaded) version stores nothing more
    assert cache.usage() == CacheUsage(3 * 4096, 0, 0, 1)
