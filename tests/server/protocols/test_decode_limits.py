"""Memory and time per request are bounded, and client errors are 400 / INVALID_ARGUMENT (issue 12, item 3).

One server of its own, with the body and message limits at 16 MiB so that a *maximum-size* request is
cheap enough for a shared 2-core machine: a request for an unknown model is refused before its tensors are
decoded, a maximum-size BYTES request is decoded while ``/v2/health/ready`` keeps answering within 100 ms,
and every malformed shape, header or id gets a message that says what to fix. Real clients only: httpx with
hand-built bodies, tritonclient, grpcio with hand-built ``ModelInferRequest`` messages.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.health_probes import assert_answered_quickly, probe_while
from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import empty_elements, mixed_elements

LIMIT = 16 * 2**20
_GRPC_OPTIONS = [("grpc.max_send_message_length", 2 * LIMIT), ("grpc.max_receive_message_length", 2 * LIMIT)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repository = tmp_path_factory.mktemp("decode-limits")
    write_model(repository, "fp32", identity_model("FP32", (-1, 4)), config={"max_batch_size": 8})
    write_model(repository, "text", identity_model("BYTES", (-1, 4)), config={"max_batch_size": 8})
    write_model(repository, "fp32_whole", identity_model("FP32", (-1, 4)), config={"max_batch_size": 0})
    with start_server(
        repository, "--http-max-body-bytes", str(LIMIT), "--grpc-max-message-bytes", str(LIMIT)
    ) as process:
        yield process


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=120.0) as client:
        yield client


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[Any]:
    with grpc.insecure_channel(server.grpc_url, options=_GRPC_OPTIONS) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped


def _binary_request(name: str, datatype: str, shape: list[int], blob: bytes) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    )
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


def _grpc_bytes_request(model: str, count: int, blob: bytes, request_id: str = "") -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model, id=request_id)
    message.inputs.add(name="INPUT0", datatype="BYTES", shape=[count])
    message.raw_input_contents.append(blob)
    return message


def _error(response: httpx.Response) -> str:
    message: str = response.json()["error"]
    return message


# ----- an unknown model is refused before decoding ------------------------------------------------------


def _timed_post(http: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    response = http.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    return time.perf_counter() - started, _error(response)


def test_rest_unknown_model_or_version_is_refused_before_its_tensors_are_decoded(http: httpx.Client) -> None:
    count, blob = empty_elements(LIMIT - 4096)
    body, headers = _binary_request("INPUT0", "BYTES", [count], blob)
    # Decoded (4 million elements), then refused by the data plane: FP32 is expected.
    decoded, message = _timed_post(http, "/v2/models/fp32/infer", body, headers)
    assert "datatype BYTES, expected FP32" in message
    for path, expected in (
        ("/v2/models/nosuch/infer", "unknown model: 'nosuch' is not found"),
        ("/v2/models/fp32/versions/9/infer", "'fp32' version 9 is not found"),
    ):
        unknown, message = _timed_post(http, path, body, headers)
        assert expected in message
        # Reading the body is all an unknown model costs; decoding 4 million elements costs more.
        assert unknown < decoded / 3, f"{path} answered in {unknown:.2f} s, decoding took {decoded:.2f} s"


def test_grpc_unknown_model_is_refused_before_its_tensors_are_decoded(stub: Any) -> None:
    count, blob = empty_elements(LIMIT - 4096)
    timings = {}
    for model, expected in (("fp32", "datatype BYTES, expected FP32"), ("nosuch", "unknown model")):
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as failure:
            stub.ModelInfer(_grpc_bytes_request(model, count, blob), timeout=120)
        timings[model] = time.perf_counter() - started
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in failure.value.details()
    assert timings["nosuch"] < timings["fp32"] / 3, timings


# ----- the server keeps answering while a maximum-size request is decoded -------------------------------


@pytest.mark.parametrize("elements", [empty_elements, mixed_elements], ids=["empty", "mixed"])
def test_health_answers_while_a_max_size_rest_bytes_request_is_decoded(
    server: ServerProcess, http: httpx.Client, elements: Any
) -> None:
    count, blob = elements(LIMIT - 4096)
    body, headers = _binary_request("INPUT0", "BYTES", [count], blob)

    def send() -> None:
        response = http.post("/v2/models/fp32/infer", content=body, headers=headers)
        assert response.status_code == 400 and "expected FP32" in _error(response), response.text

    assert_answered_quickly(probe_while(send, http_url=server.http_url))


@pytest.mark.parametrize("kind", ["numbers", "strings"])
def test_health_answers_while_a_max_size_rest_json_request_is_decoded(
    server: ServerProcess, http: httpx.Client, kind: str
) -> None:
    """orjson parses a document in one call that holds the GIL: a maximum-size JSON body's lists are parsed
    in pieces, so the loop is not frozen for the whole parse."""
    count = (LIMIT - 4096) // 5  # "0.25," and "ab", are 5 bytes a value
    data: list[Any] = [0.25] * count if kind == "numbers" else ["ab"] * count
    datatype = "FP32" if kind == "numbers" else "BYTES"
    body = orjson.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": datatype, "shape": [count], "data": data}]}
    )
    model, expected = ("text", "expected BYTES") if kind == "numbers" else ("fp32", "expected FP32")

    def send() -> None:
        response = http.post(f"/v2/models/{model}/infer", content=body)
        assert response.status_code == 400 and expected in _error(response), response.text

    assert_answered_quickly(probe_while(send, http_url=server.http_url))


def test_health_answers_while_a_max_size_json_response_is_written(
    server: ServerProcess, http: httpx.Client
) -> None:
    """The answer to a maximum-size request, asked for as JSON (~2.5 bytes of text per byte of FP32), is
    written off the loop and in pieces."""
    rows = (LIMIT - 4096) // 16
    values = np.random.default_rng(0).standard_normal((rows, 4)).astype(np.float32)
    body, headers = _binary_request("INPUT0", "FP32", [rows, 4], values.tobytes())
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(http.post("/v2/models/fp32_whole/infer", content=body, headers=headers))

    assert_answered_quickly(probe_while(send, http_url=server.http_url))
    assert answers[0].status_code == 200, answers[0].text
    data = answers[0].json()["outputs"][0]["data"]
    assert np.array_equal(np.asarray(data, np.float32).reshape(rows, 4), values)


def test_bytes_of_every_length_round_trip(server: ServerProcess) -> None:
    """The vectorised BYTES decoder and encoder keep every byte (NULs, empty and long elements)."""
    values = np.array(
        [[b"", b"\x00", b"a\x00b", b"x" * 70_000], [b"\xc3\xa9t\xc3\xa9", b"\x00\x00", b"z", b""]],
        dtype=np.object_,
    )
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        tensor = httpclient.InferInput("INPUT0", [2, 4], "BYTES")
        tensor.set_data_from_numpy(values, binary_data=True)
        output = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
        result = client.infer("text", [tensor], outputs=[output]).as_numpy("OUTPUT0")
    finally:
        client.close()
    assert result is not None and result.tolist() == values.tolist()


# ----- client errors are 400 with a message that says what to fix ---------------------------------------


# b"\xb2" is '²' in latin-1, as the server reads header bytes: str.isdigit() takes it, int() does not.
@pytest.mark.parametrize(
    "declared",
    [b"\xb2", "\u0661\u0662".encode(), b"-5", b"12abc", b"9" * 30],
    ids=["superscript-2", "arabic-digits", "negative", "trailing", "30-digits"],
)
def test_inference_header_length_must_be_ascii_digits(http: httpx.Client, declared: bytes) -> None:
    body, _ = _binary_request("INPUT0", "FP32", [1, 4], np.ones((1, 4), np.float32).tobytes())
    response = http.post(
        "/v2/models/fp32/infer",
        content=body,
        headers={b"Inference-Header-Content-Length": declared},
    )
    assert response.status_code == 400, response.text
    assert "Inference-Header-Content-Length" in _error(response) and "ASCII digits" in _error(response)


def _json_infer(
    http: httpx.Client, model: str, shape: list[Any], data: list[Any], **extra: Any
) -> httpx.Response:
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": shape, "data": data}], **extra}
    return http.post(f"/v2/models/{model}/infer", content=orjson.dumps(body))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ([1] * 65, "65 dimensions; at most 64"),
        ([2**40, 8], "more than the limit"),
        ([2**62, 2**62], "more than 2**63-1 elements"),
        ([0, 2**63], "non-negative integer below 2**63"),
        ([-1, 4], "non-negative integer below 2**63"),
        ([1.5, 4], "non-negative integer below 2**63"),
        (["4", 1], "non-negative integer below 2**63"),
    ],
    ids=["rank-65", "2^40x8", "count-overflow", "dim-2^63", "negative", "float", "string"],
)
def test_absurd_shapes_are_400(http: httpx.Client, shape: list[Any], expected: str) -> None:
    response = _json_infer(http, "fp32", shape, [1.0, 2.0, 3.0, 4.0])
    assert response.status_code == 400, response.text
    assert expected in _error(response)


def test_rank_above_64_for_an_unknown_model_is_400(http: httpx.Client) -> None:
    response = _json_infer(http, "nosuch", [1] * 100, [1.0])
    assert response.status_code == 400 and "unknown model" in _error(response), response.text


@pytest.mark.parametrize(
    ("datatype", "shape", "blob", "expected"),
    [
        ("FP32", [1, 4], b"\x00" * 12, "needs 16 bytes, got 12"),
        ("BYTES", [1_000_000], b"\x00" * 8, "need at least 4000000 bytes"),
        ("BYTES", [1], struct.pack("<I", 2**32 - 1) + b"ab", "declares 4294967295 bytes"),
        ("FP8", [1, 4], b"\x00" * 4, "unknown datatype 'FP8'"),
    ],
    ids=["fp32-short", "bytes-count", "bytes-length", "unknown-datatype"],
)
def test_shape_and_byte_count_mismatches_are_400(
    http: httpx.Client, datatype: str, shape: list[int], blob: bytes, expected: str
) -> None:
    body, headers = _binary_request("INPUT0", datatype, shape, blob)
    response = http.post("/v2/models/fp32/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert expected in _error(response)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [([1] * 65, "at most 64"), ([2**62, 4], "more than 2**63-1 elements"), ([-3, 4], "non-negative")],
    ids=["rank-65", "count-overflow", "negative"],
)
def test_grpc_absurd_shapes_are_invalid_argument(stub: Any, shape: list[int], expected: str) -> None:
    message = pb.ModelInferRequest(model_name="fp32")
    message.inputs.add(name="INPUT0", datatype="FP32", shape=shape)
    message.raw_input_contents.append(b"\x00" * 16)
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(message, timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in failure.value.details()


def test_grpc_typed_contents_beyond_the_shape_are_refused(stub: Any) -> None:
    message = pb.ModelInferRequest(model_name="fp32")
    tensor = message.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([1.0] * 1000)
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(message, timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 4 values, got 1000" in failure.value.details()


# ----- request ids are bounded ---------------------------------------------------------------------------


def test_a_request_id_of_128_printable_characters_is_echoed(http: httpx.Client) -> None:
    request_id = "r" * 127 + "~"
    response = _json_infer(http, "fp32", [1, 4], [1.0, 2.0, 3.0, 4.0], id=request_id)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["r" * 129, "x" * 16384, "line\nbreak", "caf\u00e9"],
    ids=["129", "16k", "newline", "non-ascii"],
)
def test_a_long_or_odd_request_id_is_refused_without_being_echoed(
    http: httpx.Client, request_id: str
) -> None:
    response = _json_infer(http, "fp32", [1, 4], [1.0, 2.0, 3.0, 4.0], id=request_id)
    assert response.status_code == 400, response.text
    message = _error(response)
    assert "at most 128 printable ASCII characters" in message
    assert request_id not in message and len(message) < 400


def test_a_16_kib_grpc_request_id_gets_a_deliverable_error(stub: Any) -> None:
    message = pb.ModelInferRequest(model_name="fp32", id="i" * 16384)
    message.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    message.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(message, timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 128 printable ASCII characters" in failure.value.details()
    assert len(failure.value.details()) < 400


def test_a_grpc_request_id_is_echoed(stub: Any) -> None:
    message = pb.ModelInferRequest(model_name="fp32", id="grpc-id-1")
    message.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    message.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    answer = stub.ModelInfer(message, timeout=30)
    assert answer.id == "grpc-id-1"
    assert np.frombuffer(answer.raw_output_contents[0], np.float32).tolist() == [1.0] * 4


def test_the_server_still_serves(http: httpx.Client) -> None:
    assert http.get("/v2/health/ready").status_code == 200
    response = _json_infer(http, "fp32", [1, 4], [1.0, 2.0, 3.0, 4.0])
    assert response.status_code == 200 and response.json()["outputs"][0]["data"] == [1.0, 2.0, 3.0, 4.0]
