"""Tiny real ONNX models built with ``onnx.helper``, and a writer for Triton's repository layout.

Names follow Triton's examples: ``INPUT0``/``OUTPUT0`` for the identity and add/sub models, so the tests read
like Triton's client examples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "ALL_DATATYPES",
    "NUMERIC_DATATYPES",
    "add_sub_model",
    "densenet_like_model",
    "half_plus_three_model",
    "identity_all_model",
    "identity_model",
    "matmul_chain_model",
    "matmul_model",
    "mlp_model",
    "mlp_reference",
    "slow_model",
    "tag_signal_sensor_model",
    "write_config",
    "write_corrupt_model",
    "write_model",
]

# Open Inference Protocol datatype -> ONNX element type.
_ONNX_TYPES: dict[str, int] = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}
ALL_DATATYPES: tuple[str, ...] = tuple(_ONNX_TYPES)
NUMERIC_DATATYPES: tuple[str, ...] = tuple(d for d in ALL_DATATYPES if d not in ("BOOL", "BYTES"))

_OPSET = 17
_IR_VERSION = 9  # accepted by every onnxruntime >= 1.15

Dims = Sequence[int | str | None]


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="modelport-tests"
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def _dims(dims: Dims) -> list[int | str | None]:
    return ["batch" if d == -1 else d for d in dims]


def identity_model(datatype: str = "FP32", dims: Dims = (-1, 4)) -> onnx.ModelProto:
    """``OUTPUT0 = INPUT0`` for any datatype; -1 in ``dims`` is a dynamic dimension."""
    elem = _ONNX_TYPES[datatype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        f"identity_{datatype.lower()}",
        [helper.make_tensor_value_info("INPUT0", elem, _dims(dims))],
        [helper.make_tensor_value_info("OUTPUT0", elem, _dims(dims))],
    )
    return _model(graph)


def identity_all_model(dims: Dims = (-1, 4)) -> onnx.ModelProto:
    """One identity per datatype in one graph: ``OUTPUT_<DT> = INPUT_<DT>`` for every datatype.

    One model (one worker process) covers every datatype end to end.
    """
    shape = _dims(dims)
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"INPUT_{d}"], [f"OUTPUT_{d}"]) for d in ALL_DATATYPES],
        "identity_all",
        [helper.make_tensor_value_info(f"INPUT_{d}", _ONNX_TYPES[d], shape) for d in ALL_DATATYPES],
        [helper.make_tensor_value_info(f"OUTPUT_{d}", _ONNX_TYPES[d], shape) for d in ALL_DATATYPES],
    )
    return _model(graph)


def add_sub_model(datatype: str = "FP32", dims: Dims = (-1, 16)) -> onnx.ModelProto:
    """Triton's ``simple`` model: ``OUTPUT0 = INPUT0 + INPUT1``, ``OUTPUT1 = INPUT0 - INPUT1``."""
    elem = _ONNX_TYPES[datatype]
    shape = _dims(dims)
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        f"add_sub_{datatype.lower()}",
        [
            helper.make_tensor_value_info("INPUT0", elem, shape),
            helper.make_tensor_value_info("INPUT1", elem, shape),
        ],
        [
            helper.make_tensor_value_info("OUTPUT0", elem, shape),
            helper.make_tensor_value_info("OUTPUT1", elem, shape),
        ],
    )
    return _model(graph)


def densenet_like_model(weights: np.ndarray[Any, Any]) -> onnx.ModelProto:
    """The signature of Triton's ``densenet_onnx`` example: ``data_0`` FP32 [1, 3, 224, 224] ->
    ``fc6_1`` FP32 [1, 1000, 1, 1], here the channel means times ``weights`` [1000, 3] (a 1x1 Conv)."""
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["data_0"], ["pooled"]),
            helper.make_node("Conv", ["pooled", "weights"], ["fc6_1"]),
        ],
        "densenet_like",
        [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("fc6_1", TensorProto.FLOAT, [1, 1000, 1, 1])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32).reshape(1000, 3, 1, 1), "weights")],
    )
    return _model(graph)


def half_plus_three_model() -> onnx.ModelProto:
    """TF Serving's ``saved_model_half_plus_three`` test model: ``y = 0.5 * x + 3``, x and y FP32 [-1]."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "half"], ["half_x"]),
            helper.make_node("Add", ["half_x", "three"], ["y"]),
        ],
        "half_plus_three",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
        initializer=[
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
            numpy_helper.from_array(np.array(3.0, np.float32), "three"),
        ],
    )
    return _model(graph)


def tag_signal_sensor_model() -> onnx.ModelProto:
    """The three named inputs of TF Serving's REST docs (``tag`` string, ``signal`` INT32 [5], ``sensor``
    FP32 [2, 2], each with a batch dimension), answered back as ``tag_bytes`` (a ``_bytes`` name: base64 in
    TF Serving's JSON), ``signal_sum`` (INT32, the sum of each row) and ``sensor_twice`` (2 x sensor)."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["tag"], ["tag_bytes"]),
            helper.make_node("ReduceSum", ["signal", "axes"], ["signal_sum"], keepdims=0),
            helper.make_node("Add", ["sensor", "sensor"], ["sensor_twice"]),
        ],
        "tag_signal_sensor",
        [
            helper.make_tensor_value_info("tag", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("signal", TensorProto.INT32, ["batch", 5]),
            helper.make_tensor_value_info("sensor", TensorProto.FLOAT, ["batch", 2, 2]),
        ],
        [
            helper.make_tensor_value_info("tag_bytes", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("signal_sum", TensorProto.INT32, ["batch"]),
            helper.make_tensor_value_info("sensor_twice", TensorProto.FLOAT, ["batch", 2, 2]),
        ],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    return _model(graph)


def mlp_model(features: int = 16, hidden: int = 32, classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    """A batching MLP: ``features`` FP32 [-1, features] -> ``probabilities`` FP32 [-1, classes] (softmax)."""
    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.standard_normal((features, hidden)).astype(np.float32),
        "b1": rng.standard_normal(hidden).astype(np.float32),
        "w2": rng.standard_normal((hidden, classes)).astype(np.float32),
        "b2": rng.standard_normal(classes).astype(np.float32),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["features", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["a"]),
            helper.make_node("Gemm", ["a", "w2", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    return _model(graph)


def matmul_chain_model(width: int = 1024, layers: int = 64) -> onnx.ModelProto:
    """``y = x @ W`` repeated ``layers`` times: tens of ms for 64 rows on these CPUs (compute-bound)."""
    weight = (np.eye(width, dtype=np.float32) * 0.999).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", "w"], [f"h{i + 1}"]) for i in range(layers)
    ]
    nodes.append(helper.make_node("Identity", [f"h{layers}"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    return _model(graph)


def matmul_model(features: int = 16, outputs: int = 16) -> onnx.ModelProto:
    """``INPUT0`` FP32 [-1, features] @ a FP32 ``features x outputs`` weight -> ``OUTPUT0`` [-1, outputs].

    Its size is the weight's (4 bytes per element): for tests about where a model's weights live.
    """
    weight = np.random.default_rng(2).standard_normal((features, outputs)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["INPUT0", "weight"], ["OUTPUT0"])],
        "matmul",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", outputs])],
        initializer=[numpy_helper.from_array(weight, "weight")],
    )
    return _model(graph)


def mlp_reference(model: onnx.ModelProto, features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What :func:`mlp_model` computes, in numpy (for checking the server's answers)."""
    w = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    hidden = np.maximum(features @ w["w1"] + w["b1"], 0)
    logits = hidden @ w["w2"] + w["b2"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: np.ndarray[Any, Any] = exp / exp.sum(axis=1, keepdims=True)
    return result


def slow_model(size: int = 128) -> onnx.ModelProto:
    """Work proportional to the request: ``ITERATIONS`` INT64 [1] runs that many ``tanh(x @ W)`` steps.

    ``OUTPUT0`` FP32 [size, size]; for tests that need a request to stay in flight for a while.
    """
    rng = np.random.default_rng(1)
    weight = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    start = np.ones((size, size), dtype=np.float32)
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["state_in", "W"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
        ],
        "step",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [size, size]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [size, size]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Squeeze", ["ITERATIONS"], ["trips"]),
            helper.make_node("Loop", ["trips", "keep_going", "start"], ["OUTPUT0"], body=body),
        ],
        "slow",
        [helper.make_tensor_value_info("ITERATIONS", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [size, size])],
        initializer=[
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(start, "start"),
            numpy_helper.from_array(np.array(True), "keep_going"),
        ],
    )
    return _model(graph)


def slow_infer(url: str, iterations: int) -> Any:
    """One request of ``iterations`` to the :func:`slow_model` served as ``slow`` at ``url`` (REST), with its
    own client; the output."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url, network_timeout=60.0)
    tensor = httpclient.InferInput("ITERATIONS", [1], "INT64")
    tensor.set_data_from_numpy(np.array([iterations], dtype=np.int64))
    try:
        return client.infer("slow", [tensor]).as_numpy("OUTPUT0")
    finally:
        client.close()


def slow_iterations(infer: Callable[[int], object], seconds: float) -> int:
    """How many ``ITERATIONS`` keep :func:`slow_model` busy for about ``seconds`` where it is served.

    ``infer(n)`` runs one request of ``n`` iterations. The count grows until one request takes 0.2 s, so the
    request's own round trip (milliseconds on a loaded machine) does not pass for model time, then scales:
    a few requests, the last under about a second.
    """
    count = 1_000
    while True:
        started = time.monotonic()
        infer(count)
        elapsed = time.monotonic() - started
        if elapsed >= 0.2 or count >= 100_000_000:
            return max(1, int(count * seconds / elapsed))
        count *= 4


def write_model(
    repository: Path,
    name: str,
    model: onnx.ModelProto,
    *,
    version: int | str = 1,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``REPO/name/version/model.onnx`` (and ``config.yaml`` when given); returns the model file."""
    path = repository / name / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed, so a polling server never sees half a file.
    partial = path.with_suffix(".partial")
    partial.write_bytes(model.SerializeToString())
    partial.replace(path)
    if config is not None:
        write_config(repository, name, config)
    return path


def write_config(repository: Path, name: str, config: Mapping[str, Any] | str) -> Path:
    """Write ``REPO/name/config.yaml`` from a mapping, or verbatim from a string."""
    path = repository / name / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else yaml.safe_dump(dict(config), sort_keys=False)
    path.write_text(text)
    return path


def write_corrupt_model(repository: Path, name: str, *, version: int = 1) -> Path:
    """Write a ``model.onnx`` that is not an ONNX model."""
    path = repository / name / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an onnx model\x00\x01\x02")
    return path
