"""Registering a model that is already loaded answers 409 Conflict, as TorchServe's management API does.

Through the real server's management port with httpx: the model keeps serving, and once unregistered it
registers again.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.onnx_models import mlp_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

CONFIG = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 500}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("register-repo")
    write_model(root, "mlp", mlp_model(), config=CONFIG)
    with start_server(root, "--model-control", "explicit", "--load-model", "mlp") as handle:
        yield handle


def test_registering_a_loaded_model_is_409_and_it_keeps_serving(server: ServerProcess) -> None:
    with httpx.Client(base_url=f"http://{server.management_url}", timeout=30) as management:
        again = management.post("/models", params={"url": "mlp"})
        assert again.status_code == 409, again.text
        body = again.json()
        assert body["code"] == 409
        assert "'mlp' is already registered" in body["message"] and "DELETE /models/mlp" in body["message"]
        ready = httpx.get(f"http://{server.http_url}/v2/models/mlp/ready", timeout=10)
        assert ready.status_code == 200

        assert management.delete("/models/mlp").status_code == 200
        registered = management.post("/models", params={"url": "mlp"})
        assert registered.status_code == 200, registered.text
        assert "registered" in registered.json()["status"]
