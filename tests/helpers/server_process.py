"""Run the real server (``python -m modelport.server``) on 127.0.0.1 ephemeral ports for a test.

The server writes its bound ports as JSON to ``--ready-file`` once every listener is up and the models are
loaded; :func:`start_server` waits for that file, so a test can call the server as soon as it gets the handle.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ServerExited", "ServerProcess", "server_command", "start_server", "wait_ready"]

_START_TIMEOUT_S = 60.0


class ServerExited(RuntimeError):
    """The server process ended before it became ready."""


@dataclass
class ServerProcess:
    """A running server: its process, the ports it bound (from the ready file) and its captured output."""

    process: subprocess.Popen[bytes]
    ports: dict[str, Any]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def _url(self, key: str) -> str:
        port = self.ports.get(key)
        if not port:
            raise RuntimeError(f"the server reported no {key} (listener not running): {self.ports}")
        return f"127.0.0.1:{port}"

    @property
    def http_url(self) -> str:
        """``127.0.0.1:PORT`` without a scheme, as ``tritonclient`` wants it."""
        return self._url("http_port")

    @property
    def grpc_url(self) -> str:
        return self._url("grpc_port")

    @property
    def metrics_url(self) -> str:
        return self._url("metrics_port")

    @property
    def management_url(self) -> str:
        return self._url("management_port")

    def logs(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit (kill after ``timeout``); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._stopped = True
        return self.process.returncode


def server_command(repository: Path, ready_file: Path, args: tuple[str, ...] = ()) -> list[str]:
    """The command line :func:`start_server` runs (every port 0, host 127.0.0.1, then ``args``)."""
    return [
        sys.executable,
        "-m",
        "modelport.server",
        "--repository",
        str(repository),
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
        "--management-port",
        "0",
        "--ready-file",
        str(ready_file),
        *args,
    ]


@contextlib.contextmanager
def start_server(
    repository: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = _START_TIMEOUT_S
) -> Iterator[ServerProcess]:
    """Start the server on ``repository`` with extra command-line ``args``; stop it with SIGTERM on exit.

    Later ``args`` override the defaults (every port 0, host 127.0.0.1). ``env`` entries are added to the
    current environment. Raises :class:`ServerExited` (with the server's output) if it dies before ready.
    """
    with tempfile.TemporaryDirectory(prefix="modelport-test-") as scratch:
        ready_file = Path(scratch) / "ready.json"
        log_path = Path(scratch) / "server.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                server_command(repository, ready_file, args),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        handle = ServerProcess(process=process, ports={}, log_path=log_path)
        try:
            handle.ports = wait_ready(process, ready_file, log_path, timeout)
            yield handle
        finally:
            handle.stop()


def wait_ready(
    process: subprocess.Popen[bytes], ready_file: Path, log_path: Path, timeout: float
) -> dict[str, Any]:
    """The ports ``process`` wrote to ``ready_file``; :class:`ServerExited` with its output (``log_path``) if
    it ends first or is not ready after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists():
            ports: dict[str, Any] = json.loads(ready_file.read_text())
            return ports
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise ServerExited(f"server exited with {process.returncode} before ready:\n{output}")
        time.sleep(0.02)
    raise ServerExited(f"server not ready after {timeout} s:\n{log_path.read_text(errors='replace')}")
