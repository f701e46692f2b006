"""ModelInfer over gRPC against the shared real server: tritonclient.grpc for the data paths, a raw stub of
our generated code for what the client cannot send (typed contents, malformed messages), and every refusal
of :mod:`tests.server.cases` — the same table the REST tests run.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from modelport.server.errors import ErrorCode
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import ALL_DATATYPES
from tests.helpers.scrape import scrape
from tests.helpers.server_process import ServerProcess
from tests.helpers.tensors import TYPED_FIELD, sample
from tests.server.cases import REFUSALS, RefusalCase, WireTensor, raw
from tests.server.conftest import ALL_TYPES

# What each ErrorCode must become on the wire (Triton's mapping), written independently of the server's table.
EXPECTED_STATUS = {
    ErrorCode.INVALID_ARG: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"


def infer_request(model: str, tensors: tuple[WireTensor, ...], *, version: str = "") -> pb.ModelInferRequest:
    """A ModelInfer message: ``data`` tensors go in raw_input_contents, ``values`` in typed contents."""
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    for tensor in tensors:
        entry = request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if tensor.values is not None:
            getattr(entry.contents, TYPED_FIELD[tensor.datatype]).extend(tensor.values)
        else:
            assert tensor.data is not None
            request.raw_input_contents.append(tensor.data)
    return request


def rpc_error(call: Any, *args: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=30)
    return caught.value


def test_every_datatype_round_trips_through_raw_contents(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    rows = 3
    sent = {datatype: sample(datatype, rows) for datatype in ALL_DATATYPES}
    inputs = []
    for datatype, data in sent.items():
        tensor = grpcclient.InferInput(f"INPUT_{datatype}", [rows, 4], datatype)
        tensor.set_data_from_numpy(data)  # tritonclient.grpc always sends raw_input_contents
        inputs.append(tensor)
    result = grpc_client.infer(ALL_TYPES, inputs, request_id="every-type")
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (ALL_TYPES, "1", "every-type")
    # The server always answers with raw_output_contents, one entry per output.
    assert len(response.raw_output_contents) == len(response.outputs) == len(ALL_DATATYPES)
    for datatype, data in sent.items():
        output = result.get_output(f"OUTPUT_{datatype}")
        assert output.datatype == datatype
        assert list(output.shape) == [rows, 4]
        answer = result.as_numpy(f"OUTPUT_{datatype}")
        assert answer is not None
        if datatype == "BYTES":
            assert answer.reshape(-1).tolist() == data.reshape(-1).tolist()
        else:
            assert answer.dtype == data.dtype, datatype
            np.testing.assert_array_equal(answer, data, err_msg=datatype)


def test_requested_outputs_only_and_in_the_requested_order(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, dtype=np.float32)
    inputs = [
        grpcclient.InferInput("INPUT0", [2, 3], "FP32"),
        grpcclient.InferInput("INPUT1", [2, 3], "FP32"),
    ]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    outputs = [grpcclient.InferRequestedOutput("OUTPUT1"), grpcclient.InferRequestedOutput("OUTPUT0")]
    result = grpc_client.infer("simple", inputs, outputs=outputs)
    assert [o.name for o in result.get_response().outputs] == ["OUTPUT1", "OUTPUT0"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    only = grpc_client.infer("simple", inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])
    assert [o.name for o in only.get_response().outputs] == ["OUTPUT0"]


def test_gzip_compressed_messages(grpc_client: grpcclient.InferenceServerClient) -> None:
    data = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    tensor = grpcclient.InferInput("INPUT0", [2, 4], "FP32")
    tensor.set_data_from_numpy(data)
    result = grpc_client.infer("case_fp32", [tensor], compression_algorithm="gzip")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)


def test_typed_contents_are_accepted(grpc_stub: Any) -> None:
    values = [1.5, -2.0, 0.25, 8.0]
    request = infer_request("case_fp32", (WireTensor("INPUT0", "FP32", (1, 4), values=values),))
    response = grpc_stub.ModelInfer(request, timeout=30)
    assert [o.name for o in response.outputs] == ["OUTPUT0"]
    assert list(response.outputs[0].shape) == [1, 4]
    assert not response.outputs[0].HasField("contents")
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], "<f4"), values)
    text = grpc_stub.ModelInfer(
        infer_request("case_text", (WireTensor("INPUT0", "BYTES", (2,), values=[b"caf\xc3\xa9", b""]),)),
        timeout=30,
    )
    # BYTES out: 4-byte little-endian length, then the bytes, per element.
    assert text.raw_output_contents[0] == b"\x05\x00\x00\x00caf\xc3\xa9" + b"\x00\x00\x00\x00"


@pytest.mark.parametrize("case", REFUSALS, ids=[c.id for c in REFUSALS])
def test_refusals(grpc_stub: Any, case: RefusalCase) -> None:
    request = infer_request(case.model, case.inputs, version=case.version)
    for name in case.outputs or ():
        request.outputs.add(name=name)
    error = rpc_error(grpc_stub.ModelInfer, request)
    assert error.code() == EXPECTED_STATUS[case.code], error.details()
    assert case.message in error.details()


@pytest.mark.parametrize("case", REFUSALS[:3], ids=[c.id for c in REFUSALS[:3]])
def test_refusals_reach_tritonclient_as_exceptions(
    grpc_client: grpcclient.InferenceServerClient, case: RefusalCase
) -> None:
    tensor = case.inputs[0]
    assert tensor.data is not None
    triton_input = grpcclient.InferInput(tensor.name, list(tensor.shape), tensor.datatype)
    triton_input.set_data_from_numpy(np.frombuffer(tensor.data, "<f4").reshape(tensor.shape))
    with pytest.raises(InferenceServerException) as caught:
        grpc_client.infer(case.model, [triton_input], model_version=case.version)
    assert caught.value.status() == str(EXPECTED_STATUS[case.code])
    assert case.message in caught.value.message()


_FOUR = raw(np.ones((1, 4), dtype=np.float32))
GRPC_ONLY_REFUSALS = [
    pytest.param(
        lambda r: r.inputs[0].contents.fp32_contents.extend([1.0] * 4),
        "both 'contents' and raw_input_contents are set",
        id="contents-and-raw",
    ),
    pytest.param(
        lambda r: r.raw_input_contents.append(_FOUR),
        "raw_input_contents has 2 entries for 1 inputs",
        id="raw-count",
    ),
    pytest.param(
        lambda r: (r.ClearField("raw_input_contents"), r.inputs[0].contents.int_contents.extend([1] * 4)),
        "FP32 data goes in contents.fp32_contents, but contents.int_contents is set",
        id="wrong-typed-field",
    ),
    pytest.param(
        lambda r: r.ClearField("raw_input_contents"),
        "tensor 'INPUT0': no data; set contents.fp32_contents or send raw_input_contents",
        id="no-data",
    ),
    pytest.param(
        lambda r: (r.inputs.add().CopyFrom(r.inputs[0]), r.raw_input_contents.append(_FOUR)),
        "input 'INPUT0' is given twice",
        id="duplicate-input",
    ),
    pytest.param(
        lambda r: (
            r.outputs.add(name="OUTPUT0")
            .parameters["classification"]
            .MergeFrom(pb.InferParameter(int64_param=2))
        ),
        "the classification extension is not supported",
        id="classification",
    ),
]


@pytest.mark.parametrize(("change", "message"), GRPC_ONLY_REFUSALS)
def test_protobuf_specific_refusals(grpc_stub: Any, change: Any, message: str) -> None:
    request = infer_request("case_fp32", (WireTensor("INPUT0", "FP32", (1, 4), _FOUR),))
    change(request)
    error = rpc_error(grpc_stub.ModelInfer, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


def test_a_shared_memory_input_with_contents_is_refused(grpc_stub: Any) -> None:
    request = infer_request("case_fp32", (WireTensor("INPUT0", "FP32", (1, 4), values=[1.0] * 4),))
    request.inputs[0].parameters["shared_memory_region"].string_param = "region0"
    request.inputs[0].parameters["shared_memory_byte_size"].int64_param = 16
    error = rpc_error(grpc_stub.ModelInfer, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "its data is in shared memory region 'region0'; set no 'contents'" in error.details()


def test_fp16_has_no_typed_contents(grpc_stub: Any) -> None:
    request = pb.ModelInferRequest(model_name="case_fp32")
    request.inputs.add(name="INPUT0", datatype="FP16", shape=[1, 4]).contents.fp32_contents.extend([1.0] * 4)
    error = rpc_error(grpc_stub.ModelInfer, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "FP16 has no typed contents field; send it in raw_input_contents" in error.details()


@pytest.mark.parametrize(
    "payload", [b"\xff\xff\xff\xff", b"\x0a\x80", b"\x2a\x05ab"], ids=["bad-tag", "truncated", "short-field"]
)
def test_undecodable_protobuf_is_invalid_argument_and_the_server_goes_on(
    server: ServerProcess,
    grpc_channel: grpc.Channel,
    grpc_client: grpcclient.InferenceServerClient,
    payload: bytes,
) -> None:
    refused = {"model": "", "version": "", "protocol": "grpc", "outcome": "invalid_input"}
    before = scrape(server.metrics_url).value("modelport_requests_total", **refused)
    call = grpc_channel.unary_unary(_INFER_PATH)  # no serializer: the bytes go out as they are
    error = rpc_error(call, payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid inference.ModelInferRequest protobuf message" in error.details()
    # Recorded like any refused request: counted, with a request id to find its access-log line.
    assert "(request id: " in error.details()
    assert scrape(server.metrics_url).value("modelport_requests_total", **refused) == before + 1
    assert grpc_client.is_server_live()
    assert grpc_client.is_model_ready("case_fp32")


def test_an_undecodable_stream_request_is_answered_in_its_place(grpc_channel: grpc.Channel) -> None:
    stream = grpc_channel.stream_stream(  # no request serializer: the bytes go out as they are
        "/inference.GRPCInferenceService/ModelStreamInfer",
        response_deserializer=pb.ModelStreamInferResponse.FromString,
    )
    good = infer_request("case_fp32", (WireTensor("INPUT0", "FP32", (1, 4), values=[1.0] * 4),))
    answers = list(stream(iter([b"\xff\xff\xff\xff", good.SerializeToString()]), timeout=30))
    assert "not a valid inference.ModelInferRequest protobuf message" in answers[0].error_message
    assert "(request id: " in answers[0].error_message  # recorded like any refused request
    assert answers[1].error_message == "" and answers[1].infer_response.model_name == "case_fp32"


def test_a_message_above_4_mib_is_accepted_and_answered(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    rows = 1
    inputs = []
    big = np.array([bytes([65 + i]) * 1_500_000 for i in range(4)], dtype=np.object_).reshape(rows, 4)
    for datatype in ALL_DATATYPES:
        data = big if datatype == "BYTES" else sample(datatype, rows)
        tensor = grpcclient.InferInput(f"INPUT_{datatype}", [rows, 4], datatype)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    result = grpc_client.infer(ALL_TYPES, inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT_BYTES")])
    assert len(result.get_response().raw_output_contents[0]) > 6_000_000
    assert result.as_numpy("OUTPUT_BYTES").reshape(-1).tolist() == big.reshape(-1).tolist()


def test_stream_answers_each_request_and_reports_errors_in_band(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    answers: list[tuple[Any, Any]] = []
    good = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
    good.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
    grpc_client.start_stream(callback=lambda result, error: answers.append((result, error)))
    try:
        grpc_client.async_stream_infer("case_fp32", [good], request_id="first")
        grpc_client.async_stream_infer("no_such_model", [good], request_id="second")
        grpc_client.async_stream_infer("case_fp32", [good], request_id="third")
    finally:
        grpc_client.stop_stream()  # waits for the stream to finish
    assert len(answers) == 3
    (first, first_error), (_, second_error), (third, third_error) = answers
    assert first_error is None and third_error is None
    assert first.get_response().id == "first" and third.get_response().id == "third"
    np.testing.assert_array_equal(first.as_numpy("OUTPUT0"), np.arange(4, dtype=np.float32).reshape(1, 4))
    assert "unknown model" in second_error.message()


def test_typed_fields_exist_in_the_protocol() -> None:
    """The test's datatype -> typed-field rule names real fields of InferTensorContents (FP16 has none)."""
    fields = pb.InferTensorContents.DESCRIPTOR.fields_by_name
    assert all(field in fields for field in TYPED_FIELD.values())
    assert set(TYPED_FIELD) == set(ALL_DATATYPES) - {"FP16"}
    assert {f.name for f in fields.values()} == set(TYPED_FIELD.values())  # every field is some datatype's
