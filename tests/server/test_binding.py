"""``--host`` binds what was asked: 0.0.0.0 IPv4 only, ``::`` / ``[::]`` IPv6 and IPv4 (dual stack, as Linux
does); ``--metrics-host`` puts metrics on an address of its own. The ready log line says which."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc as grpcclient

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import start_server


def _accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except OSError:
        return False
    return True


def _grpc_ready(url: str) -> bool:
    client = grpcclient.InferenceServerClient(url)
    try:
        return bool(client.is_server_ready(client_timeout=2))
    except Exception:  # tritonclient raises its own error for "unavailable"
        return False
    finally:
        client.close()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    write_model(tmp_path, "identity", identity_model())
    return tmp_path


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="this host has no dual-stack IPv6")
def test_ipv6_any_is_dual_stack_and_metrics_can_stay_on_loopback(repository: Path) -> None:
    with start_server(repository, "--host", "[::]", "--metrics-host", "127.0.0.1") as server:
        http, grpc, metrics = (int(server.ports[key]) for key in ("http_port", "grpc_port", "metrics_port"))
        for address in ("127.0.0.1", "::1"):
            assert httpx.get(f"http://{_url(address, http)}/v2/health/ready", timeout=5).status_code == 200
            assert _grpc_ready(_url(address, grpc))
        assert _accepts("127.0.0.1", metrics)
        assert not _accepts("::1", metrics)
        logs = server.logs()
    assert "REST and gRPC on [::] (IPv6 + IPv4 (dual stack)), metrics on 127.0.0.1 (IPv4)" in logs


def test_ipv4_any_binds_ipv4_only(repository: Path) -> None:
    with start_server(repository, "--host", "0.0.0.0") as server:
        http, grpc, metrics = (int(server.ports[key]) for key in ("http_port", "grpc_port", "metrics_port"))
        assert httpx.get(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5).status_code == 200
        assert _grpc_ready(f"127.0.0.1:{grpc}")
        for port in (http, grpc, metrics):
            assert not _accepts("::1", port)
        logs = server.logs()
    assert "REST and gRPC on 0.0.0.0 (IPv4), metrics on 0.0.0.0 (IPv4)" in logs


def _url(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
