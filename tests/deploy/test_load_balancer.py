"""Scale-out on one machine: three modelport servers behind a real nginx (REST through ``proxy_pass``, gRPC
through ``grpc_pass``), configured as docs/deployment.md recommends (``nginx_balancer.py``).

Requests spread over all three (each server's own ``/metrics`` counts its share), and when one server is
SIGKILLed under load no REST request is lost: infer is idempotent, so nginx re-sends what failed on the dead
server (refused or reset connections, ``non_idempotent`` allowing POSTs) to a live one, and every answer is
still the right one. gRPC differs in one measured way: nginx (Debian's 1.22) does not re-send a call already
sent to the killed server (most likely because it streams gRPC request bodies without keeping a copy): it ends
UNAVAILABLE (502);
only those in flight at the kill are hit, new calls are balanced onto the survivors, and a client that retries
UNAVAILABLE once (safe: infer is idempotent) loses none.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.deploy.nginx_balancer import Balancer, nginx_binary, run_nginx
from tests.helpers.scrape import scrape
from tests.helpers.server_process import ServerProcess, start_server

pytestmark = pytest.mark.skipif(
    nginx_binary() is None,
    reason="nginx is not installed (make test installs it as root: tests/system_packages.sh)",
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "mlp"
SERVERS = 3
FEATURES = np.random.default_rng(19).standard_normal((1, 64)).astype(np.float32)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[ServerProcess], Balancer]]:
    repository = tmp_path / "models"
    shutil.copytree(ROOT / "models" / MODEL, repository / MODEL)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(start_server(repository)) for _ in range(SERVERS)]
        balancer = stack.enter_context(
            run_nginx(
                tmp_path / "nginx",
                [server.http_url for server in servers],
                [server.grpc_url for server in servers],
            )
        )
        yield servers, balancer


def _http_infer(url: str) -> Callable[[], np.ndarray]:
    client = httpclient.InferenceServerClient(url=url, network_timeout=20)
    features = httpclient.InferInput("features", list(FEATURES.shape), "FP32")
    features.set_data_from_numpy(FEATURES)

    def infer() -> np.ndarray:
        result: np.ndarray | None = client.infer(MODEL, [features]).as_numpy("probabilities")
        assert result is not None
        return result

    return infer


def _grpc_infer(url: str) -> Callable[[], np.ndarray]:
    client = grpcclient.InferenceServerClient(url=url)
    features = grpcclient.InferInput("features", list(FEATURES.shape), "FP32")
    features.set_data_from_numpy(FEATURES)

    def infer() -> np.ndarray:
        answer = client.infer(MODEL, [features], client_timeout=20)
        assert isinstance(answer, grpcclient.InferResult)
        result: np.ndarray | None = answer.as_numpy("probabilities")
        assert result is not None
        return result

    return infer


def _served(server: ServerProcess, protocol: str) -> float:
    return scrape(server.metrics_url).value(
        "modelport_requests_total", model=MODEL, protocol=protocol, outcome="success"
    )


def test_requests_spread_over_every_server_for_both_protocols(
    cluster: tuple[list[ServerProcess], Balancer],
) -> None:
    servers, balancer = cluster
    expected = _http_infer(servers[0].http_url)()
    requests = 30
    for protocol, make in (("http", _http_infer), ("grpc", _grpc_infer)):
        before = [_served(server, protocol) for server in servers]
        infer = make(balancer.http_url if protocol == "http" else balancer.grpc_url)
        for _ in range(requests):
            np.testing.assert_allclose(infer(), expected, rtol=1e-6)
        shares = [_served(server, protocol) - start for server, start in zip(servers, before, strict=True)]
        # Round robin over three: each gets about a third; none is left out.
        assert sum(shares) == requests, shares
        assert all(share >= requests / SERVERS / 2 for share in shares), f"{protocol} shares {shares}"


def test_a_server_killed_under_load_loses_no_request(cluster: tuple[list[ServerProcess], Balancer]) -> None:
    servers, balancer = cluster
    expected = _http_infer(servers[0].http_url)()
    before = {(i, p): _served(server, p) for i, server in enumerate(servers) for p in ("http", "grpc")}
    stop = threading.Event()
    answered = {"http": 0, "grpc": 0}
    failures: list[str] = []
    retried: list[str] = []
    lock = threading.Lock()

    def client(protocol: str) -> None:
        infer = (_http_infer if protocol == "http" else _grpc_infer)(
            balancer.http_url if protocol == "http" else balancer.grpc_url
        )
        deadline = time.monotonic() + 20  # bounded whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                try:
                    result = infer()
                except InferenceServerException as error:
                    if protocol != "grpc" or error.status() != "StatusCode.UNAVAILABLE":
                        raise
                    # In flight on the killed server: nginx does not re-send a sent gRPC call;
                    # the client can.
                    with lock:
                        retried.append(str(error))
                    result = infer()
                np.testing.assert_allclose(result, expected, rtol=1e-6)
            except Exception as error:  # every failure is recorded and fails the test below
                with lock:
                    failures.append(f"{protocol}: {type(error).__name__}: {error}")
                continue
            with lock:
                answered[protocol] += 1

    threads = [threading.Thread(target=client, args=(p,)) for p in ("http", "http", "grpc", "grpc")]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    with lock:
        before_kill = dict(answered)
    servers[0].process.send_signal(signal.SIGKILL)
    servers[0].process.wait(10)
    time.sleep(2.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    error_log = balancer.error_log.read_text(errors="replace")
    assert not failures, f"{len(failures)} requests lost, e.g. {failures[:3]}\nnginx: {error_log[-2000:]}"
    # nginx did meet the dead server (and so re-sent REST requests away from it).
    assert "upstream" in error_log and "127.0.0.1" in error_log, error_log
    print(f"answered {answered}, gRPC calls the client retried: {len(retried)}")
    # Only calls in flight on the killed server needed the client's retry: at most one per gRPC client thread.
    assert len(retried) <= 2, retried
    for protocol in ("http", "grpc"):
        assert answered[protocol] > before_kill[protocol], f"no {protocol} answer after the kill: {answered}"
        # The survivors answered for the dead one (their own metrics say so).
        for i in (1, 2):
            assert _served(servers[i], protocol) > before[(i, protocol)], f"server {i} served no {protocol}"
