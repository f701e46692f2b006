"""SIGTERM: the server stops accepting, finishes the requests in flight, and exits 0."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import slow_infer, slow_iterations, slow_model, write_model
from tests.helpers.server_process import ServerProcess, server_command, start_server
from tests.helpers.waiting import wait_for


def _iterations_for(server: ServerProcess, seconds: float) -> int:
    return slow_iterations(lambda n: slow_infer(server.http_url, n), seconds)


def _infer_in_background(server: ServerProcess, iterations: int) -> tuple[threading.Thread, dict[str, Any]]:
    """Start one slow request in a thread; its outcome lands in the dict as ``result`` or ``error``."""
    outcome: dict[str, Any] = {}

    def in_flight() -> None:
        try:
            outcome["result"] = slow_infer(server.http_url, iterations)
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=in_flight, daemon=True)
    thread.start()
    return thread, outcome


def test_sigterm_drains_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    write_model(tmp_path, "slow", slow_model())
    with start_server(tmp_path, "--drain-timeout", "30") as server:
        thread, outcome = _infer_in_background(server, _iterations_for(server, 2.0))
        time.sleep(0.5)  # the request is running in the model now
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(f"http://{server.http_url}/v2/health/live", timeout=5)
        thread.join(60)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["result"].shape == (128, 128)
        assert server.process.wait(30) == 0
        logs = server.logs()
        assert "shutting down" in logs
        assert "stopped" in logs


def test_sigint_with_nothing_in_flight_exits_0_quickly(tmp_path: Path) -> None:
    write_model(tmp_path, "slow", slow_model())
    with start_server(tmp_path) as server:
        started = time.monotonic()
        assert server.stop(signal.SIGINT) == 0
        assert time.monotonic() - started < 10


def test_drain_timeout_bounds_the_shutdown(tmp_path: Path) -> None:
    write_model(tmp_path, "slow", slow_model())
    with start_server(tmp_path, "--drain-timeout", "1") as server:
        thread, outcome = _infer_in_background(server, _iterations_for(server, 30.0))
        time.sleep(0.5)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(20) == 0
        assert time.monotonic() - started < 8  # the 30 s request was not waited for
        thread.join(10)
        assert isinstance(outcome["error"], InferenceServerException)
        assert outcome["error"].status() == "503"
        assert "drain timeout" in str(outcome["error"])


def test_sigterm_while_models_load_stops_promptly_with_status_0(tmp_path: Path) -> None:
    """A version that takes long to open (a chain of 200,000 nodes: ONNX Runtime needs several seconds to
    build the session) is still loading when the other model is ready; SIGTERM then ends the start-up at
    once instead of waiting for that load. (A file that never finishes reading is no longer a way to hang
    a load: a FIFO model.onnx is refused, and ONNX Runtime refuses FIFO external data itself.)"""
    write_model(tmp_path / "repo", "fast", slow_model())
    nodes = 200_000
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Sin", [f"t{i - 1}" if i else "x"], [f"t{i}"]) for i in range(nodes)],
        "long",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [onnx.helper.make_tensor_value_info(f"t{nodes - 1}", onnx.TensorProto.FLOAT, [4])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    write_model(tmp_path / "repo", "long", model)
    command = server_command(tmp_path / "repo", tmp_path / "ready.json")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Once the small model is ready, the long one is still being opened.
        wait_for(lambda: "model fast version 1 ready" in log_path.read_text(), "the small model", timeout=60)
        assert "model long version 1 ready" not in log_path.read_text()
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            status = process.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM during startup was ignored for 10 s")
        assert status == 0, log_path.read_text()
        assert time.monotonic() - started < 5
        assert not (tmp_path / "ready.json").exists()
        assert "shutting down" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_worker_log_files_do_not_outlive_startup(tmp_path: Path) -> None:
    """Workers log to a file whose name is removed once they are up (the server keeps it open to quote a
    crashed worker's last lines), so not even a server killed with SIGKILL leaves files behind."""
    model = f"logs_{os.getpid()}"
    write_model(tmp_path, model, slow_model(), config={"workers": {"min": 2, "max": 2}})
    pattern = str(Path(tempfile.gettempdir()) / f"modelport-worker-{model}-*")
    with start_server(tmp_path, "--instance-kind", "process") as server:
        assert glob.glob(pattern) == []
        workers = httpx.get(f"http://{server.management_url}/models/{model}", timeout=10).json()[0]["workers"]
        os.kill(workers[0]["pid"], signal.SIGKILL)  # a crash: its last lines still reach the server log
        deadline = time.monotonic() + 10
        while f"worker pid {workers[0]['pid']} killed by signal 9" not in server.logs():
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.05)
        assert "last stderr: modelport worker" in server.logs()

        def replaced() -> bool:  # its replacement is up, so its log file is unlinked too
            entry = httpx.get(f"http://{server.management_url}/models/{model}", timeout=10).json()[0]
            up = [w for w in entry["workers"] if w["status"] == "READY"]
            return len(up) == 2 and workers[0]["pid"] not in {w["pid"] for w in up}

        wait_for(replaced, "the killed worker's replacement to start", timeout=10)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    assert glob.glob(pattern) == []
