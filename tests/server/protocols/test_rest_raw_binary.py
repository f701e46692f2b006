"""Triton's raw binary request: ``Inference-Header-Content-Length: 0`` and a body that is one tensor's bytes.

Against the shared test server with httpx (tritonclient never sends one; curl users do), the reply parsed by
tritonclient's own reader; and the shape rules on :func:`decode_raw_binary_request` directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from modelport.server.errors import InvalidInput
from modelport.server.inference import TensorSpec
from modelport.server.protocols.rest_codec import decode_raw_binary_request

from tests.helpers.server_process import ServerProcess
from tests.server.cases import raw

_RAW = {"Inference-Header-Content-Length": "0"}


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30.0) as client:
        yield client


def _outputs(response: httpx.Response) -> httpclient.InferResult:
    assert response.status_code == 200, response.text
    header_length = int(response.headers["Inference-Header-Content-Length"])  # every output is binary
    return httpclient.InferResult.from_response_body(response.content, header_length=header_length)


def test_a_raw_tensor_runs_as_a_batch_of_one(http: httpx.Client) -> None:
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    result = _outputs(http.post("/v2/models/case_fp32/infer", content=raw(x), headers=_RAW))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)


def test_a_raw_bytes_element_is_the_whole_body(http: httpx.Client) -> None:
    text = "Grüße, raw body".encode()
    result = _outputs(http.post("/v2/models/case_text/infer", content=text, headers=_RAW))
    assert result.as_numpy("OUTPUT0").tolist() == [text]


def test_a_wrong_byte_count_is_refused_naming_the_tensor(http: httpx.Client) -> None:
    response = http.post("/v2/models/case_fp32/infer", content=b"\0" * 12, headers=_RAW)
    assert response.status_code == 400
    assert "tensor 'INPUT0': FP32 shape [1, 4] needs 16 bytes, got 12" in response.json()["error"]


def test_a_model_with_several_inputs_is_refused_naming_them(http: httpx.Client) -> None:
    response = http.post("/v2/models/simple/infer", content=b"\0" * 12, headers=_RAW)
    assert response.status_code == 400
    assert "model 'simple' has 2 inputs (INPUT0, INPUT1)" in response.json()["error"]


def test_an_unknown_model_is_refused_as_for_any_infer(http: httpx.Client) -> None:
    response = http.post("/v2/models/nope/infer", content=b"\0" * 4, headers=_RAW)
    assert response.status_code == 400  # as Triton answers an infer for a model it does not have
    assert "unknown model: 'nope' is not found" in response.json()["error"]


def _decode(body: bytes, shape: tuple[int, ...], datatype: str = "FP32", batching: bool = True) -> np.ndarray:
    spec = TensorSpec("x", datatype, shape)
    request, output_format = decode_raw_binary_request(
        body, spec, batching=batching, model_name="m", model_version="", max_bytes=1 << 20
    )
    assert output_format.binary_default
    return request.inputs["x"]


def test_one_variable_dimension_follows_from_the_byte_count() -> None:
    assert _decode(b"\0" * 48, (-1, -1, 3)).shape == (1, 4, 3)
    assert _decode(b"\0" * 8, (-1,), datatype="INT64").shape == (1,)
    assert _decode(b"\0" * 24, (2, 3), batching=False).shape == (2, 3)


def test_shapes_a_raw_body_cannot_tell_are_refused() -> None:
    with pytest.raises(InvalidInput, match="more than one variable dimension"):
        _decode(b"\0" * 48, (-1, -1, -1))
    with pytest.raises(InvalidInput, match="not a whole number of 12-byte steps"):
        _decode(b"\0" * 40, (-1, -1, 3))
    with pytest.raises(InvalidInput, match="carries one BYTES element"):
        _decode(b"abc", (-1, 2), datatype="BYTES")
