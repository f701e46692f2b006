"""The management API's TorchServe parts through the real server: the model list's pages, describe with
TorchServe's field names, ``/models/M/all``, ``set-default`` (followed by ``/predictions/M``) and
``/api-description``, called as TorchServe's management documentation calls them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.helpers.onnx_models import mlp_model, mlp_reference, write_model
from tests.helpers.server_process import ServerProcess, start_server

V1, V2 = mlp_model(seed=1), mlp_model(seed=2)
NAMES = ["alpha", "beta", "delta", "gamma", "noop"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("torchserve-management")
    for name in NAMES[:-1]:
        write_model(root, name, V1)
    write_model(root, "noop", V1, version=1, config={"version_policy": {"all": True}})
    write_model(root, "noop", V2, version=2)
    with start_server(root) as handle:
        yield handle


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.management_url}", timeout=30) as client:
        yield client


def test_models_come_in_pages(api: httpx.Client) -> None:
    # curl "http://localhost:8081/models?limit=2&next_page_token=2"
    first = api.get("/models", params={"limit": 2}).json()
    assert [m["modelName"] for m in first["models"]] == NAMES[:2] and first["nextPageToken"] == "2"
    second = api.get("/models", params={"limit": 2, "next_page_token": first["nextPageToken"]}).json()
    assert [m["modelName"] for m in second["models"]] == NAMES[2:4] and second["nextPageToken"] == "4"
    last = api.get("/models", params={"limit": 2, "next_page_token": "4"}).json()
    assert last == {"models": [{"modelName": "noop", "modelUrl": "noop"}]}
    assert "nextPageToken" not in api.get("/models").json()  # default limit 100
    bad = api.get("/models", params={"next_page_token": "abc"})
    assert bad.status_code == 400 and "next_page_token" in bad.json()["message"]


def test_describe_has_torchserve_fields(api: httpx.Client) -> None:
    [entry] = api.get("/models/alpha").json()
    for field in ("modelName", "modelVersion", "modelUrl", "engine", "runtime", "minWorkers", "maxWorkers"):
        assert field in entry, field
    assert {"batchSize", "maxBatchDelay", "workers", "jobQueueStatus"} <= set(entry)
    [worker] = entry["workers"]
    assert {"id", "startTime", "status", "gpu", "memoryUsage"} <= set(worker)
    assert worker["gpu"] is False and worker["memoryUsage"] >= 0
    assert {"remainingCapacity", "pendingRequests"} <= set(entry["jobQueueStatus"])


def test_default_version_all_versions_and_set_default(server: ServerProcess, api: httpx.Client) -> None:
    features = np.random.default_rng(7).standard_normal((1, 16)).astype(np.float32)
    predictions = f"http://{server.http_url}/predictions/noop"

    def predicted() -> list[float]:
        answer: list[float] = httpx.post(predictions, json=features[0].tolist(), timeout=30).json()
        return answer

    assert [e["modelVersion"] for e in api.get("/models/noop/all").json()] == ["1", "2"]
    assert [e["modelVersion"] for e in api.get("/models/noop").json()] == ["2"]  # the highest: the default
    np.testing.assert_allclose(predicted(), mlp_reference(V2, features)[0], rtol=1e-4, atol=1e-6)
    # curl -v -X PUT http://localhost:8081/models/noop/2.0/set-default (here 1.0)
    response = api.put("/models/noop/1.0/set-default")
    assert response.status_code == 200 and "noop" in response.json()["status"], response.text
    assert [e["modelVersion"] for e in api.get("/models/noop").json()] == ["1"]
    np.testing.assert_allclose(predicted(), mlp_reference(V1, features)[0], rtol=1e-4, atol=1e-6)
    missing = api.put("/models/noop/9/set-default")
    assert missing.status_code == 404 and "9" in missing.json()["message"]
    assert api.put("/models/nope/1/set-default").status_code == 404
    assert api.put("/models/noop/2/set-default").status_code == 200
    np.testing.assert_allclose(predicted(), mlp_reference(V2, features)[0], rtol=1e-4, atol=1e-6)


def test_api_description_is_the_openapi_document(api: httpx.Client) -> None:
    document = api.get("/api-description").json()
    assert document["openapi"].startswith("3.")
    assert {"/models", "/models/{model_name}", "/models/{model_name}/{model_version}/set-default"} <= set(
        document["paths"]
    )
    assert api.options("/").json()["paths"] == document["paths"]
