"""TF Serving's REST API (and KServe v1, the same surface) on the REST port, made by httpx with the requests
and answers of TF Serving's g3doc/api_rest.md: the half_plus_three example (version 123), the row and
columnar formats with the docs' three named inputs, binary values, and TF Serving's error shape and codes."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.onnx_models import half_plus_three_model, tag_signal_sensor_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

HALF = "/v1/models/saved_model_half_plus_three"
DOCS = "/v1/models/docs"

# api_rest.md's row-format request with three named inputs (its second "signal" has a stray "]", left out).
ROWS: dict[str, Any] = {
    "instances": [
        {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
        {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
    ]
}
# The same request in the columnar format, as api_rest.md writes it.
COLUMNS: dict[str, Any] = {
    "inputs": {
        "tag": ["foo", "bar"],
        "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
        "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
    }
}


def _b64(text: str) -> dict[str, str]:
    return {"b64": base64.b64encode(text.encode()).decode()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repository: Path = tmp_path_factory.mktemp("tfserving-rest")
    write_model(repository, "saved_model_half_plus_three", half_plus_three_model(), version=123)
    write_model(repository, "docs", tag_signal_sensor_model())
    with start_server(repository) as handle:
        yield handle


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30) as http:
        yield http


def test_model_status_as_the_docs_show_it(client: httpx.Client) -> None:
    for path in (HALF, f"{HALF}/versions/123"):
        answer = client.get(path)
        assert answer.status_code == 200
        body = answer.json()
        assert body["model_version_status"] == [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
        assert (body["name"], body["ready"]) == ("saved_model_half_plus_three", True)  # KServe v1's fields


def test_predict_as_the_docs_show_it(client: httpx.Client) -> None:
    answer = client.post(f"{HALF}:predict", json={"instances": [1.0, 2.0, 5.0]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [3.5, 4.0, 5.5]}
    versioned = client.post(f"{HALF}/versions/123:predict", json={"inputs": [1.0, 2.0]})
    assert versioned.json() == {"outputs": [3.5, 4.0]}


def test_unknown_model_is_404_with_an_error(client: httpx.Client) -> None:
    answer = client.post("/v1/models/half:predict", json={"instances": [1.0, 5.0]})
    assert answer.status_code == 404
    assert "half" in answer.json()["error"]
    assert client.get("/v1/models/half").status_code == 404
    assert client.get(f"{HALF}/versions/7").status_code == 404


def test_metadata_is_a_signature_def(client: httpx.Client) -> None:
    answer = client.get(f"{HALF}/metadata")
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_spec"] == {
        "name": "saved_model_half_plus_three",
        "signature_name": "",
        "version": "123",
    }
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert signature["outputs"]["y"]["dtype"] == "DT_FLOAT"
    docs = client.get(f"{DOCS}/metadata").json()["metadata"]["signature_def"]["signature_def"]
    inputs = docs["serving_default"]["inputs"]
    assert {name: info["dtype"] for name, info in inputs.items()} == {
        "tag": "DT_STRING",
        "signal": "DT_INT32",
        "sensor": "DT_FLOAT",
    }
    assert [d["size"] for d in inputs["sensor"]["tensor_shape"]["dim"]] == ["-1", "2", "2"]


def test_named_inputs_in_rows_answer_one_object_per_row(client: httpx.Client) -> None:
    answer = client.post(f"{DOCS}:predict", json=ROWS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "predictions": [
            {"tag_bytes": _b64("foo"), "signal_sum": 15, "sensor_twice": [[2.0, 4.0], [6.0, 8.0]]},
            {"tag_bytes": _b64("bar"), "signal_sum": 15, "sensor_twice": [[8.0, 10.0], [12.0, 16.0]]},
        ]
    }


def test_columns_answer_an_object_by_output_name(client: httpx.Client) -> None:
    answer = client.post(f"{DOCS}:predict", json=COLUMNS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "outputs": {
            "tag_bytes": [_b64("foo"), _b64("bar")],
            "signal_sum": [15, 15],
            "sensor_twice": [[[2.0, 4.0], [6.0, 8.0]], [[8.0, 10.0], [12.0, 16.0]]],
        }
    }


def test_binary_values_in_b64(client: httpx.Client) -> None:
    raw = "bytes\x00 ✓".encode()  # ONNX Runtime string tensors hold UTF-8; b64 carries it as bytes
    body = {
        "instances": [
            {"tag": {"b64": base64.b64encode(raw).decode()}, "signal": [0] * 5, "sensor": [[0] * 2] * 2}
        ]
    }
    answer = client.post(f"{DOCS}:predict", json=body)
    assert answer.status_code == 200, answer.text
    assert base64.b64decode(answer.json()["predictions"][0]["tag_bytes"]["b64"]) == raw


def test_non_finite_numbers_as_tf_serving_writes_them(client: httpx.Client) -> None:
    body = b'{"instances": [NaN, Infinity, -Infinity, 1.0]}'  # not JSON, but TF Serving's JSON
    answer = client.post(f"{HALF}:predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.text.count("NaN") == 1 and "-Infinity" in answer.text
    predictions = json.loads(answer.text)["predictions"]
    assert math.isnan(predictions[0]) and predictions[1:] == [math.inf, -math.inf, 3.5]


def test_kserve_v1_model_list(client: httpx.Client) -> None:
    assert client.get("/v1/models").json() == {"models": ["docs", "saved_model_half_plus_three"]}


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_classify_and_regress_are_501(client: httpx.Client, verb: str) -> None:
    body = {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}
    answer = client.post(f"{HALF}:{verb}", json=body)
    assert answer.status_code == 501
    assert verb in answer.json()["error"]


def test_version_labels_are_501(client: httpx.Client) -> None:
    answer = client.get(f"{HALF}/labels/stable")
    assert answer.status_code == 501
    assert "/versions/N" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"instances": [1.0, 2.0', "not valid JSON"),
        (b"[1.0]", "JSON object"),
        (b"{}", "Missing 'inputs' or 'instances'"),
        (b'{"instances": [1.0], "inputs": [1.0]}', "Not both"),
        (b'{"signature_name": "classify", "instances": [1.0]}', "'classify' not found"),
        (b'{"instances": [[1.0, 2.0], [3.0]]}', "same length"),
        (b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}', "shape"),
        (b'{"instances": ["one"]}', "FP32"),
        (b'{"instances": []}', "non-empty list"),
        (b'{"instance": [1.0]}', "unknown key"),
    ],
)
def test_bad_input_is_400_saying_what_to_fix(client: httpx.Client, body: bytes, fragment: str) -> None:
    answer = client.post(f"{HALF}:predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"]
    assert client.post(f"{HALF}:predict", json={"instances": [1.0]}).json() == {"predictions": [3.5]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"instances": [{"tag": "a", "signal": [1, 2, 3, 4, 5]}, {"tag": "b"}]}, "same inputs"),
        ({"instances": [{"tag": "a", "signal": [1, 2, 3], "sensor": [[1, 2], [3, 4]]}]}, "signal"),
        ({"instances": ["a", "b"]}, "has 3 inputs"),
        ({"inputs": {"tag": ["a"], "nope": [1]}}, "no input 'nope'"),
        ({"instances": [{"tag": 7, "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]}]}, "string tensor"),
        ({"instances": [{"tag": {"b64": "***"}, "signal": [0] * 5, "sensor": [[0, 0]] * 2}]}, "base64"),
    ],
)
def test_bad_named_input_is_400(client: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    answer = client.post(f"{DOCS}:predict", json=body)
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"]
