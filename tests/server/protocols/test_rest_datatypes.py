"""Every datatype end to end over REST with tritonclient.http, binary and JSON tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.helpers.onnx_models import ALL_DATATYPES
from tests.helpers.tensors import sample
from tests.server.conftest import ALL_TYPES


@pytest.mark.parametrize("mode", ["binary", "json", "mixed"])
def test_every_datatype_round_trips(http_client: httpclient.InferenceServerClient, mode: str) -> None:
    rows = 3
    sent: dict[str, np.ndarray[Any, Any]] = {}
    inputs: list[httpclient.InferInput] = []
    outputs: list[httpclient.InferRequestedOutput] = []
    for index, datatype in enumerate(ALL_DATATYPES):
        binary = mode == "binary" or (mode == "mixed" and index % 2 == 0)
        data = sample(datatype, rows)
        sent[datatype] = data
        tensor = httpclient.InferInput(f"INPUT_{datatype}", [rows, 4], datatype)
        tensor.set_data_from_numpy(data, binary_data=binary)
        inputs.append(tensor)
        outputs.append(httpclient.InferRequestedOutput(f"OUTPUT_{datatype}", binary_data=not binary))
    result = http_client.infer(ALL_TYPES, inputs, outputs=outputs)
    response = result.get_response()
    assert response["model_version"] == "1"
    declared = {o["name"]: o["datatype"] for o in response["outputs"]}
    for datatype, data in sent.items():
        name = f"OUTPUT_{datatype}"
        assert declared[name] == datatype
        answer = result.as_numpy(name)
        assert answer is not None, name
        assert answer.shape == data.shape, name
        if datatype == "BYTES":
            # JSON carries BYTES as UTF-8 strings: tritonclient hands those back as str.
            received = [x.encode() if isinstance(x, str) else x for x in answer.reshape(-1)]
            assert received == data.reshape(-1).tolist()
        else:
            assert answer.dtype == data.dtype, name
            np.testing.assert_array_equal(answer, data, err_msg=name)


def test_add_sub_computes_both_outputs(http_client: httpclient.InferenceServerClient) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, dtype=np.float32)
    inputs = [
        httpclient.InferInput("INPUT0", [2, 3], "FP32"),
        httpclient.InferInput("INPUT1", [2, 3], "FP32"),
    ]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b, binary_data=False)  # one binary and one JSON input in one request
    outputs = [
        httpclient.InferRequestedOutput("OUTPUT1", binary_data=False),
        httpclient.InferRequestedOutput("OUTPUT0", binary_data=True),
    ]
    result = http_client.infer("simple", inputs, outputs=outputs, request_id="req-7")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["OUTPUT1", "OUTPUT0"]  # the requested order
    assert response["id"] == "req-7"


def test_all_outputs_binary_when_none_requested(http_client: httpclient.InferenceServerClient) -> None:
    data = np.ones((1, 3), dtype=np.float32)
    inputs = [
        httpclient.InferInput("INPUT0", [1, 3], "FP32"),
        httpclient.InferInput("INPUT1", [1, 3], "FP32"),
    ]
    for tensor in inputs:
        tensor.set_data_from_numpy(data)
    result = http_client.infer("simple", inputs)  # no outputs named: the client sets binary_data_output
    outputs = result.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["OUTPUT0", "OUTPUT1"]
    assert all(o["parameters"]["binary_data_size"] == 12 for o in outputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data * 2)
