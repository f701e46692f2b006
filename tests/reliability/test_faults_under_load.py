"""Faults under load over the protocols the existing tests leave out: no request lost or failed.

``tests/server/workers/test_crash_server.py`` kills a worker under REST load, ``tests/server/repository/
test_reload.py`` reloads under REST load and ``tests/server/test_shutdown.py`` drains one request. Here: a
worker SIGKILLed under gRPC load, SIGTERM with a queue of requests in flight on both protocols, and reloads
(poll and explicit) under gRPC and REST load at once. Each lasts a few seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcclient_aio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpclient_aio

from tests.helpers.onnx_models import identity_model, matmul_chain_model, mlp_model, write_config, write_model
from tests.helpers.server_process import start_server
from tests.helpers.waiting import wait_for
from tests.server.workers.test_crash_server import workers

_TWO_WORKERS = {"min": 2, "max": 2, "threads": 1}


class _Load(threading.Thread):
    """Infers on the identity model ``model`` in a loop until stopped; counts answers per version and keeps
    every failure."""

    def __init__(self, model: str) -> None:
        super().__init__(daemon=True)
        self.model = model
        self.data = np.arange(8, dtype=np.float32).reshape(2, 4)
        self._halt = threading.Event()
        self.versions: dict[str, int] = {}
        self.failures: list[str] = []

    def infer_once(self) -> str:
        """One request; the version that answered."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def answered(self) -> int:
        return sum(self.versions.values())

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                version = self.infer_once()
                self.versions[version] = self.versions.get(version, 0) + 1
            except Exception as error:
                self.failures.append(repr(error))
        self.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


class GrpcLoad(_Load):
    def __init__(self, url: str, model: str) -> None:
        super().__init__(model)
        self._client = grpcclient.InferenceServerClient(url)
        self._input = grpcclient.InferInput("INPUT0", [2, 4], "FP32")
        self._input.set_data_from_numpy(self.data)

    def infer_once(self) -> str:
        result = self._client.infer(self.model, [self._input], client_timeout=30)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), self.data)
        return str(result.get_response().model_version)

    def close(self) -> None:
        self._client.close()


class RestLoad(_Load):
    def __init__(self, url: str, model: str) -> None:
        super().__init__(model)
        self._client = httpclient.InferenceServerClient(url, network_timeout=30.0)
        self._input = httpclient.InferInput("INPUT0", [2, 4], "FP32")
        self._input.set_data_from_numpy(self.data)

    def infer_once(self) -> str:
        result = self._client.infer(self.model, [self._input])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), self.data)
        return str(result.get_response()["model_version"])

    def close(self) -> None:
        self._client.close()


def test_sigkill_of_a_worker_under_grpc_load_fails_no_request(tmp_path: Path) -> None:
    batching = {"max_queue_delay_us": 500, "max_queue_size": 4096}
    config = {"max_batch_size": 16, "dynamic_batching": batching, "workers": _TWO_WORKERS}
    write_model(tmp_path, "mlp", mlp_model(), config=config)
    with start_server(tmp_path, "--instance-kind", "process") as server:
        victim = workers(server, "mlp")[0]["pid"]

        async def scenario() -> list[Any]:
            client = grpcclient_aio.InferenceServerClient(server.grpc_url)
            tensor = grpcclient_aio.InferInput("features", [4, 16], "FP32")
            tensor.set_data_from_numpy(np.ones((4, 16), np.float32))
            try:

                async def killer() -> None:
                    await asyncio.sleep(0.3)  # in the middle of the load
                    os.kill(victim, signal.SIGKILL)

                # 128 in flight at a time: below the listener's cap of concurrent streams per connection.
                window = asyncio.Semaphore(128)

                async def infer() -> Any:
                    async with window:
                        return await client.infer("mlp", [tensor])

                results = await asyncio.gather(
                    killer(), *(infer() for _ in range(1500)), return_exceptions=True
                )
                return results[1:]
            finally:
                await client.close()

        started = time.monotonic()
        results = asyncio.run(asyncio.wait_for(scenario(), 180))
        assert time.monotonic() - started > 0.3, "the load must still be running when the worker is killed"
        failures = [f"{r!r}: {r}" for r in results if isinstance(r, BaseException)]
        assert failures == []
        assert all(r.as_numpy("probabilities").shape == (4, 10) for r in results)
        wait_for(lambda: victim not in {w["pid"] for w in workers(server, "mlp")}, "the worker's restart")
        assert f"worker pid {victim} killed by signal 9 (SIGKILL)" in server.logs()


def test_sigterm_with_requests_queued_on_both_protocols_answers_them_all(tmp_path: Path) -> None:
    # One worker, one row per batch: 64 requests of ~10 ms each are still queued when SIGTERM arrives.
    config = {"max_batch_size": 1, "workers": {"min": 1, "max": 1, "threads": 1}}
    write_model(tmp_path, "chain", matmul_chain_model(width=1024, layers=64), config=config)
    rows = np.full((1, 1024), 0.5, np.float32)
    with start_server(tmp_path, "--drain-timeout", "60") as server:

        async def scenario() -> tuple[list[Any], int]:
            rest = httpclient_aio.InferenceServerClient(server.http_url, conn_limit=64)
            grpc = grpcclient_aio.InferenceServerClient(server.grpc_url)
            rest_input = httpclient_aio.InferInput("x", [1, 1024], "FP32")
            rest_input.set_data_from_numpy(rows)
            grpc_input = grpcclient_aio.InferInput("x", [1, 1024], "FP32")
            grpc_input.set_data_from_numpy(rows)
            try:
                await rest.infer("chain", [rest_input])  # warm
                calls = [rest.infer("chain", [rest_input]) for _ in range(32)]
                calls += [grpc.infer("chain", [grpc_input]) for _ in range(32)]
                tasks = [asyncio.ensure_future(call) for call in calls]
                await asyncio.sleep(0.2)  # every request sent and queued
                pending = sum(not task.done() for task in tasks)
                server.process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks, return_exceptions=True), pending
            finally:
                await rest.close()
                await grpc.close()

        started = time.monotonic()
        results, pending = asyncio.run(asyncio.wait_for(scenario(), 120))
        assert pending > 10, "the queue must still hold requests when SIGTERM arrives"
        failures = [f"{r!r}: {r}" for r in results if isinstance(r, BaseException)]
        assert failures == []
        expected = rows * 0.999**64
        for result in results:
            np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-4)
        assert server.process.wait(60) == 0
        assert time.monotonic() - started < 60


def test_poll_reloads_under_grpc_and_rest_load_fail_no_request(tmp_path: Path) -> None:
    write_model(tmp_path, "live", identity_model("FP32", (-1, 4)), version=1)
    with start_server(tmp_path, "--model-control", "poll", "--poll-interval", "0.2") as server:
        loads = [GrpcLoad(server.grpc_url, "live"), RestLoad(server.http_url, "live")]
        for load in loads:
            load.start()
        try:
            wait_for(lambda: all(load.versions.get("1", 0) >= 5 for load in loads), "answers from version 1")
            write_model(tmp_path, "live", identity_model("FP32", (-1, 4)), version=2)
            wait_for(lambda: all(load.versions.get("2", 0) >= 5 for load in loads), "version 2 to take over")
            write_config(tmp_path, "live", {"max_batch_size": 4})  # a config change reloads the version
            write_config(tmp_path, "live", "max_batch_size: [\n")  # a broken one keeps the last good
            seen = [load.answered() for load in loads]
            wait_for(
                lambda: all(x.answered() > n + 20 for x, n in zip(loads, seen, strict=True)), "more load"
            )
        finally:
            for load in loads:
                load.stop()
        assert [load.failures for load in loads] == [[], []]


def test_explicit_reloads_under_grpc_and_rest_load_fail_no_request(tmp_path: Path) -> None:
    write_model(tmp_path, "live", identity_model("FP32", (-1, 4)))
    with start_server(tmp_path, "--model-control", "explicit", "--load-model", "live") as server:
        loads = [GrpcLoad(server.grpc_url, "live"), RestLoad(server.http_url, "live")]
        for load in loads:
            load.start()
        control = httpclient.InferenceServerClient(server.http_url)
        try:
            for size in (2, 4, 8):
                done = [load.answered() for load in loads]
                control.load_model("live", config=f'{{"max_batch_size": {size}}}')  # a reload
                assert control.get_model_config("live")["max_batch_size"] == size
                wait_for(
                    lambda: all(x.answered() > n + 10 for x, n in zip(loads, done, strict=True)),  # noqa: B023
                    "answers after the reload",
                )
        finally:
            control.close()
            for load in loads:
                load.stop()
        assert [load.failures for load in loads] == [[], []]
