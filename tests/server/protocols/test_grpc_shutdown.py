"""SIGTERM with a gRPC request in flight: the request finishes, new RPCs are refused, the server exits 0."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.onnx_models import slow_iterations, slow_model, write_model
from tests.helpers.server_process import start_server


def _iterations(count: int) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("ITERATIONS", [1], "INT64")
    tensor.set_data_from_numpy(np.array([count], dtype=np.int64))
    return tensor


def test_sigterm_finishes_the_in_flight_request(tmp_path: Path) -> None:
    write_model(tmp_path, "slow", slow_model(64))
    with start_server(tmp_path, "--drain-timeout", "30") as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        # About two seconds of work on this machine, measured through the server.
        busy = _iterations(slow_iterations(lambda n: client.infer("slow", [_iterations(n)]), 2.0))
        finished: list[tuple[float, Any, Any]] = []
        done = threading.Event()

        def callback(result: Any, error: Any) -> None:
            finished.append((time.monotonic(), result, error))
            done.set()

        client.async_infer("slow", [busy], callback=callback)
        time.sleep(0.5)
        assert not done.is_set(), "the request ended before the signal; the model is too fast to test this"
        signalled = time.monotonic()
        server.process.terminate()

        with grpc.insecure_channel(server.grpc_url) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            refused = False
            for _ in range(50):  # the listener stops taking new RPCs right after the signal
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                except grpc.RpcError as refusal:
                    # grpc-core cancels calls that arrive while the server stops; afterwards: no listener.
                    assert refusal.code() in (
                        grpc.StatusCode.CANCELLED,
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                    )
                    refused = True
                    break
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    refused = True
                    break
                time.sleep(0.02)
            assert refused

        assert done.wait(30)
        when, result, error = finished[0]
        assert error is None, error
        assert when > signalled
        assert result.as_numpy("OUTPUT0").shape == (64, 64)
        assert server.process.wait(30) == 0
        client.close()
        assert "stopped" in server.logs()
