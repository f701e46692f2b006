"""``make serve`` binds every listener to loopback (the container image keeps 0.0.0.0).

The command is the one ``make -n serve`` prints (the Makefile's own recipe), run with ephemeral ports from
the ``MODELPORT_*`` variables; psutil then lists the sockets the server listens on.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _serve_command() -> list[str]:
    """The ``modelport serve`` line of ``make -n serve`` (make prints the install steps first when due)."""
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [line] = [line for line in dry_run.stdout.splitlines() if " serve " in f"{line} " and "modelport" in line]
    return shlex.split(line)


def test_make_serve_listens_on_loopback_only(tmp_path: Path) -> None:
    command = _serve_command()
    if not (ROOT / command[0]).exists():
        pytest.fail(f"{command[0]} is missing: make serve's environment is not installed")
    ready_file = tmp_path / "ready.json"
    env = {
        **os.environ,
        "MODELPORT_HTTP_PORT": "0",
        "MODELPORT_GRPC_PORT": "0",
        "MODELPORT_METRICS_PORT": "0",
        "MODELPORT_MANAGEMENT_PORT": "0",
        "MODELPORT_READY_FILE": str(ready_file),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: ready_file.exists() or process.poll() is not None, "the server to be ready", timeout=120
        )
        assert process.poll() is None, log.read_text(errors="replace")
        ports = json.loads(ready_file.read_text())
        listening = {
            (connection.laddr.ip, connection.laddr.port)
            for connection in psutil.Process(process.pid).net_connections(kind="inet")
            if connection.status == psutil.CONN_LISTEN
        }
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    bound = {port for _, port in listening}
    for key in ("http_port", "grpc_port", "metrics_port", "management_port"):
        assert ports[key] in bound, f"{key} {ports[key]} is not among the listening sockets {listening}"
    # grpc core reports its IPv4 socket as ::ffff:127.0.0.1 (an IPv4-mapped address).
    addresses = {ipaddress.ip_address(address) for address, _ in listening}
    unmapped = {getattr(address, "ipv4_mapped", None) or address for address in addresses}
    assert unmapped == {ipaddress.ip_address("127.0.0.1")}, listening
