"""A model's weights live in its worker processes only: the server process opens each version just long
enough to read its signature, so its own memory does not grow with the model's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import tritonclient.http as httpclient

from tests.helpers.onnx_models import matmul_model, write_model
from tests.helpers.server_process import start_server

BIG_MB = 48  # 3072 x 4096 FP32


def _server_rss_mb(repository: Path, features: int) -> float:
    write_model(repository, "weights", matmul_model(features, 4096), config={"workers": {"min": 1, "max": 1}})
    with start_server(repository, "--instance-kind", "process") as server:
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            tensor = httpclient.InferInput("INPUT0", [1, features], "FP32")
            tensor.set_data_from_numpy(np.ones((1, features), np.float32))
            assert client.infer("weights", [tensor]).as_numpy("OUTPUT0").shape == (1, 4096)
        finally:
            client.close()
        return float(psutil.Process(server.process.pid).memory_info().rss) / 2**20


def test_server_rss_does_not_grow_with_the_model(tmp_path: Path) -> None:
    small = _server_rss_mb(tmp_path / "small", 4)  # 64 KiB of weights
    big = _server_rss_mb(tmp_path / "big", BIG_MB * 2**20 // (4 * 4096))
    # Holding the weights in the server process too would add at least BIG_MB.
    assert big - small < BIG_MB / 3, (
        f"server RSS {small:.0f} MiB with a tiny model, {big:.0f} MiB with a 48 MiB one"
    )
