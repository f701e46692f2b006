"""Health, metadata, model config, statistics and the repository index over REST, with tritonclient.http."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from modelport.server.dataplane import ServerMetadata
from modelport.server.observability.tracing import Tracing
from modelport.server.protocols.rest_api import create_rest_app
from modelport.server.settings import ServerSettings
from tritonclient.utils import InferenceServerException

from tests.helpers.server_process import ServerProcess
from tests.server.cases import CORRUPT_MODEL
from tests.server.conftest import BROKEN_CONFIG, VERSIONED


def test_health_and_server_metadata(http_client: httpclient.InferenceServerClient) -> None:
    assert http_client.is_server_live()
    assert http_client.is_server_ready()
    metadata = http_client.get_server_metadata()
    assert metadata["name"] == "modelport"
    assert {"binary_tensor_data", "model_repository", "model_configuration", "statistics"} <= set(
        metadata["extensions"]
    )


def test_model_metadata_reports_the_batch_dimension(http_client: httpclient.InferenceServerClient) -> None:
    metadata = http_client.get_model_metadata("simple")
    assert metadata == {
        "name": "simple",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "INPUT1", "datatype": "FP32", "shape": [-1, 3]},
        ],
        "outputs": [
            {"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "OUTPUT1", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }


def test_model_config_is_tritons_json(http_client: httpclient.InferenceServerClient) -> None:
    config = http_client.get_model_config("case_fp32")
    assert config["name"] == "case_fp32"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 8  # from config.yaml
    # Triton's convention: dims leave the batch dimension out when max_batch_size > 0.
    first = config["input"][0]
    assert (first["name"], first["data_type"], first["dims"]) == ("INPUT0", "TYPE_FP32", [4])
    assert config["output"][0]["dims"] == [4]
    assert config["parameters"]["execution_provider"] == {"string_value": "cpu"}  # the active provider
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert config["version_policy"] == {"latest": {"num_versions": 1}}


def test_derived_max_batch_size_and_bytes_config(http_client: httpclient.InferenceServerClient) -> None:
    simple = http_client.get_model_config("simple")
    assert simple["max_batch_size"] == 64  # leading dynamic dim, no config.yaml: the default
    text = http_client.get_model_config("case_text")
    assert text["input"][0]["data_type"] == "TYPE_STRING"
    assert text["input"][0]["dims"] == []


def test_version_policy_specific(http_client: httpclient.InferenceServerClient) -> None:
    assert http_client.get_model_metadata(VERSIONED)["versions"] == ["1", "3"]
    assert http_client.is_model_ready(VERSIONED, "1")
    assert not http_client.is_model_ready(VERSIONED, "2")
    assert http_client.is_model_ready(VERSIONED, "3")
    tensor = httpclient.InferInput("INPUT0", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    assert http_client.infer(VERSIONED, [tensor]).get_response()["model_version"] == "3"  # highest ready
    assert http_client.infer(VERSIONED, [tensor], model_version="1").get_response()["model_version"] == "1"
    with pytest.raises(InferenceServerException, match="version 2 is not found") as raised:
        http_client.infer(VERSIONED, [tensor], model_version="2")
    assert raised.value.status() == "400"
    assert http_client.get_model_config(VERSIONED)["version_policy"] == {"specific": {"versions": [1, 3]}}


def test_repository_index_lists_failures_with_reasons(http_client: httpclient.InferenceServerClient) -> None:
    index = {(row["name"], row.get("version", "")): row for row in http_client.get_model_repository_index()}
    corrupt = index[(CORRUPT_MODEL, "1")]
    assert corrupt["state"] == "UNAVAILABLE"
    assert "model.onnx: not a valid ONNX model" in corrupt["reason"]
    broken = index[(BROKEN_CONFIG, "")]
    assert broken["state"] == "UNAVAILABLE"
    # The reason names the file and every offending key.
    assert f"{BROKEN_CONFIG}/config.yaml" in broken["reason"]
    assert "session.intra_op_threads: -2 is out of range; allowed: 0.." in broken["reason"]
    assert "max_batch_sise: unknown key" in broken["reason"]
    assert index[("simple", "1")]["state"] == "READY"
    assert index[(VERSIONED, "1")]["state"] == "READY"
    assert (VERSIONED, "2") not in index
    assert not http_client.is_model_ready(CORRUPT_MODEL)
    assert http_client.is_model_ready("simple")


def test_repository_index_ready_only(server: ServerProcess) -> None:
    response = httpx.post(f"http://{server.http_url}/v2/repository/index", json={"ready": True})
    assert response.status_code == 200
    rows = response.json()
    assert rows
    assert {row["state"] for row in rows} == {"READY"}
    assert CORRUPT_MODEL not in {row["name"] for row in rows}


def test_statistics_count_successes_and_failures(http_client: httpclient.InferenceServerClient) -> None:
    before = http_client.get_inference_statistics("simple")["model_stats"][0]
    inputs = [
        httpclient.InferInput("INPUT0", [2, 3], "FP32"),
        httpclient.InferInput("INPUT1", [2, 3], "FP32"),
    ]
    for tensor in inputs:
        tensor.set_data_from_numpy(np.ones((2, 3), dtype=np.float32))
    for _ in range(3):
        http_client.infer("simple", inputs)
    after = http_client.get_inference_statistics("simple", "1")["model_stats"][0]
    assert after["name"] == "simple"
    assert after["version"] == "1"
    success = after["inference_stats"]["success"]
    assert success["count"] == before["inference_stats"]["success"]["count"] + 3
    assert success["ns"] > before["inference_stats"]["success"]["ns"]
    assert after["inference_count"] == before["inference_count"] + 6  # rows
    assert after["inference_stats"]["compute_infer"]["ns"] > 0
    assert after["last_inference"] > 0
    wrong = httpclient.InferInput("INPUT0", [1, 4], "FP32")  # "simple" takes [-1, 3]
    wrong.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="expected \\[-1, 3\\]"):
        http_client.infer("simple", [wrong, inputs[1]])
    failed = http_client.get_inference_statistics("simple")["model_stats"][0]["inference_stats"]["fail"]
    assert failed["count"] == before["inference_stats"]["fail"]["count"] + 1
    everything = http_client.get_inference_statistics()["model_stats"]
    assert {"simple", "case_fp32", VERSIONED} <= {entry["name"] for entry in everything}


def test_statistics_of_unknown_model(http_client: httpclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="unknown model"):
        http_client.get_inference_statistics("no_such_model")


def test_load_refused_outside_explicit_mode(http_client: httpclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="--model-control explicit") as raised:
        http_client.load_model("simple")
    assert raised.value.status() == "501"
    assert http_client.is_model_ready("simple")


def test_openapi_document(server: ServerProcess) -> None:
    document = httpx.get(f"http://{server.http_url}/openapi.json").json()
    assert "/v2/models/{model_name}/infer" in document["paths"]


def test_unavailable_execution_providers_fall_back_with_one_warning(
    server: ServerProcess, http_client: httpclient.InferenceServerClient
) -> None:
    config = http_client.get_model_config("case_text")
    assert config["parameters"]["execution_provider"] == {"string_value": "cpu"}
    assert config["parameters"]["execution_providers"] == {"string_value": "tensorrt,cuda,cpu"}
    warnings = [
        line for line in server.logs().splitlines() if "case_text" in line and "not available" in line
    ]
    assert len(warnings) == 1, warnings
    assert "tensorrt, cuda" in warnings[0]
    assert "using cpu" in warnings[0]


def test_an_unexpected_failure_is_a_500_with_an_id_the_log_has(caplog: pytest.LogCaptureFixture) -> None:
    """The client learns nothing of the failure but an id; the log has the traceback under that id."""

    class FailingDataPlane:
        tracing = Tracing(endpoint=None)

        def server_metadata(self) -> Any:
            return ServerMetadata("modelport", "0", [])

        async def infer(self, request: Any, **_: Any) -> Any:
            raise RuntimeError("secret detail")

    app = create_rest_app(FailingDataPlane(), ServerSettings())  # type: ignore[arg-type]  # a stand-in

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rest") as client:
            return await client.post("/v2/models/m/infer", json={"inputs": []})

    with caplog.at_level(logging.ERROR, logger="modelport.server.protocols.rest_api"):
        response = asyncio.run(call())
    assert response.status_code == 500
    told = re.fullmatch(
        r"internal error; the server log has the details \(request id: ([0-9a-f]{32})\)",
        response.json()["error"],
    )
    assert told is not None, response.text
    assert "secret detail" not in response.text
    assert any(told[1] in r.getMessage() and r.exc_info for r in caplog.records)
