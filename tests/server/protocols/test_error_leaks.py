"""Error answers carry no server filesystem paths and no tracebacks (issue 12, "Leaks").

A repository with models that cannot load (a corrupt ``model.onnx``, a ``config.yaml`` that is not YAML, a
version folder without a model): the repository index and the errors of requests to them keep their reasons,
relative to the repository, over REST and gRPC.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.onnx_models import identity_model, write_config, write_corrupt_model, write_model
from tests.helpers.server_process import ServerProcess, start_server


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leaks")
    write_corrupt_model(root, "corrupt")
    write_model(root, "badyaml", identity_model("FP32"))
    write_config(root, "badyaml", "inputs: [\n")
    (root / "emptyver" / "1").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with start_server(repository) as process:
        yield process


def _assert_clean(text: str, repository: Path) -> None:
    assert str(repository) not in text and str(repository.resolve()) not in text, text
    assert "/tmp/" not in text and "Traceback" not in text, text


def test_repository_index_reasons_are_relative_to_the_repository(
    server: ServerProcess, repository: Path
) -> None:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30.0) as http:
        rows = {row["name"]: row["reason"] for row in http.post("/v2/repository/index").json()}
    assert rows["corrupt"].startswith("corrupt/1/model.onnx: not a valid ONNX model"), rows
    assert rows["badyaml"].startswith("badyaml/config.yaml: not valid YAML"), rows
    assert rows["emptyver"] == "emptyver/1/model.onnx: file not found", rows
    for reason in rows.values():
        _assert_clean(reason, repository)


def test_infer_errors_name_the_cause_without_paths(server: ServerProcess, repository: Path) -> None:
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30.0) as http:
        response = http.post("/v2/models/corrupt/infer", json=body)
    assert response.status_code in (400, 503), response.text
    assert "corrupt/1/model.onnx: not a valid ONNX model" in response.json()["error"]
    _assert_clean(response.text, repository)
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub: Any = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped
        with pytest.raises(grpc.RpcError) as failure:
            stub.ModelMetadata(pb.ModelMetadataRequest(name="corrupt"), timeout=30)
    _assert_clean(failure.value.details() or "", repository)
