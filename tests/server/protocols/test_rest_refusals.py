"""Every refusal over REST: the shared protocol-neutral table, then what only a raw HTTP body can get wrong.

Each answer must carry the status of Triton's mapping and ``{"error": ...}`` naming the tensor and what was
expected; the server keeps serving afterwards.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from modelport.server.protocols.rest_api import HTTP_STATUS

from tests.helpers.server_process import ServerProcess
from tests.server.cases import REFUSALS, RefusalCase, raw

_ONES = raw(np.ones((1, 4), dtype=np.float32))


def rest_request(case: RefusalCase) -> tuple[str, bytes, dict[str, str]]:
    """The case as a REST infer call: path, body and headers (binary extension for raw data)."""
    header: dict[str, Any] = {"inputs": []}
    blobs: list[bytes] = []
    for tensor in case.inputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if tensor.data is not None:
            entry["parameters"] = {"binary_data_size": len(tensor.data)}
            blobs.append(tensor.data)
        else:
            entry["data"] = list(tensor.values or [])
        header["inputs"].append(entry)
    if case.outputs is not None:
        header["outputs"] = [{"name": name} for name in case.outputs]
    json_part = orjson.dumps(header)
    headers = {"Inference-Header-Content-Length": str(len(json_part))} if blobs else {}
    version = f"/versions/{case.version}" if case.version else ""
    return f"/v2/models/{case.model}{version}/infer", json_part + b"".join(blobs), headers


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30.0) as client:
        yield client  # closed after the module: an unclosed socket warns, and warnings are errors


@pytest.mark.parametrize("case", REFUSALS, ids=[c.id for c in REFUSALS])
def test_refusal_table(http: httpx.Client, case: RefusalCase) -> None:
    path, body, headers = rest_request(case)
    response = http.post(path, content=body, headers=headers)
    assert response.status_code == HTTP_STATUS[case.code], response.text
    assert case.message in response.json()["error"]


def _infer_body(inputs: list[dict[str, Any]], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


_FP32_JSON = {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}

# (id, body, extra headers, expected status, message fragment)
RAW_BODIES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("malformed-json", b'{"inputs": [', {}, 400, "not valid JSON"),
    ("json-not-object", b"[1, 2]", {}, 400, "expected a JSON object"),
    ("no-inputs", b'{"outputs": []}', {}, 400, "'inputs' must be a list"),
    ("input-without-datatype", _infer_body([{"name": "INPUT0", "shape": [1, 4]}]), {}, 400, "'datatype'"),
    ("input-without-data", _infer_body([_FP32_JSON]), {}, 400, "give 'data'"),
    (
        "data-of-wrong-type",
        _infer_body([{**_FP32_JSON, "data": ["a", "b", "c", "d"]}]),
        {},
        400,
        "tensor 'INPUT0': data is not a rectangular array of FP32",
    ),
    (
        "ragged-data",
        _infer_body([{**_FP32_JSON, "data": [[1, 2, 3], [4]]}]),
        {},
        400,
        "tensor 'INPUT0': data is not a rectangular array",
    ),
    (
        "duplicate-input",
        _infer_body([{**_FP32_JSON, "data": [1, 2, 3, 4]}, {**_FP32_JSON, "data": [1, 2, 3, 4]}]),
        {},
        400,
        "input 'INPUT0' is given twice",
    ),
    (
        "header-length-beyond-body",
        _infer_body([{**_FP32_JSON, "data": [1, 2, 3, 4]}]),
        {"Inference-Header-Content-Length": "100000"},
        400,
        "Inference-Header-Content-Length 100000",
    ),
    (
        "header-length-not-a-number",
        _infer_body([{**_FP32_JSON, "data": [1, 2, 3, 4]}]),
        {"Inference-Header-Content-Length": "abc"},
        400,
        "is not a byte count",
    ),
    (
        "classification",
        _infer_body(
            [{**_FP32_JSON, "data": [1, 2, 3, 4]}],
            outputs=[{"name": "OUTPUT0", "parameters": {"classification": 2}}],
        ),
        {},
        400,
        "output 'OUTPUT0': the classification extension is not supported",
    ),
    ("bad-gzip", b"this is not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ("bad-deflate", b"this is not deflate", {"Content-Encoding": "deflate"}, 400, "not valid deflate"),
    ("unknown-encoding", b"{}", {"Content-Encoding": "br"}, 400, "Content-Encoding 'br' is not supported"),
    (
        "gzip-bomb",
        gzip.compress(b"\x00" * (65 * 2**20), compresslevel=9),
        {"Content-Encoding": "gzip"},
        413,
        "decompressed request body exceeds the limit",
    ),
]


def _binary_body(size_declared: int, blob: bytes) -> tuple[bytes, dict[str, str]]:
    header = _infer_body([{**_FP32_JSON, "parameters": {"binary_data_size": size_declared}}])
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [pytest.param(b, h, s, m, id=i) for i, b, h, s, m in RAW_BODIES],
)
def test_malformed_bodies(
    http: httpx.Client, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = http.post("/v2/models/case_fp32/infer", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_binary_size_past_the_end(http: httpx.Client) -> None:
    body, headers = _binary_body(32, _ONES)
    response = http.post("/v2/models/case_fp32/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert "binary_data_size 32 runs past the end" in response.json()["error"]


def test_bytes_after_the_last_tensor(http: httpx.Client) -> None:
    body, headers = _binary_body(16, _ONES + b"junk")
    response = http.post("/v2/models/case_fp32/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert "4 bytes after the last binary tensor" in response.json()["error"]


def test_oversized_body_gets_413(http: httpx.Client) -> None:
    body = b" " * (64 * 2**20 + 1)
    response = http.post("/v2/models/case_fp32/infer", content=body)
    assert response.status_code == 413
    assert "exceeds the limit of 67108864 bytes" in response.json()["error"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_accepted(http: httpx.Client, encoding: str) -> None:
    plain = _infer_body([{**_FP32_JSON, "data": [1, 2, 3, 4]}])
    body = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    response = http.post(
        "/v2/models/case_fp32/infer",
        content=body,
        headers={"Content-Encoding": encoding, "Accept-Encoding": encoding},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-encoding"] == encoding
    assert response.json()["outputs"][0]["data"] == [1.0, 2.0, 3.0, 4.0]  # httpx undid the encoding


def test_no_content_type_needed_and_json_reply(http: httpx.Client) -> None:
    response = http.post(
        "/v2/models/case_fp32/infer", content=_infer_body([{**_FP32_JSON, "data": [[1, 2, 3, 4]]}])
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["outputs"] == [
        {"name": "OUTPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}
    ]


def test_binary_reply_layout(http: httpx.Client) -> None:
    header = orjson.dumps(
        {
            "parameters": {"binary_data_output": True},
            "inputs": [{**_FP32_JSON, "parameters": {"binary_data_size": 16}}],
        }
    )
    response = http.post(
        "/v2/models/case_fp32/infer",
        content=header + _ONES,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    reply = orjson.loads(response.content[:length])
    assert reply["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert response.content[length:] == _ONES


def test_wrong_method_and_unknown_path(http: httpx.Client) -> None:
    response = http.get("/v2/models/case_fp32/infer")
    assert response.status_code == 405
    assert "Method Not Allowed" in response.json()["error"]
    response = http.get("/v2/nothing/here")
    assert response.status_code == 404
    assert response.json()["error"].startswith("Not Found")


def test_server_still_serves_after_refusals(http: httpx.Client) -> None:
    assert http.get("/v2/health/ready").status_code == 200
    response = http.post(
        "/v2/models/case_fp32/infer", content=_infer_body([{**_FP32_JSON, "data": [0, 0, 0, 1]}])
    )
    assert response.status_code == 200
