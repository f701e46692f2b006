"""Slow and oversized clients on every listener (REST, management, metrics, gRPC) cannot lock others out.

The server runs under a 1024-descriptor limit (``ulimit -n 1024``). 1,000 slow connections, spread over the
four listeners (headers sent a byte every 2 s, bodies that stall, HTTP/2 prefaces a byte at a time), leave
tritonclient (HTTP and gRPC), scrapes and the management API served and ``/v2/health/ready`` true; oversized
headers get 431 (gRPC metadata: RESOURCE_EXHAUSTED), long URLs 414; idle, slow-header and stalled-body
connections are closed on time; at the connection cap the idlest connection makes room; SIGTERM is not held
by clients still sending.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import identity_model, slow_iterations, slow_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.reliability.slow_clients import Slowloris, Target, stalled_grpc_call

DESCRIPTOR_LIMIT = 1024
# Short timeouts so the test sees each one fire; the defaults are 10 s / 30 s / 5 s.
TIMEOUTS = ("--header-timeout", "3", "--body-timeout", "3", "--keep-alive-timeout", "1")


@contextlib.contextmanager
def _descriptor_limit(limit: int) -> Iterator[None]:
    """Processes started inside inherit a soft open-file limit of ``limit`` (this one gets its own back)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slowloris")
    write_model(root, "identity", identity_model("FP32", (-1, 4)))
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with contextlib.ExitStack() as stack:
        with _descriptor_limit(
            DESCRIPTOR_LIMIT
        ):  # the server's limit; the attacker (this process) needs more
            handle = stack.enter_context(start_server(repository, *TIMEOUTS))
        yield handle


def _port(server: ServerProcess, key: str) -> int:
    return int(server.ports[key])


def _descriptors(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def _serve_normal_clients(server: ServerProcess, seconds: float) -> float:
    """Call every listener with its ordinary client until ``seconds`` pass; the slowest call's time."""
    data = np.arange(8, dtype=np.float32).reshape(2, 4)
    http = httpclient.InferenceServerClient(server.http_url, connection_timeout=5, network_timeout=5)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    slowest, deadline = 0.0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert httpx.get(f"http://{server.http_url}/v2/health/ready", timeout=5).status_code == 200
            assert http.is_server_ready()
            tensor = httpclient.InferInput("INPUT0", [2, 4], "FP32")
            tensor.set_data_from_numpy(data)
            np.testing.assert_array_equal(http.infer("identity", [tensor]).as_numpy("OUTPUT0"), data)
            assert grpc.is_server_ready(client_timeout=5)
            message = grpcclient.InferInput("INPUT0", [2, 4], "FP32")
            message.set_data_from_numpy(data)
            result = grpc.infer("identity", [message], client_timeout=5)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
            scrape = httpx.get(f"http://{server.metrics_url}/metrics", timeout=5)
            assert scrape.status_code == 200 and "modelport_" in scrape.text
            assert httpx.get(f"http://{server.management_url}/models", timeout=5).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.2)
    finally:
        http.close()
        grpc.close()
    return slowest


def test_a_thousand_slow_connections_leave_every_listener_serving(server: ServerProcess) -> None:
    attack = Slowloris(
        [
            Target(_port(server, "http_port"), "headers", 200),
            Target(_port(server, "http_port"), "body", 200),
            Target(_port(server, "metrics_port"), "headers", 175),
            Target(_port(server, "management_port"), "headers", 175),
            Target(_port(server, "grpc_port"), "grpc", 250),
        ]
    )
    attack.start()
    try:
        assert attack.open_connections == 1000
        slowest = _serve_normal_clients(server, seconds=8.0)
        descriptors = _descriptors(server)
    finally:
        attack.stop()
    assert server.process.poll() is None
    assert slowest < 3.0, f"a normal call took {slowest:.2f} s under attack"
    assert descriptors < DESCRIPTOR_LIMIT - 64, f"server holds {descriptors} descriptors"
    # The server, not the attacker, ended slow connections: timeouts (408) and the cap (closed for others).
    assert any(reason.endswith("408 Request Timeout") for reason in attack.closed_by_server), (
        attack.closed_by_server
    )
    # Afterwards the server is as before.
    assert _serve_normal_clients(server, seconds=0.1) < 3.0


@pytest.mark.parametrize("listener", ["http_port", "metrics_port", "management_port"])
def test_oversized_headers_get_431_and_long_urls_414(server: ServerProcess, listener: str) -> None:
    base = f"http://127.0.0.1:{_port(server, listener)}"
    big = httpx.get(f"{base}/v2/health/ready", headers={"X-Big": "a" * 65 * 1024}, timeout=5)
    assert big.status_code == 431
    many = httpx.get(f"{base}/", headers={f"X-{i}": "a" * 1000 for i in range(40)}, timeout=5)
    assert many.status_code == 431
    long_url = httpx.get(f"{base}/v2/{'a' * 9000}", timeout=5)
    assert long_url.status_code == 414
    # One header that never ends is refused once it passes the limit, not buffered.
    with socket.create_connection(("127.0.0.1", _port(server, listener)), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * 200_000)
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")


def test_oversized_grpc_metadata_is_refused_and_the_connection_serves_on(server: ServerProcess) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.is_server_ready(headers={"x-big": "a" * 65 * 1024}, client_timeout=5)
        assert refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert "metadata size" in str(refused.value)
        assert client.is_server_ready(client_timeout=5)
    finally:
        client.close()


def _response(sock: socket.socket) -> bytes:
    """One whole response (it has a Content-Length)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, body = received.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def _closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock``, and what it sent before closing."""
    started, received = time.monotonic(), b""
    sock.settimeout(10)
    while chunk := sock.recv(4096):
        received += chunk
    return time.monotonic() - started, received


@pytest.mark.parametrize(
    ("listener", "path"),
    [
        ("http_port", "/v2/health/live"),
        ("metrics_port", "/metrics?name[]=process_max_fds"),
        ("management_port", "/models"),
    ],
)
def test_idle_connections_close_after_the_keep_alive_timeout(
    server: ServerProcess, listener: str, path: str
) -> None:
    with socket.create_connection(("127.0.0.1", _port(server, listener)), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert _response(sock).startswith(b"HTTP/1.1 200 ")
        waited, rest = _closed_after(sock)
    assert rest == b""
    assert 0.7 < waited < 3.0  # --keep-alive-timeout 1, honoured within a sweep (0.25 s)


def test_slow_headers_and_stalled_bodies_get_408(server: ServerProcess) -> None:
    port = _port(server, "http_port")
    with (
        socket.create_connection(("127.0.0.1", port)) as silent,
        socket.create_connection(("127.0.0.1", port)) as stalled,
    ):
        stalled.sendall(b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
        silent_wait, silent_answer = _closed_after(silent)
        stalled_wait, stalled_answer = _closed_after(stalled)
    assert silent_answer.startswith(b"HTTP/1.1 408 ") and 2.9 < silent_wait < 5.0
    assert stalled_answer.startswith(b"HTTP/1.1 408 ") and stalled_wait < 5.0


def test_sigterm_waits_for_inferences_not_for_clients_still_sending(tmp_path: Path) -> None:
    write_model(tmp_path, "slow", slow_model())
    with start_server(tmp_path, "--drain-timeout", "30") as server:
        client = httpclient.InferenceServerClient(server.http_url, network_timeout=30)

        def infer(iterations: int) -> object:
            tensor = httpclient.InferInput("ITERATIONS", [1], "INT64")
            tensor.set_data_from_numpy(np.array([iterations], dtype=np.int64))
            return client.async_infer("slow", [tensor])

        iterations = slow_iterations(lambda n: infer(n).get_result(), 1.0)  # type: ignore[attr-defined]
        http_port, grpc_port = _port(server, "http_port"), _port(server, "grpc_port")
        with contextlib.ExitStack() as open_sockets:
            body = open_sockets.enter_context(socket.create_connection(("127.0.0.1", http_port)))
            body.sendall(b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n{")
            headers = open_sockets.enter_context(socket.create_connection(("127.0.0.1", http_port)))
            headers.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n")
            open_sockets.enter_context(stalled_grpc_call(grpc_port))
            in_flight = infer(iterations)
            time.sleep(0.2)  # the inference has reached the server
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            result = in_flight.get_result()  # type: ignore[attr-defined]
            assert result.as_numpy("OUTPUT0") is not None
            assert server.process.wait(20) == 0
            took = time.monotonic() - started
        client.close()
    assert took < 5.0, f"SIGTERM took {took:.1f} s (drain timeout 30 s)"


def test_at_the_cap_the_idlest_connection_makes_room(repository: Path) -> None:
    with start_server(repository, "--max-connections", "3", "--keep-alive-timeout", "30") as server:
        port = _port(server, "http_port")
        with contextlib.ExitStack() as stack:

            def connect(request: bytes) -> socket.socket:
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
                sock.sendall(request)
                return sock

            ready = b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
            oldest = connect(ready)
            _response(oldest)
            older = connect(ready)
            _response(older)
            sending = connect(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n")  # headers not finished
            # The cap (3) is reached: each newcomer is served, closing the longest-idle connection first
            # (the one sending its headers has been at it for less than a second: a normal client).
            newcomer = connect(ready)
            assert _response(newcomer).startswith(b"HTTP/1.1 200 ")
            assert _closed_after(oldest)[1] == b""
            latecomer = connect(ready)
            assert _response(latecomer).startswith(b"HTTP/1.1 200 ")
            assert _closed_after(older)[1] == b""
            # Stuck on its headers for over a second, a connection goes before the idle ones.
            time.sleep(1.5)
            last = connect(ready)
            assert _response(last).startswith(b"HTTP/1.1 200 ")
            assert _closed_after(sending)[1] == b""
            newcomer.sendall(ready)
            assert _response(newcomer).startswith(b"HTTP/1.1 200 ")
