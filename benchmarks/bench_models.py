"""The two benchmark models, built with onnx.helper: a small MLP and a compute-bound CNN.

- ``mlp``: 64 -> 256 -> 256 -> 10 (Gemm/ReLU, softmax), the model Triton's reference numbers were taken on.
- ``cnn``: 3x64x64 image -> three VGG-style blocks of two 3x3 conv/ReLU layers (64, 128, 256 channels) with
  max-pooling between them -> global average pool -> 10 classes. About 0.6 GMAC: 7-8 ms per image on one
  core of our machines, the "several ms per inference" the speed issue asks for, so the comparison with raw
  ONNX Runtime shows the cost of serving next to real compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["BenchModel", "cnn", "mlp"]

_OPSET = 17


@dataclass(frozen=True)
class BenchModel:
    """A model, the name and per-row shape of its one FP32 input, and its output's name."""

    name: str
    proto: onnx.ModelProto
    input_name: str
    row_shape: tuple[int, ...]
    output_name: str


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="bench")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def mlp(seed: int = 0) -> BenchModel:
    """64 -> 256 -> 256 -> 10 with ReLU and a softmax."""
    rng = np.random.default_rng(seed)
    sizes = [(64, 256), (256, 256), (256, 10)]
    inits, nodes, current = [], [], "features"
    for i, (n_in, n_out) in enumerate(sizes):
        inits.append(
            numpy_helper.from_array((rng.standard_normal((n_in, n_out)) * 0.1).astype(np.float32), f"w{i}")
        )
        inits.append(numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{i}"))
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"g{i}"]))
        current = f"g{i}"
        if i < len(sizes) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    return BenchModel("mlp", _finish(graph), "features", (64,), "probabilities")


def cnn(seed: int = 0, convs_per_block: int = 2) -> BenchModel:
    """Three blocks of ``convs_per_block`` 3x3 conv/ReLU layers on a 3x64x64 image, global average pooling,
    10 classes. One conv per block is the ~2 ms model of earlier benchmark runs."""
    rng = np.random.default_rng(seed)
    inits, nodes, current, channels = [], [], "images", 3
    layers = [(i, out) for i, out in enumerate((64, 128, 256)) for _ in range(convs_per_block)]
    for k, (i, out) in enumerate(layers):
        weight = (rng.standard_normal((out, channels, 3, 3)) * (2.0 / (channels * 9)) ** 0.5).astype(
            np.float32
        )
        inits.append(numpy_helper.from_array(weight, f"k{k}"))
        inits.append(numpy_helper.from_array(np.zeros(out, np.float32), f"c{k}"))
        nodes.append(helper.make_node("Conv", [current, f"k{k}", f"c{k}"], [f"conv{k}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{k}"], [f"relu{k}"]))
        current = f"relu{k}"
        channels = out
        last_of_block = k + 1 == len(layers) or layers[k + 1][0] != i
        if last_of_block and i < 2:
            nodes.append(
                helper.make_node("MaxPool", [current], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2])
            )
            current = f"pool{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [current], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    dense = (rng.standard_normal((channels, 10)) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(dense, "wd"), numpy_helper.from_array(np.zeros(10, np.float32), "bd")]
    nodes.append(helper.make_node("Gemm", ["flat", "wd", "bd"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    return BenchModel("cnn", _finish(graph), "images", (3, 64, 64), "logits")
