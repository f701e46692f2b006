"""What the report measures besides accuracy: median latency on this CPU and nodes quantized by op type."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from .sample_choice import cast_feed

if TYPE_CHECKING:
    import onnx

__all__ = ["LATENCY_THREADS", "count_converted_nodes", "median_latency_ms"]

# One intra-op thread: the figures compare models, not machines, and stay steady on a shared CPU (and a phone
# runs a model on one or a few cores).
LATENCY_THREADS = 1
_WARMUP_RUNS = 3
# Quantized operators of the ai.onnx and com.microsoft domains -> the float operator they replace.
_QUANTIZED_OPS = {
    "QLinearConv": "Conv",
    "QLinearMatMul": "MatMul",
    "MatMulInteger": "MatMul",
    "ConvInteger": "Conv",
    "DynamicQuantizeMatMul": "MatMul",
    "MatMulIntegerToFloat": "MatMul",
    "DynamicQuantizeLSTM": "LSTM",
    "QGemm": "Gemm",
    "QAttention": "Attention",
    "QEmbedLayerNormalization": "EmbedLayerNormalization",
}
_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


def median_latency_ms(
    model_path: Path,
    feed: Mapping[str, npt.NDArray[Any]],
    runs: int,
    *,
    session_config: Mapping[str, str] | None = None,
) -> float:
    """Median wall time of ``runs`` single runs of ``feed`` (after a short warm-up), in milliseconds."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = LATENCY_THREADS
    options.inter_op_num_threads = 1
    for key, value in (session_config or {}).items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    inputs = cast_feed(session, feed)
    for _ in range(_WARMUP_RUNS):
        session.run(None, inputs)
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        session.run(None, inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def _quantized_op(node: onnx.NodeProto, int8: set[str], qdq_outputs: set[str]) -> str | None:
    if node.op_type in _QDQ_OPS:
        return None
    if node.op_type in _QUANTIZED_OPS:
        return _QUANTIZED_OPS[node.op_type]
    if node.op_type.startswith("QLinear"):
        return node.op_type.removeprefix("QLinear")
    # An op reading 8-bit data (a quantized embedding table, a uint8 activation), or, in the QDQ format, a
    # float op whose input passed through a Q/DQ pair or is a dequantized weight: ORT runs it on 8-bit data.
    if any(name in int8 or name in qdq_outputs for name in node.input):
        return node.op_type
    return None


def count_converted_nodes(model: onnx.ModelProto, mode: str) -> dict[str, int]:
    """Nodes now computing in lower precision, by the float op type they replace, sorted by op type.

    INT8: the quantized operators (QOperator format and dynamic mode) and the float operators fed by
    ``DequantizeLinear`` (QDQ format). FP16: the nodes with a float16 output (after shape inference), less the
    ``Cast`` nodes the conversion adds at the model's edges.
    """
    import onnx

    counts: Counter[str] = Counter()
    if mode == "float16":
        inferred = onnx.shape_inference.infer_shapes(model)
        graph = inferred.graph
        elem = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]}
        for node in graph.node:
            if node.op_type != "Cast" and any(elem.get(o) == onnx.TensorProto.FLOAT16 for o in node.output):
                counts[node.op_type] += 1
        return dict(sorted(counts.items()))
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    int8 = {t.name for t in model.graph.initializer if t.data_type in eight_bit}
    produced_by = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DynamicQuantizeLinear") or node.op_type.startswith("QLinear"):
            int8.add(node.output[0])
    initializers = {t.name for t in model.graph.initializer}

    def dequantizes_quantized(dq: onnx.NodeProto) -> bool:
        producer = produced_by.get(dq.input[0])
        return producer.op_type == "QuantizeLinear" if producer else dq.input[0] in initializers

    qdq_outputs = {
        node.output[0]
        for node in model.graph.node
        if node.op_type == "DequantizeLinear" and dequantizes_quantized(node)
    }
    for node in model.graph.node:
        op = _quantized_op(node, int8, qdq_outputs)
        if op is not None:
            counts[op] += 1
    return dict(sorted(counts.items()))
