"""Protocol floors: the cheapest server each protocol stack allows, driven by the same load generators.

    python -m benchmarks.floors grpc|rest PORT_FILE

serves one endpoint that answers every request with a fixed body and does nothing else, and writes the bound
port to ``PORT_FILE``:

- ``grpc``: ``grpc.aio`` on uvloop (as the server runs it), one unary method at the ModelInfer path, bytes in
  and out (no protobuf parsing); the handler awaits a future resolved by the loop, as a real handler waits
  for its batch;
- ``rest``: uvicorn (httptools, uvloop) with a bare ASGI app that reads the body and answers 200.

Whatever the real server spends beyond these is its own work (parsing, checks, batching, the round trip to a
worker, recording); the floor is the most a single event loop with that stack can answer on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["floor_server"]

_ANSWER = b"\x0a\x03mlp\x12\x011"  # a ModelInferResponse: model_name "mlp", model_version "1"
_SERVICE = "inference.GRPCInferenceService"


def _resolve(waiting: asyncio.Future[bytes]) -> None:
    if not waiting.done():  # the RPC may have been cancelled meanwhile (the client went away)
        waiting.set_result(_ANSWER)


async def _grpc(port_file: Path) -> None:
    import grpc

    loop = asyncio.get_running_loop()

    async def answer(request: bytes, context: Any) -> bytes:
        waiting: asyncio.Future[bytes] = loop.create_future()
        loop.call_soon(_resolve, waiting)
        return await waiting

    handler = grpc.unary_unary_rpc_method_handler(answer)
    server = grpc.aio.server()
    service = grpc.method_handlers_generic_handler(_SERVICE, {"ModelInfer": handler})
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


async def _rest(port_file: Path) -> None:
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, http="httptools")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    port_file.write_text(str(sock.getsockname()[1]))
    await serving


@contextlib.contextmanager
def floor_server(protocol: str) -> Iterator[str]:
    """Run the floor server for ``protocol`` (``grpc`` or ``rest``) in a subprocess; yields ``host:port``."""
    with tempfile.TemporaryDirectory() as scratch:
        port_file = Path(scratch) / "port"
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.floors", protocol, str(port_file)],
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {protocol} floor server did not start")
                time.sleep(0.05)
            yield f"127.0.0.1:{port_file.read_text()}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def main() -> None:
    import uvloop

    protocol, port_file = sys.argv[1], Path(sys.argv[2])
    run = {"grpc": _grpc, "rest": _rest}[protocol]
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run(port_file))


if __name__ == "__main__":
    main()
