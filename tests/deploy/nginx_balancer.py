"""A real nginx in front of several modelport servers, for the scale-out tests: its configuration written into
a scratch folder, run in the foreground as the current user, stopped on exit.

The directives are the ones docs/deployment.md recommends: each request that fails on one server (connection
refused or reset, a 502/503/504, a timeout) goes to the next, POSTs included (``non_idempotent``), since infer
is idempotent; REST through ``proxy_pass`` with HTTP/1.1 keep-alive to the servers, gRPC through ``grpc_pass``
on an HTTP/2 (cleartext) listener.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Balancer", "nginx_binary", "run_nginx"]

_RETRY = "error timeout http_502 http_503 http_504 non_idempotent"


def nginx_binary() -> str | None:
    """nginx on PATH or where Debian installs it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


@dataclass(frozen=True)
class Balancer:
    """The running nginx: ``http_url`` and ``grpc_url`` as ``127.0.0.1:PORT``, and its error log."""

    http_url: str
    grpc_url: str
    error_log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _config(folder: Path, http_port: int, grpc_port: int, http: Sequence[str], grpc_: Sequence[str]) -> str:
    # As root, nginx's workers would switch to "nobody"; keep them as the user running the test.
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"

    def servers(addresses: Sequence[str]) -> str:
        # max_fails=1: after one failure nginx leaves the server alone for fail_timeout.
        return "\n".join(f"        server {address} max_fails=1 fail_timeout=30s;" for address in addresses)

    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp}
    upstream modelport_http {{
{servers(http)}
        keepalive 16;
    }}
    upstream modelport_grpc {{
{servers(grpc_)}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location / {{
            proxy_pass http://modelport_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 2s;
            proxy_read_timeout 10s;
            proxy_next_upstream {_RETRY};
            proxy_next_upstream_tries 3;
        }}
    }}
    server {{
        listen 127.0.0.1:{grpc_port} http2;
        location / {{
            grpc_pass grpc://modelport_grpc;
            grpc_connect_timeout 2s;
            grpc_read_timeout 10s;
            grpc_next_upstream {_RETRY};
            grpc_next_upstream_tries 3;
        }}
    }}
}}
"""


@contextlib.contextmanager
def run_nginx(folder: Path, http: Sequence[str], grpc_: Sequence[str]) -> Iterator[Balancer]:
    """Run nginx balancing REST over ``http`` and gRPC over ``grpc_`` (``host:port`` each) until exit."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError(
            "nginx is not installed (make test installs Debian's nginx as root: tests/system_packages.sh)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = _free_port(), _free_port()
    config = folder / "nginx.conf"
    config.write_text(_config(folder, http_port, grpc_port, http, grpc_))
    check = subprocess.run(
        [binary, "-t", "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _listening(http_port) or not _listening(grpc_port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"nginx did not start: {(folder / 'error.log').read_text(errors='replace')}"
                )
            time.sleep(0.05)
        yield Balancer(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", folder / "error.log")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
