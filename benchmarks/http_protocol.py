"""What the connection limits cost per request: uvicorn's httptools protocol against the limited one.

    .venv/bin/python -m benchmarks.http_protocol [--requests 20000] [--repeats 9]

Feeds the same keep-alive requests (a GET of ``/v2/health/ready`` and a 0.6 KB JSON POST) through each
protocol over an in-memory transport, to an ASGI app that reads the body and answers 2 bytes, and prints the
median CPU time (``process_time``, so other processes on a shared machine count less) per request. Runs
alternate between the two, so drift hits both. Only the listener's protocol is measured: no sockets, no
FastAPI, no inference. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
import uvloop
from modelport.server.protocols.http_limits import ConnectionBudget, HttpLimits
from modelport.server.protocols.http_protocol import limited_protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

_BODY = json.dumps(
    {"inputs": [{"name": "features", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
).encode()
REQUESTS = {
    "GET /v2/health/ready": b"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    "POST 0.6 KB JSON": b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY),
}


async def _app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Transport(asyncio.Transport):
    """Swallows what is written; never closes by itself."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _per_request(protocol_class: type[HttpToolsProtocol], request: bytes, count: int) -> float:
    """CPU microseconds per request of ``count`` keep-alive requests through one connection."""
    config = uvicorn.Config(_app, lifespan="off", log_config=None, access_log=False)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(count):
        protocol.data_received(request)
        await asyncio.sleep(0)  # the application's task runs
        await asyncio.sleep(0)
    took = time.process_time() - started
    if transport.closed:
        raise RuntimeError("the protocol closed the connection: the benchmark is broken")
    return took / count * 1e6


async def _main(requests: int, repeats: int) -> None:
    limits = HttpLimits(
        max_header_bytes=32 * 1024,
        max_url_bytes=8 * 1024,
        header_timeout=10.0,
        body_timeout=30.0,
        body_min_rate=64 * 1024,
        keep_alive_timeout=5.0,
    )
    budget = ConnectionBudget(2048, limits)
    variants: dict[str, type[HttpToolsProtocol]] = {
        "uvicorn httptools": HttpToolsProtocol,
        "limited": limited_protocol(budget),
    }
    print(f"| request | {' | '.join(variants)} | added |")
    print(f"|---|{'---|' * len(variants)}---|")
    for name, request in REQUESTS.items():
        times: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(repeats):
            for variant, protocol_class in variants.items():
                times[variant].append(await _per_request(protocol_class, request, requests))
        medians = [statistics.median(values) for values in times.values()]
        cells = " | ".join(f"{median:.1f} us" for median in medians)
        print(f"| {name} | {cells} | {medians[1] - medians[0]:+.1f} us |")
    budget.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    uvloop.run(_main(args.requests, args.repeats))


if __name__ == "__main__":
    main()
