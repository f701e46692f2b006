"""Native load generators: wrk (REST) and h2load (gRPC), posting one prepared body at a fixed concurrency.

What each measures, per request, from its own data:

- **wrk** keeps every completed request's latency (microseconds, from the request's first byte written to
  its response parsed) in its own histogram; our Lua ``done()`` prints the 50th/90th/99th percentiles from it,
  with the completed count, the run's exact duration and the error counts (connect, read, write, timeout,
  non-2xx status). wrk runs closed-loop: ``-c`` connections, one request in flight on each.
- **h2load** writes one line per request to ``--log-file`` (start time, HTTP status, duration in
  microseconds); the percentiles are computed here from those lines. It does not read gRPC trailers, so a
  gRPC error with HTTP status 200 counts as success there: the caller checks one request with a real client
  first and reads failures from the server's statistics. Requests in ``--warm-up-time`` are not logged.

``ensure_tools`` installs the Debian packages with apt-get when they are missing (root only).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "ensure_tools", "percentile", "run_h2load", "run_wrk", "tool_version"]

_LUA = """
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local header_length = os.getenv("BENCH_HEADER_LENGTH")
if header_length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header_length
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50=%d p90=%d p99=%d "
    .. "connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""
_WRK_LINE = re.compile(r"BENCH " + " ".join(f"{key}=(\\d+)" for key in (
    "requests", "duration_us", "p50", "p90", "p99", "connect", "read", "write", "status", "timeout"
)))  # fmt: skip

# tool -> Debian package
PACKAGES = {"wrk": "wrk", "h2load": "nghttp2-client"}


@dataclass(frozen=True)
class LoadResult:
    """One load run: completed requests per second, latency percentiles (ms), counts, measured seconds.

    ``requests`` counts completed requests, failed ones included; ``failures`` those the generator saw fail.
    """

    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    failures: int
    duration_s: float


def ensure_tools(*tools: str) -> list[str]:
    """Install the Debian packages of ``tools`` (default: wrk and h2load) that are missing, with apt-get.

    Returns the tools still missing afterwards: all of them when not root or apt-get is absent (nothing is
    tried then), or when the install failed (its output is left on stderr).
    """
    wanted = tools or tuple(PACKAGES)
    missing = [tool for tool in wanted if shutil.which(tool) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = [PACKAGES[tool] for tool in missing]
        command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, check=False)
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)
    return [tool for tool in wanted if shutil.which(tool) is None]


def tool_version(tool: str) -> str:
    """``tool``'s own version line, e.g. ``wrk debian/4.1.0-3+b2`` or ``h2load nghttp2/1.52.0``."""
    flag = "-v" if tool == "wrk" else "--version"
    out = subprocess.run([tool, flag], capture_output=True, text=True, check=False, timeout=10)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else tool


def run_wrk(
    url: str, body: bytes, header_length: int | None, *, concurrency: int, seconds: float, threads: int = 1
) -> LoadResult:
    """wrk with ``threads`` threads and ``concurrency`` connections for ``seconds`` (whole seconds: wrk's
    unit); ``header_length`` is the binary extension's JSON length, None for a JSON body."""
    with tempfile.TemporaryDirectory() as scratch:
        body_path, lua = Path(scratch) / "body.bin", Path(scratch) / "post.lua"
        body_path.write_bytes(body)
        lua.write_text(_LUA)
        env = {
            "BENCH_BODY": str(body_path),
            "BENCH_HEADER_LENGTH": "" if header_length is None else str(header_length),
            "BENCH_CONTENT_TYPE": "application/json" if header_length is None else "application/octet-stream",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        command = [
            "wrk", f"-t{min(threads, concurrency)}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
            "--timeout", "60s", "-s", str(lua), url,
        ]  # fmt: skip
        out = subprocess.run(
            command, capture_output=True, text=True, env=env, check=False, timeout=seconds + 90
        )
    match = _WRK_LINE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[-500:]}")
    requests, duration_us, p50, p90, p99, *errors = (int(v) for v in match.groups())
    duration = duration_us / 1e6
    return LoadResult(
        requests / duration, p50 / 1000, p90 / 1000, p99 / 1000, requests, sum(errors), duration
    )


def run_h2load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    seconds: float,
    streams: int = 1,
    warm_up_s: float = 0.5,
    threads: int = 1,
) -> LoadResult:
    """h2load for ``seconds`` after ``warm_up_s`` of warm-up (not logged), ``concurrency`` requests in
    flight; percentiles from its per-request log.

    ``threads`` native threads share the connections.
    ``streams`` = 1: ``concurrency`` connections of one stream each (one channel per client thread). Larger:
    ``concurrency // streams`` connections carrying ``streams`` concurrent streams each (clients sharing a
    channel, as ``tritonclient``'s cached channels do).
    """
    connections = max(1, concurrency // streams)
    with tempfile.TemporaryDirectory() as scratch:
        body_path, log = Path(scratch) / "body.bin", Path(scratch) / "requests.tsv"
        body_path.write_bytes(body)
        out = subprocess.run(
            [
                "h2load", f"-t{min(threads, connections)}", f"-c{connections}", f"-m{streams}",
                f"-D{seconds:g}",
                *([f"--warm-up-time={warm_up_s * 1000:.0f}ms"] if warm_up_s > 0 else []),
                "-d", str(body_path), "-H", "content-type: application/grpc", "-H", "te: trailers",
                f"--log-file={log}", url,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 90,
        )  # fmt: skip
        rows = (
            [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
            if log.exists()
            else []
        )
    if out.returncode != 0:
        raise RuntimeError(
            f"h2load failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[-500:]}"
        )
    durations = sorted(int(r[2]) / 1000 for r in rows)
    failures = sum(1 for r in rows if r[1] != "200")
    starts = [int(r[0]) for r in rows]
    # The logged requests' span (first start to last end), or the asked duration when too few were logged.
    span = (
        (max(s + int(r[2]) for s, r in zip(starts, rows, strict=True)) - min(starts)) / 1e6
        if len(rows) > 1
        else 0.0
    )
    duration = span if span > 0.5 * seconds else seconds
    return LoadResult(
        len(rows) / duration,
        percentile(durations, 50),
        percentile(durations, 90),
        percentile(durations, 99),
        len(rows),
        failures,
        duration,
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    """The nearest-rank ``pct`` percentile of ascending ``sorted_values`` (nan when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]
