"""Repository control over gRPC: a server of this module's own in explicit mode, driven by tritonclient.grpc
(index, load, load with config + files, unload) and by a raw stub for typed contents and bad parameters.
The same server runs with a configured message size limit (8 MiB), checked at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from tritonclient.grpc import service_pb2 as triton_pb
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import ALL_DATATYPES, add_sub_model, identity_all_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import TYPED_FIELD, sample

MESSAGE_LIMIT = 8 * 2**20
TYPED_DATATYPES = [d for d in ALL_DATATYPES if d in TYPED_FIELD]  # all but FP16, which travels raw only


@pytest.fixture(scope="module")  # this module's own server (conftest's gRPC fixtures connect to it)
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repository = tmp_path_factory.mktemp("explicit")
    write_model(repository, "simple", add_sub_model("FP32", (-1, 3)))
    limit = str(MESSAGE_LIMIT)
    with start_server(
        repository, "--model-control", "explicit", "--grpc-max-message-bytes", limit
    ) as process:
        yield process


def states(grpc_client: grpcclient.InferenceServerClient, name: str) -> set[str]:
    return {m.state for m in grpc_client.get_model_repository_index().models if m.name == name}


def failure(call: Any, *args: Any, **kwargs: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call(*args, **kwargs)
    return caught.value


def add_inputs() -> list[grpcclient.InferInput]:
    tensors = [grpcclient.InferInput(n, [1, 3], "FP32") for n in ("INPUT0", "INPUT1")]
    for tensor in tensors:
        tensor.set_data_from_numpy(np.full((1, 3), 2.0, dtype=np.float32))
    return tensors


def test_load_infer_unload(grpc_client: grpcclient.InferenceServerClient) -> None:
    assert not grpc_client.is_model_ready("simple")  # explicit mode loads nothing by itself
    assert "READY" not in states(grpc_client, "simple")
    grpc_client.load_model("simple")
    assert grpc_client.is_model_ready("simple")
    assert states(grpc_client, "simple") == {"READY"}
    result = grpc_client.infer("simple", add_inputs())
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 3), 4.0, dtype=np.float32))
    grpc_client.unload_model("simple")
    assert not grpc_client.is_model_ready("simple")
    assert "READY" not in states(grpc_client, "simple")
    gone = failure(grpc_client.infer, "simple", add_inputs())
    assert gone.status() in ("StatusCode.UNAVAILABLE", "StatusCode.INVALID_ARGUMENT")
    assert "simple" in gone.message()


def test_load_with_config_and_files_then_typed_contents_for_every_datatype(
    grpc_client: grpcclient.InferenceServerClient, grpc_stub: Any
) -> None:
    model = identity_all_model((-1, 4))
    for listing in (model.graph.input, model.graph.output):
        for value in [v for v in listing if v.name.endswith("_FP16")]:
            listing.remove(value)
    for node in [n for n in model.graph.node if "INPUT_FP16" in n.input]:
        model.graph.node.remove(node)
    files = {"file:1/model.onnx": model.SerializeToString()}
    grpc_client.load_model("uploaded", config=json.dumps({"max_batch_size": 4}), files=files)
    assert grpc_client.is_model_ready("uploaded", "1")
    assert grpc_client.get_model_config("uploaded").config.max_batch_size == 4

    rows = 2
    sent = {datatype: sample(datatype, rows) for datatype in TYPED_DATATYPES}
    request = pb.ModelInferRequest(model_name="uploaded")
    for datatype, data in sent.items():
        tensor = request.inputs.add(name=f"INPUT_{datatype}", datatype=datatype, shape=data.shape)
        getattr(tensor.contents, TYPED_FIELD[datatype]).extend(data.reshape(-1).tolist())
    response = grpc_stub.ModelInfer(request, timeout=30)
    assert len(response.raw_output_contents) == len(TYPED_DATATYPES)
    # Decoded by the real client's result class (it reads raw_output_contents only).
    result = grpcclient.InferResult(triton_pb.ModelInferResponse.FromString(response.SerializeToString()))
    for datatype, data in sent.items():
        answer = result.as_numpy(f"OUTPUT_{datatype}")
        assert answer is not None, datatype
        if datatype == "BYTES":
            assert answer.reshape(-1).tolist() == data.reshape(-1).tolist()
        else:
            assert answer.dtype == data.dtype, datatype
            np.testing.assert_array_equal(answer, data, err_msg=datatype)
    grpc_client.unload_model("uploaded")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"config": pb.ModelRepositoryParameter(string_param="{not json")},
            "parameters.config: not valid JSON",
        ),
        ({"config": pb.ModelRepositoryParameter(bytes_param=b"{}")}, "'config' must be a string_param"),
        ({"confg": pb.ModelRepositoryParameter(string_param="{}")}, "unknown load parameter 'confg'"),
        ({"file:1/model.onnx": pb.ModelRepositoryParameter(bytes_param=b"x")}, "need parameters.config"),
        (
            {"file:1/model.onnx": pb.ModelRepositoryParameter(string_param="x")},
            "'file:1/model.onnx' must be a bytes_param",
        ),
        (
            {
                "config": pb.ModelRepositoryParameter(string_param="{}"),
                "file:1/../../escape.onnx": pb.ModelRepositoryParameter(bytes_param=b"x"),
            },
            "file key 'file:1/../../escape.onnx' must look like 'file:<version>/<file name>'",
        ),
    ],
    ids=[
        "config-not-json",
        "config-not-string",
        "unknown-parameter",
        "files-without-config",
        "file-not-bytes",
        "file-key-outside-the-model",
    ],
)
def test_bad_load_requests_are_invalid_argument(
    grpc_stub: Any, parameters: dict[str, Any], message: str
) -> None:
    request = pb.RepositoryModelLoadRequest(model_name="simple")
    for key, value in parameters.items():
        request.parameters[key].CopyFrom(value)
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.RepositoryModelLoad(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


def test_loading_a_model_that_is_not_there(grpc_client: grpcclient.InferenceServerClient) -> None:
    error = failure(grpc_client.load_model, "no_such_model")
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "no_such_model" in error.message()
    assert grpc_client.is_server_ready()


def test_the_configured_message_limit_applies(
    grpc_client: grpcclient.InferenceServerClient, grpc_stub: Any
) -> None:
    # A request for a model that is not serving is refused before its tensors are looked at.
    grpc_client.load_model("simple")

    def request(size: int) -> pb.ModelInferRequest:
        message = pb.ModelInferRequest(model_name="simple")
        message.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 3])
        message.raw_input_contents.append(b"\0" * size)
        return message

    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.ModelInfer(request(MESSAGE_LIMIT + 1024), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Above grpc's 4 MiB default but under the limit: the message gets through to the tensor checks.
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.ModelInfer(request(6 * 2**20), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"needs 12 bytes, got {6 * 2**20}" in caught.value.details()
