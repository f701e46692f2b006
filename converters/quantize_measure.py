"""What the report measures besides accuracy: median latency on this CPU and nodes quantized by op type."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

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
    inputs = dict(feed)
    for _ in range(_WARMUP_RUNS):
        session.run(None, inputs)
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        session.run(None, inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def _quantized_op(node: onnx.NodeProto, produced_by: Mapping[str, str]) -> str | None:
    if node.op_type in _QDQ_OPS:
        return None
    if node.op_type in _QUANTIZED_OPS:
        return _QUANTIZED_OPS[node.op_type]
    if node.op_type.startswith("QLinear"):
        return node.op_type.removeprefix("QLinear")
    if any(produced_by.get(name) == "DequantizeLinear" for name in node.input):  # QDQ: float op between Q/DQ
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
    produced_by = {out: node.op_type for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        op = _quantized_op(node, produced_by)
        if op is not None:
            counts[op] += 1
    return dict(sorted(counts.items()))
