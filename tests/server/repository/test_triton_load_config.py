"""Repository load with Triton's ModelConfig JSON (what ``tritonclient``'s ``load_model(name, config=...)``
sends), through tritonclient.http and tritonclient.grpc: translated into config.yaml's schema, unknown keys
refused naming the key; GET /config's own output loads back unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TypeAlias

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import add_sub_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

TRITON_CONFIG: dict[str, Any] = {
    "name": "addsub",
    "backend": "onnxruntime",
    "max_batch_size": 8,
    "input": [
        {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [16]},
        {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": ["16"]},  # int64 as protobuf JSON writes it
    ],
    "output": [
        {"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [16]},
        {"name": "OUTPUT1", "data_type": "TYPE_FP32", "dims": [16]},
    ],
    "dynamic_batching": {
        "max_queue_delay_microseconds": 1500,
        "preferred_batch_size": [4],
        "default_queue_policy": {"max_queue_size": 77},
    },
    "version_policy": {"latest": {"num_versions": 1}},
    "instance_group": [{"count": 2, "kind": "KIND_CPU"}],
}

Client: TypeAlias = httpclient.InferenceServerClient | grpcclient.InferenceServerClient


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repository = tmp_path_factory.mktemp("triton-config")
    write_model(repository, "addsub", add_sub_model("FP32", (-1, 16)))
    with start_server(repository, "--model-control", "explicit") as handle:
        yield handle


@pytest.fixture(params=["http", "grpc"])
def client(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[Client]:
    triton: Client = (
        httpclient.InferenceServerClient(server.http_url)
        if request.param == "http"
        else grpcclient.InferenceServerClient(server.grpc_url)
    )
    yield triton
    triton.close()


def config_of(client: Client) -> dict[str, Any]:
    if isinstance(client, grpcclient.InferenceServerClient):
        config: dict[str, Any] = client.get_model_config("addsub", as_json=True)["config"]
        return config
    return dict(client.get_model_config("addsub"))


def infer_rows(client: Client, rows: int) -> np.ndarray[Any, Any]:
    module: Any = grpcclient if isinstance(client, grpcclient.InferenceServerClient) else httpclient
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = module.InferInput(name, [rows, 16], "FP32")
        tensor.set_data_from_numpy(np.ones((rows, 16), np.float32))
        inputs.append(tensor)
    output: np.ndarray[Any, Any] = client.infer("addsub", inputs).as_numpy("OUTPUT0")
    return output


def test_triton_model_config_is_translated(client: Client) -> None:
    client.load_model("addsub", config=json.dumps(TRITON_CONFIG))
    assert client.is_model_ready("addsub")
    config = config_of(client)
    assert int(config["max_batch_size"]) == 8
    batching = config["dynamic_batching"]
    assert int(batching["max_queue_delay_microseconds"]) == 1500
    assert [int(size) for size in batching["preferred_batch_size"]] == [4]
    assert int(batching["default_queue_policy"]["max_queue_size"]) == 77
    assert int(config["instance_group"][0]["count"]) == 2
    assert infer_rows(client, 8).tolist() == [[2.0] * 16] * 8
    with pytest.raises(InferenceServerException, match="batch size 9"):
        infer_rows(client, 9)  # the loaded max_batch_size, not the graph's default of 64


def test_get_config_output_loads_back(client: Client) -> None:
    client.load_model("addsub", config=json.dumps({"max_batch_size": 4}))
    served = config_of(client)
    client.load_model("addsub", config=json.dumps(served))
    assert config_of(client)["max_batch_size"] in (4, "4")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sequence_batching": {}}, "Triton ModelConfig key 'sequence_batching' is not supported"),
        (
            {
                "input": [
                    {
                        "name": "INPUT0",
                        "data_type": "TYPE_FP32",
                        "dims": [16],
                        "is_non_linear_format_io": True,
                    }
                ]
            },
            "input[0]: key 'is_non_linear_format_io' is not supported",
        ),
        (
            {"input": [{"name": "INPUT0", "data_type": "TYPE_FLOAT", "dims": [16]}]},
            "input[0].data_type: 'TYPE_FLOAT'",
        ),
        ({"dynamic_batching": {"max_queue_delay_ms": 5}}, "dynamic_batching: key 'max_queue_delay_ms'"),
        ({"name": "other"}, "name: 'other' is not the model being loaded ('addsub')"),
        ({"platform": "tensorflow_savedmodel"}, "platform: 'tensorflow_savedmodel'"),
    ],
)
def test_unsupported_triton_keys_are_refused_naming_them(
    client: Client, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.load_model("addsub", config=json.dumps({**TRITON_CONFIG, **change}))
    assert message in caught.value.message(), caught.value.message()
    assert "parameters.config" in caught.value.message()


def test_default_model_filename_on_load_names_the_file_read(client: Client) -> None:
    renamed = {**TRITON_CONFIG, "default_model_filename": "elsewhere.onnx"}
    with pytest.raises(InferenceServerException, match=r"elsewhere\.onnx"):
        client.load_model("addsub", config=json.dumps(renamed))
    assert client.is_model_ready("addsub")  # the version loaded before still serves
    client.load_model("addsub", config=json.dumps({**TRITON_CONFIG, "default_model_filename": "model.onnx"}))
    assert config_of(client)["default_model_filename"] == "model.onnx"
