"""The example models in ``models/`` batch concurrent requests, as the README says every model does.

An explicit ``max_batch_size`` without ``dynamic_batching`` runs every request alone (Triton's rule, kept on
purpose), so each example's ``config.yaml`` must say ``dynamic_batching``. Checked through tritonclient: the
model's Triton config names it, and after concurrent single-row requests the statistics count fewer model
runs (``execution_count``) than rows (``inference_count``).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from examples.build_models import RECIPES
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import grpc_zero_row

MODELS = Path(__file__).resolve().parents[2] / "models"
_REQUESTS = 192


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server(MODELS) as running:
        yield running


@pytest.mark.parametrize("model", sorted(RECIPES))
def test_example_model_declares_dynamic_batching(server: ServerProcess, model: str) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        config = client.get_model_config(model)
    finally:
        client.close()
    assert config["max_batch_size"] > 0
    assert "dynamic_batching" in config, f"{model}: config.yaml sets max_batch_size without dynamic_batching"


@pytest.mark.parametrize("model", sorted(RECIPES))
def test_concurrent_requests_share_model_runs(server: ServerProcess, model: str) -> None:
    inputs = grpc_zero_row(MODELS / model)
    answers: queue.Queue[BaseException | None] = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        # Every request is in flight at once: grpc's callbacks run on its own threads.
        for _ in range(_REQUESTS):
            client.async_infer(model, inputs, callback=lambda result, error: answers.put(error))
        errors = [answers.get(timeout=60) for _ in range(_REQUESTS)]
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    finally:
        client.close()
    assert errors == [None] * _REQUESTS
    rows, runs = int(stats["inference_count"]), int(stats["execution_count"])
    assert rows == _REQUESTS
    assert runs < rows, f"{model}: {rows} single-row requests ran as {runs} model runs (no batching)"
