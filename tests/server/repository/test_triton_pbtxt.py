"""A model folder with Triton's ``config.pbtxt`` and no ``config.yaml``: configured by it (batching,
instances, warm-up with a file in ``warmup/``, the response cache), and refused naming the file and the line
or key when it cannot be honoured; a folder with both is refused naming both (test_triton_repository.py has
the layouts of Triton's own documentation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.helpers.onnx_models import add_sub_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

PBTXT = """
name: "simple"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },
  { name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] }
]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
instance_group [ { kind: KIND_CPU count: 2 } ]
dynamic_batching { max_queue_delay_microseconds: 100 }
response_cache { enable: true }
model_warmup [
  {
    name: "from_file"
    batch_size: 2
    inputs {
      key: "INPUT0"
      value: { data_type: TYPE_FP32 dims: [ 16 ] input_data_file: "ones.bin" }
    }
    inputs {
      key: "INPUT1"
      value: { data_type: TYPE_FP32 dims: [ 16 ] zero_data: true }
    }
  }
]
"""

BAD_BATCH = """
max_batch_size: 8
model_warmup [ {
  name: "w" batch_size: 99
  inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [16] zero_data: true } }
  inputs { key: "INPUT1" value: { data_type: TYPE_FP32 dims: [16] zero_data: true } }
} ]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("pbtxt")
    write_model(root, "simple", add_sub_model("FP32", (-1, 16)))
    (root / "simple" / "config.pbtxt").write_text(PBTXT)
    (root / "simple" / "warmup").mkdir()
    (root / "simple" / "warmup" / "ones.bin").write_bytes(np.ones((2, 16), np.float32).tobytes())
    write_model(root, "unknown_key", add_sub_model("FP32", (-1, 16)))
    (root / "unknown_key" / "config.pbtxt").write_text(
        "max_batch_size: 8\nsequence_batching { max_sequence_idle_microseconds: 5000000 }\n"
    )
    write_model(root, "bad_value", add_sub_model("FP32", (-1, 16)))
    (root / "bad_value" / "config.pbtxt").write_text(BAD_BATCH)
    write_model(root, "both", add_sub_model("FP32", (-1, 16)), config={"max_batch_size": 4})
    (root / "both" / "config.pbtxt").write_text("max_batch_size: 8\n")
    with start_server(root, "--cache-size", str(1 << 20)) as server:
        yield server


def _config(server: ServerProcess, model: str) -> dict[str, Any]:
    response = httpx.get(f"http://{server.http_url}/v2/models/{model}/config", timeout=10)
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


def _index(server: ServerProcess) -> dict[str, tuple[str, str]]:
    rows = httpx.post(f"http://{server.http_url}/v2/repository/index", timeout=10).json()
    return {row["name"]: (row["state"], row.get("reason", "")) for row in rows}


def test_a_config_pbtxt_configures_its_model(server: ServerProcess) -> None:
    config = _config(server, "simple")
    assert config["max_batch_size"] == 8
    assert config["instance_group"][0]["count"] == 2
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 100
    assert config["response_cache"] == {"enable": True}
    stats = httpx.get(f"http://{server.http_url}/v2/models/simple/stats", timeout=10).json()["model_stats"][0]
    assert stats["modelport_warmup"]["samples"] == 1 and stats["modelport_warmup"]["count"] == 2
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        inputs = [httpclient.InferInput(n, [1, 16], "FP32") for n in ("INPUT0", "INPUT1")]
        for feed in inputs:
            feed.set_data_from_numpy(np.ones((1, 16), np.float32))
        for _ in range(2):
            assert client.infer("simple", inputs).as_numpy("OUTPUT0").tolist() == [[2.0] * 16]
    finally:
        client.close()
    stats = httpx.get(f"http://{server.http_url}/v2/models/simple/stats", timeout=10).json()["model_stats"][0]
    assert stats["inference_stats"]["cache_hit"]["count"] == 1


def test_a_config_pbtxt_that_cannot_be_honoured_names_the_file_and_what(server: ServerProcess) -> None:
    index = _index(server)
    state, reason = index["unknown_key"]
    assert state == "UNAVAILABLE" and "unknown_key/config.pbtxt" in reason and "sequence_batching" in reason
    state, reason = index["bad_value"]
    assert state == "UNAVAILABLE" and "bad_value/config.pbtxt" in reason
    assert "model_warmup[0] 'w'" in reason and "batch_size 99" in reason


def test_a_folder_with_both_configs_is_refused_naming_both(server: ServerProcess) -> None:
    state, reason = _index(server)["both"]
    assert state == "UNAVAILABLE" and "config.yaml" in reason and "config.pbtxt" in reason
