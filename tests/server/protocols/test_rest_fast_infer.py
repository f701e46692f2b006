"""The REST fast path (``rest_fast_infer``): infer requests answered by the HTTP protocol past ASGI, with
the ASGI route's answers, order and connection handling.

One in-process server (a uvicorn listener on 127.0.0.1 with ``limited_protocol(..., fast_infer=...)``, the
REST app, the real data plane and worker processes, in a thread of its own) so a test can read
``FastInfer.served`` and see which path answered. The same request sent with a percent-encoded model name
takes the ASGI route: the two answers are compared. Real clients only (tritonclient.http, httpx, raw
sockets for pipelining and ``Expect: 100-continue``).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
import uvicorn
import uvloop
from modelport.server.app import make_executor
from modelport.server.dataplane import DataPlane
from modelport.server.observability.metrics import ServerMetrics
from modelport.server.protocols.http_limits import ConnectionBudget, HttpLimits
from modelport.server.protocols.http_protocol import limited_protocol
from modelport.server.protocols.rest_api import create_rest_app
from modelport.server.protocols.rest_fast_infer import FastInfer
from modelport.server.repository.folders import Repository
from modelport.server.repository.model_manager import ModelManager
from modelport.server.settings import ServerSettings

from tests.helpers.onnx_models import add_sub_model, write_model

LIMIT = 1 << 20
_LIMITS = HttpLimits(
    max_header_bytes=16384,
    max_url_bytes=8192,
    header_timeout=10.0,
    body_timeout=10.0,
    body_min_rate=1024.0,
    keep_alive_timeout=30.0,
)


@dataclass
class InProcessServer:
    port: int
    fast: FastInfer
    dataplane: DataPlane

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"


async def _serve(repository: Path, started: asyncio.Future[InProcessServer], stop: asyncio.Event) -> None:
    settings = ServerSettings(repository=repository, http_max_body_bytes=LIMIT)
    metrics = ServerMetrics()
    manager = ModelManager(
        repository=Repository(repository),
        settings=settings,
        make_executor=functools.partial(make_executor, metrics=metrics),
        metrics=metrics,
    )
    await manager.start()
    dataplane = DataPlane(manager=manager, settings=settings, metrics=metrics)
    dataplane.set_ready(True)
    fast = FastInfer(dataplane, limit=LIMIT)
    budget = ConnectionBudget(64, _LIMITS)
    config = uvicorn.Config(
        create_rest_app(dataplane, settings),
        lifespan="off",
        log_config=None,
        access_log=False,
        http=limited_protocol(budget, fast_infer=fast),
        ws="none",
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    started.set_result(InProcessServer(sock.getsockname()[1], fast, dataplane))
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await task
        budget.close()
        await manager.close(drain_timeout=5)
        sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    repository = tmp_path_factory.mktemp("fast-infer")
    write_model(repository, "simple", add_sub_model("FP32", (-1, 4)), config={"max_batch_size": 8})
    loop = uvloop.new_event_loop()
    started: asyncio.Future[InProcessServer] = loop.create_future()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(_serve(repository, started, stop),), daemon=True
    )
    thread.start()
    ready = threading.Event()
    loop.call_soon_threadsafe(lambda: started.add_done_callback(lambda _: ready.set()))
    assert ready.wait(60), "the in-process server did not start"
    try:
        yield started.result()
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


@pytest.fixture
def http(server: InProcessServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.url}", timeout=30.0) as client:
        yield client


def _inputs(binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for name, value in (("INPUT0", 3.0), ("INPUT1", 1.0)):
        tensor = httpclient.InferInput(name, [2, 4], "FP32")
        tensor.set_data_from_numpy(np.full((2, 4), value, np.float32), binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_is_answered_by_the_fast_path(server: InProcessServer, binary: bool) -> None:
    client = httpclient.InferenceServerClient(server.url)
    try:
        before = server.fast.served
        outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("OUTPUT0", "OUTPUT1")]
        result = client.infer("simple", _inputs(binary), outputs=outputs, request_id="fast-1")
        assert server.fast.served == before + 1
        assert result.get_response()["id"] == "fast-1"
        assert result.as_numpy("OUTPUT0").tolist() == [[4.0] * 4] * 2
        assert result.as_numpy("OUTPUT1").tolist() == [[2.0] * 4] * 2
        client.infer("simple", _inputs(binary), model_version="1")
        assert server.fast.served == before + 2
    finally:
        client.close()


def _json_body(**extra: object) -> bytes:
    tensors = [
        {"name": name, "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}
        for name in ("INPUT0", "INPUT1")
    ]
    return orjson.dumps({"inputs": tensors, **extra})


_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def _same_answer(http: httpx.Client, server: InProcessServer, body: bytes, **headers: str) -> httpx.Response:
    """Send ``body`` to the fast path and (the model name percent-encoded) to the ASGI route; assert the
    same status, headers that matter and body (generated request ids aside); the fast path's answer."""
    served = server.fast.served
    fast = http.post("/v2/models/simple/infer", content=body, headers=headers)
    assert server.fast.served == served + 1
    slow = http.post("/v2/models/simpl%65/infer", content=body, headers=headers)
    assert server.fast.served == served + 1, "a percent-encoded path is the ASGI route's"
    assert fast.status_code == slow.status_code
    for name in ("content-type", "inference-header-content-length", "content-encoding", "connection"):
        assert fast.headers.get(name) == slow.headers.get(name), name
    assert _REQUEST_ID.sub("ID", fast.text) == _REQUEST_ID.sub("ID", slow.text)
    return fast


def test_a_success_is_the_same_on_both_paths(http: httpx.Client, server: InProcessServer) -> None:
    response = _same_answer(http, server, _json_body(id="same"))
    assert response.status_code == 200 and response.json()["outputs"][0]["data"] == [2.0, 4.0, 6.0, 8.0]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}]}), 400),
        (_json_body(outputs=[{"name": "NOPE"}]), 400),
        (_json_body(parameters={"timeout": -1}), 400),
        (b"x" * (LIMIT + 1), 413),
    ],
    ids=["bad-json", "no-data", "unknown-output", "bad-timeout", "too-large"],
)
def test_errors_are_the_same_on_both_paths(
    http: httpx.Client, server: InProcessServer, body: bytes, status: int
) -> None:
    response = _same_answer(http, server, body)
    assert response.status_code == status, response.text
    assert "request id" in response.json()["error"]


def test_gzip_bodies_and_answers_are_the_same_on_both_paths(
    http: httpx.Client, server: InProcessServer
) -> None:
    response = _same_answer(
        http, server, gzip.compress(_json_body()), **{"Content-Encoding": "gzip", "Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert response.json()["outputs"][1]["data"] == [0.0] * 4


def test_an_unknown_model_is_refused_by_the_fast_path(http: httpx.Client, server: InProcessServer) -> None:
    served = server.fast.served
    response = http.post("/v2/models/nosuch/infer", content=_json_body())
    assert response.status_code == 400 and "unknown model" in response.json()["error"]
    assert server.fast.served == served + 1


def test_statistics_count_fast_path_requests(http: httpx.Client, server: InProcessServer) -> None:
    def successes() -> int:
        count: int = server.dataplane.model_statistics("simple")[0]["inference_stats"]["success"]["count"]
        return count

    before = successes()
    for _ in range(3):
        assert http.post("/v2/models/simple/infer", content=_json_body()).status_code == 200
    assert http.post("/v2/models/simple/infer", content=b"{").status_code == 400
    assert successes() == before + 3


def _raw_request(body: bytes, *extra: bytes, path: bytes = b"/v2/models/simple/infer") -> bytes:
    head = [b"POST " + path + b" HTTP/1.1", b"Host: test", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` responses (status, body) read off ``sock`` (every one has a Content-Length)."""
    buffer, answers = b"", list[tuple[int, bytes]]()
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} responses"
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 100:
            answers.append((100, b""))
            continue
        length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]  # always sent
        while len(buffer) < length:
            buffer += sock.recv(65536)
        answers.append((status, buffer[:length]))
        buffer = buffer[length:]
    return answers


def test_pipelined_requests_are_answered_in_order(server: InProcessServer) -> None:
    first = _json_body(id="first")
    health = b"GET /v2/health/ready HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_raw_request(first) + health + _raw_request(b"{") + _raw_request(_json_body(id="last")))
        answers = _read_responses(sock, 4)
    assert [status for status, _ in answers] == [200, 200, 400, 200]
    assert orjson.loads(answers[0][1])["id"] == "first"
    assert b"outputs" not in answers[1][1], "the health probe's answer is second"
    assert orjson.loads(answers[3][1])["id"] == "last"


def test_expect_100_continue_and_connection_close(server: InProcessServer) -> None:
    body = _json_body(id="continued")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        request = _raw_request(body, b"Expect: 100-continue", b"Connection: close")
        sock.sendall(request[: -len(body)])
        assert _read_responses(sock, 1) == [(100, b"")]
        sock.sendall(body)
        [(status, answer)] = _read_responses(sock, 1)
        assert status == 200 and orjson.loads(answer)["id"] == "continued"
        assert sock.recv(1) == b"", "Connection: close is honoured"


def test_a_body_sent_in_pieces_and_chunked(server: InProcessServer) -> None:
    body = _json_body(id="pieces")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_raw_request(body)[:-10])
        sock.sendall(body[-10:])
        sock.sendall(head + chunked[:7])
        sock.sendall(chunked[7:])
        answers = _read_responses(sock, 2)
    assert [orjson.loads(answer)["id"] for _, answer in answers] == ["pieces", "pieces"]
