"""Thread instances: real ONNX Runtime sessions run in threads of this process, and the config key that
chooses them, checked in config.yaml and through a real server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from modelport.server.errors import InvalidInput, ModelNotReady, ModelportError
from modelport.server.model_config import ModelConfigError, parse_model_config
from modelport.server.workers.pool_settings import PoolSettings
from modelport.server.workers.thread_pool import ThreadPool
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import mlp_model, slow_model, write_model
from tests.helpers.server_process import start_server

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout)

    return asyncio.run(bounded())


def copy_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    return {name: np.array(value, copy=True) for name, value in outputs.items()}


def instance_threads(model: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"mp-{model}"]


@pytest.fixture(scope="module")
def slow_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("threads") / "slow.onnx"
    onnx.save(slow_model(), str(path))
    return path


def slow_parts(iterations: int) -> dict[str, list[np.ndarray[Any, Any]]]:
    return {"ITERATIONS": [np.array([iterations], dtype=np.int64)]}


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ({"kind": "fork"}, "instances.kind: Input should be 'thread' or 'process'"),
        ({"kinds": "thread"}, "instances.kinds: unknown key"),
        ("thread", "instances: Input should be a valid dictionary"),
    ],
)
def test_the_instances_key_is_checked_naming_it(instances: object, message: str) -> None:
    with pytest.raises(ModelConfigError, match=f"config.yaml: {message}"):
        parse_model_config({"instances": instances}, source="config.yaml")


def test_unset_kind_leaves_the_choice_to_the_server() -> None:
    assert parse_model_config({}, source="c").instances.kind is None
    assert parse_model_config({"instances": {"kind": "process"}}, source="c").instances.kind == "process"


def test_batches_on_two_instances_run_at_the_same_time(slow_path: Path) -> None:
    async def scenario() -> list[str]:
        pool = ThreadPool(
            PoolSettings(model="slow", version="1", path=str(slow_path), threads=1, max_workers=2)
        )
        pool.min_workers = 2
        await pool.start()
        try:
            runs = [asyncio.ensure_future(pool.run(slow_parts(400), [], copy_outputs)) for _ in range(2)]
            states: list[str] = []
            for _ in range(500):  # both BUSY at once: the loop stayed free while ONNX Runtime ran
                states = [w.state for w in pool.status()]
                if states == ["BUSY", "BUSY"]:
                    break
                await asyncio.sleep(0.005)
            results = await asyncio.gather(*runs)
            assert all(r[0]["OUTPUT0"].shape == (128, 128) for r in results)
            assert [w.batches for w in pool.status()] == [1, 1]
            return states
        finally:
            await pool.close(drain_timeout=5)

    assert run_async(scenario) == ["BUSY", "BUSY"]


def test_scaling_adds_and_removes_threads_each_with_its_session(slow_path: Path) -> None:
    async def scenario() -> None:
        pool = ThreadPool(PoolSettings(model="scaled", version="1", path=str(slow_path), threads=1))
        await pool.start()
        try:
            assert len(instance_threads("scaled")) == 1
            await pool.scale(min_workers=3, max_workers=3)
            assert pool.size == 3 and len(instance_threads("scaled")) == 3
            assert [(w.state, w.kind, w.pid) for w in pool.status()] == [("READY", "thread", 0)] * 3
            results = await asyncio.gather(*(pool.run(slow_parts(5), [], copy_outputs) for _ in range(6)))
            assert len(results) == 6 and sum(w.batches for w in pool.status()) == 6
            await pool.scale(min_workers=1, max_workers=1)
            assert pool.size == 1
            for _ in range(200):
                if len(instance_threads("scaled")) == 1:
                    break
                await asyncio.sleep(0.01)
            assert len(instance_threads("scaled")) == 1
            with pytest.raises(InvalidInput, match=r"min \(2\) <= max \(1\)"):
                await pool.scale(min_workers=2, max_workers=1)
        finally:
            await pool.close(drain_timeout=1)

    run_async(scenario)


def test_close_ends_a_run_past_the_drain_timeout_and_releases_every_session(slow_path: Path) -> None:
    async def scenario() -> None:
        pool = ThreadPool(PoolSettings(model="closing", version="1", path=str(slow_path), threads=1))
        await pool.start()
        running = asyncio.ensure_future(pool.run(slow_parts(10**7), [], copy_outputs))  # minutes of work
        while [w.state for w in pool.status()] != ["BUSY"]:
            await asyncio.sleep(0.005)
        started = time.monotonic()
        await pool.close(drain_timeout=0.1)
        assert time.monotonic() - started < 5  # ONNX Runtime's terminate flag ended the run
        with pytest.raises(ModelportError, match="model 'closing'"):
            await running
        assert pool.status() == [] and pool.size == 0
        with pytest.raises(ModelNotReady, match="unloading"):
            await pool.run(slow_parts(1), [], copy_outputs)
        for _ in range(200):
            if not instance_threads("closing"):
                break
            await asyncio.sleep(0.01)
        assert instance_threads("closing") == []

    run_async(scenario)


def test_a_load_failure_names_the_model_and_leaves_no_thread(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")

    async def scenario() -> None:
        await ThreadPool(PoolSettings(model="broken_t", version="1", path=str(broken))).start()

    with pytest.raises(
        ModelportError, match=r"model 'broken_t' version 1: instance failed to load.*not a valid"
    ):
        run_async(scenario)
    time.sleep(0.05)
    assert instance_threads("broken_t") == []


def test_each_model_runs_the_kind_its_config_or_the_server_names(tmp_path: Path) -> None:
    config = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 0}}
    write_model(tmp_path, "default", mlp_model(), config=config)
    write_model(tmp_path, "isolated", mlp_model(), config={**config, "instances": {"kind": "process"}})
    with start_server(tmp_path, "--instance-kind", "thread") as server:
        described = {
            name: httpx.get(f"http://{server.management_url}/models/{name}", timeout=10).json()[0]
            for name in ("default", "isolated")
        }
        assert [(w["kind"], w["pid"]) for w in described["default"]["workers"]] == [("thread", 0)]
        [worker] = described["isolated"]["workers"]
        assert worker["kind"] == "process" and worker["pid"] not in (0, server.process.pid)
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for name in ("default", "isolated"):
            tensor = grpcclient.InferInput("features", [2, 16], "FP32")
            tensor.set_data_from_numpy(np.ones((2, 16), np.float32))
            result = client.infer(name, [tensor]).as_numpy("probabilities")
            assert result is not None and result.shape == (2, 10)
            # A shape the graph refuses: the same client error from either kind, naming the model.
            wrong = grpcclient.InferInput("features", [2, 5], "FP32")
            wrong.set_data_from_numpy(np.ones((2, 5), np.float32))
            with pytest.raises(InferenceServerException) as refused:
                client.infer(name, [wrong])
            assert refused.value.status() == "StatusCode.INVALID_ARGUMENT", refused.value
            assert "features" in str(refused.value.message()), refused.value
        stats = client.get_inference_statistics("default", as_json=True)["model_stats"][0]
        assert int(stats["inference_count"]) == 2 and int(stats["execution_count"]) == 1
        client.close()
