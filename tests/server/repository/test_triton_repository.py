"""A Triton model repository served unchanged: ``REPO/M/config.pbtxt`` (protobuf text format) read instead of
``config.yaml``, laid out and worded as Triton's docs/examples/model_repository (the config text of its
``simple``, ``densenet_onnx`` (with its ``reshape``), ``simple_sequence`` and ``simple_identity`` models),
with tiny ONNX models built here. What the server does not do refuses that model naming the field; the rest
of the repository serves. Checked through tritonclient.http, as a Triton user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.helpers.onnx_models import add_sub_model, densenet_like_model, identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

# docs/examples/model_repository/simple/config.pbtxt, verbatim.
SIMPLE = """
name: "simple"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {
    name: "INPUT0"
    data_type: TYPE_INT32
    dims: [ 16 ]
  },
  {
    name: "INPUT1"
    data_type: TYPE_INT32
    dims: [ 16 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_INT32
    dims: [ 16 ]
  },
  {
    name: "OUTPUT1"
    data_type: TYPE_INT32
    dims: [ 16 ]
  }
]
"""

# docs/examples/model_repository/densenet_onnx/config.pbtxt, verbatim: clients send [3, 224, 224] and get
# [1000]; the graph takes [1, 3, 224, 224] and gives [1, 1000, 1, 1].
DENSENET = """
name: "densenet_onnx"
platform: "onnxruntime_onnx"
max_batch_size : 0
input [
  {
    name: "data_0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape { shape: [ 1, 3, 224, 224 ] }
  }
]
output [
  {
    name: "fc6_1"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    reshape { shape: [ 1, 1000, 1, 1 ] }
    label_filename: "densenet_labels.txt"
  }
]
"""
WEIGHTS = np.random.default_rng(0).normal(size=(1000, 3))
# reshape with batching: per row, clients send and get [4], the graph takes and gives [2, 2].
ROWS = """
max_batch_size: 4
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 4 ], reshape { shape: [ 2, 2 ] } } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 4 ], reshape { shape: [ 2, 2 ] } } ]
dynamic_batching { }
"""

# The fields of docs/user_guide/model_configuration.md this server honours, in one model.
TUNED = """
name: "tuned"
backend: "onnxruntime"
max_batch_size: 8
input [
  {
    name: "INPUT0"
    data_type: TYPE_FP32
    format: FORMAT_NONE
    dims: [ 4 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ 4 ]
    label_filename: "tuned_labels.txt"
  }
]
version_policy: { specific: { versions: [1, 3] } }
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  default_queue_policy { max_queue_size: 33 }
}
instance_group [
  {
    count: 2
    kind: KIND_CPU
  }
]
optimization { graph : { level : 1 } }
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
"""

# docs/examples/model_repository/simple_sequence/config.pbtxt (the sequence batcher is not done here).
SEQUENCE = """
name: "simple_sequence"
platform: "onnxruntime_onnx"
max_batch_size: 8
sequence_batching {
  control_input [
    {
      name: "START"
      control [
        {
          kind: CONTROL_SEQUENCE_START
          int32_false_true: [ 0, 1 ]
        }
      ]
    }
  ]
}
input [ { name: "INPUT", data_type: TYPE_INT32, dims: [ 1 ] } ]
output [ { name: "OUTPUT", data_type: TYPE_INT32, dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU } ]
"""

# docs/examples/model_repository/simple_identity/config.pbtxt (a Python backend model).
PYTHON_BACKEND = """
name: "simple_identity"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0", data_type: TYPE_STRING, dims: [ -1 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_STRING, dims: [ -1 ] } ]
"""

ENSEMBLE = """
name: "pipeline"
platform: "ensemble"
max_batch_size: 8
input [ { name: "INPUT0", data_type: TYPE_INT32, dims: [ 16 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_INT32, dims: [ 16 ] } ]
ensemble_scheduling {
  step [
    {
      model_name: "simple"
      model_version: -1
      input_map { key: "INPUT0" value: "INPUT0" }
      output_map { key: "OUTPUT0" value: "OUTPUT0" }
    }
  ]
}
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("triton-repo")
    write_model(repo, "simple", add_sub_model("INT32", (-1, 16)))
    write_model(repo, "densenet_onnx", densenet_like_model(WEIGHTS))
    (repo / "densenet_onnx" / "densenet_labels.txt").write_text("".join(f"class {i}\n" for i in range(1000)))
    for version in (1, 2, 3):
        write_model(repo, "tuned", identity_model("FP32", (-1, 4)), version=version)
    (repo / "tuned" / "tuned_labels.txt").write_text("a\nb\nc\nd\n")
    write_model(repo, "simple_sequence", identity_model("INT32", (-1, 1)))
    (repo / "simple_identity" / "1").mkdir(parents=True)
    (repo / "simple_identity" / "1" / "model.py").write_text("# a Python backend model\n")
    write_model(repo, "pipeline", identity_model("INT32", (-1, 16)))
    write_model(repo, "broken", identity_model("FP32", (-1, 4)))
    write_model(repo, "misreshaped", identity_model("FP32", (-1, -1)))
    write_model(repo, "rows", identity_model("FP32", (-1, 2, 2)))
    (repo / "renamed" / "2").mkdir(parents=True)
    (repo / "renamed" / "2" / "model_a.onnx").write_bytes(
        identity_model("INT64", (-1, 3)).SerializeToString()
    )
    write_model(repo, "both", identity_model("FP32", (-1, 4)), config={"max_batch_size": 4})
    texts = {
        "simple": SIMPLE,
        "densenet_onnx": DENSENET,
        "tuned": TUNED,
        "simple_sequence": SEQUENCE,
        "simple_identity": PYTHON_BACKEND,
        "pipeline": ENSEMBLE,
        "broken": 'name: "broken"\ninput [ { name: "INPUT0" dims: [ 4 }\n',
        "misreshaped": 'max_batch_size: 8 input [ { name: "INPUT0" dims: [ 4 ] reshape { shape: [ 3 ] } } ]',
        "both": 'name: "both"\nmax_batch_size: 4\n',
        "rows": ROWS,
        "renamed": 'default_model_filename: "model_a.onnx"\nmax_batch_size: 2',
    }
    for name, text in texts.items():
        (repo / name / "config.pbtxt").write_text(text)
    return repo


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with start_server(repository) as handle:
        yield handle


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    triton = httpclient.InferenceServerClient(server.http_url)
    yield triton
    triton.close()


def _reasons(client: httpclient.InferenceServerClient) -> dict[str, str]:
    return {row["name"]: row.get("reason", "") for row in client.get_model_repository_index()}


def test_tritons_simple_example_serves(client: httpclient.InferenceServerClient) -> None:
    assert client.is_model_ready("simple")
    config = client.get_model_config("simple")
    assert config["max_batch_size"] == 8
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("INPUT0", "TYPE_INT32", [16]),
        ("INPUT1", "TYPE_INT32", [16]),
    ]
    first = np.arange(32, dtype=np.int32).reshape(2, 16)
    second = np.full((2, 16), 3, dtype=np.int32)
    inputs = []
    for name, data in (("INPUT0", first), ("INPUT1", second)):
        tensor = httpclient.InferInput(name, list(data.shape), "INT32")
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    result = client.infer("simple", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), first + second)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), first - second)


def test_tritons_densenet_example_reshapes(client: httpclient.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("densenet_onnx")
    assert [t["shape"] for t in metadata["inputs"]] == [[3, 224, 224]]
    assert [t["shape"] for t in metadata["outputs"]] == [[1000]]
    config = client.get_model_config("densenet_onnx")
    assert [int(d) for d in config["input"][0]["reshape"]["shape"]] == [1, 3, 224, 224]
    image = np.random.default_rng(1).random((3, 224, 224), dtype=np.float32)
    tensor = httpclient.InferInput("data_0", [3, 224, 224], "FP32")
    tensor.set_data_from_numpy(image)
    scores = client.infer("densenet_onnx", [tensor]).as_numpy("fc6_1")
    assert scores is not None and scores.shape == (1000,)
    np.testing.assert_allclose(scores, WEIGHTS @ image.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_reshape_keeps_the_batch_dimension(client: httpclient.InferenceServerClient) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = httpclient.InferInput("INPUT0", [3, 4], "FP32")
    tensor.set_data_from_numpy(rows)
    np.testing.assert_array_equal(client.infer("rows", [tensor]).as_numpy("OUTPUT0"), rows)


def test_default_model_filename_names_the_graph_file(client: httpclient.InferenceServerClient) -> None:
    assert client.is_model_ready("renamed", "2")
    config = client.get_model_config("renamed")
    assert (config["default_model_filename"], config["input"][0]["data_type"]) == (
        "model_a.onnx",
        "TYPE_INT64",
    )


def test_config_fields_are_honoured(client: httpclient.InferenceServerClient) -> None:
    served = {row["version"] for row in client.get_model_repository_index() if row["name"] == "tuned"}
    assert {v for v in served if client.is_model_ready("tuned", v)} == {"1", "3"}
    config: dict[str, Any] = client.get_model_config("tuned", "3")
    batching = config["dynamic_batching"]
    assert [int(size) for size in batching["preferred_batch_size"]] == [4, 8]
    assert int(batching["max_queue_delay_microseconds"]) == 100
    assert int(batching["default_queue_policy"]["max_queue_size"]) == 33
    assert sum(int(group["count"]) for group in config["instance_group"]) == 2
    assert config["optimization"]["graph"]["level"] == 1
    assert config["output"][0]["label_filename"]  # the labels file was read


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("simple_sequence", "sequence_batching"),
        ("simple_identity", "backend: 'python'"),
        ("pipeline", "platform: 'ensemble'"),
        ("broken", "2:"),  # the line of the syntax error
        ("misreshaped", "reshape: [3] holds 3 elements but dims [4] hold 4"),
        ("both", "has both config.yaml and config.pbtxt"),
    ],
)
def test_what_is_not_done_refuses_that_model_naming_the_field(
    client: httpclient.InferenceServerClient, model: str, field: str
) -> None:
    assert not client.is_model_ready(model)
    reason = _reasons(client)[model]
    assert field in reason, reason
    if model not in ("both",):
        assert "config.pbtxt" in reason, reason
    assert client.is_model_ready("simple")  # the rest of the repository serves
