"""``--int8-io``: a static QDQ model's inputs and outputs carried in 8 bits, as mobile pipelines feed them.

A QDQ model quantizes each input with a ``QuantizeLinear`` right after the graph input and dequantizes each
output with a ``DequantizeLinear`` right before the graph output. Removing those boundary nodes makes the
graph take and give the 8-bit tensors themselves: the caller quantizes an input as ``q = clip(round(x /
scale) + zero_point)`` and reads an output as ``(q - zero_point) * scale``, with the scale and zero point
reported here. The model computes exactly what it computed before. An input or output whose boundary is not
such a node (an output of an operator ONNX Runtime leaves in float) stays float, and
the notes say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["IoQuantization", "dequantize", "int8_io", "quantize_feed"]


@dataclass(frozen=True, slots=True)
class IoQuantization:
    """One graph input or output now carried in 8 bits, and how to convert it."""

    name: str
    kind: Literal["input", "output"]
    dtype: str  # "uint8" | "int8"
    scale: float
    zero_point: int


def _scalar(model: onnx.ModelProto, name: str) -> np.ndarray[Any, Any] | None:
    for initializer in model.graph.initializer:
        if initializer.name == name:
            value = numpy_helper.to_array(initializer)
            return value if value.size == 1 else None
    return None


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def _boundary(model: onnx.ModelProto, node: onnx.NodeProto) -> tuple[float, np.ndarray[Any, Any]] | None:
    """(scale, zero point) of a Q/DQ node with scalar, initializer-held parameters."""
    if len(node.input) < 3:
        return None
    scale, zero_point = _scalar(model, node.input[1]), _scalar(model, node.input[2])
    if scale is None or zero_point is None:
        return None
    return float(scale.reshape(())), zero_point.reshape(())


def _inputs(model: onnx.ModelProto, found: list[IoQuantization], notes: list[str]) -> None:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        readers = [n for n in graph.node if value.name in n.input]
        params = [_boundary(model, n) if n.op_type == "QuantizeLinear" else None for n in readers]
        first = params[0] if params else None
        if first is None or any(
            p is None or (p[0], p[1].item()) != (first[0], first[1].item()) for p in params
        ):
            notes.append(f"input '{value.name}' stays float: it is not read by one QuantizeLinear alone")
            continue
        for node in readers:
            graph.node.remove(node)
            _rename_uses(graph, node.output[0], value.name)
        value.type.tensor_type.elem_type = onnx.helper.np_dtype_to_tensor_dtype(first[1].dtype)
        found.append(IoQuantization(value.name, "input", first[1].dtype.name, first[0], int(first[1])))


def _outputs(model: onnx.ModelProto, found: list[IoQuantization], notes: list[str]) -> None:
    graph = model.graph
    for value in graph.output:
        producer = next((n for n in graph.node if value.name in n.output), None)
        params = (
            _boundary(model, producer)
            if producer is not None and producer.op_type == "DequantizeLinear"
            else None
        )
        if producer is None or params is None or any(value.name in n.input for n in graph.node):
            kind = producer.op_type if producer is not None else "nothing"
            notes.append(f"output '{value.name}' stays float: {kind} computes it, not a DequantizeLinear")
            continue
        quantized = producer.input[0]
        graph.node.remove(producer)
        _rename_uses(graph, quantized, value.name)
        value.type.tensor_type.elem_type = onnx.helper.np_dtype_to_tensor_dtype(params[1].dtype)
        found.append(IoQuantization(value.name, "output", params[1].dtype.name, params[0], int(params[1])))


def int8_io(model: onnx.ModelProto) -> tuple[list[IoQuantization], list[str]]:
    """Carry ``model``'s inputs and outputs in 8 bits where its QDQ boundary allows, in place; returns what
    changed and, for what could not, why."""
    found: list[IoQuantization] = []
    notes: list[str] = []
    _inputs(model, found, notes)
    _outputs(model, found, notes)
    return found, notes


def quantize_feed(
    feed: Mapping[str, np.ndarray[Any, Any]], io: list[IoQuantization]
) -> dict[str, np.ndarray[Any, Any]]:
    """``feed`` with each 8-bit input quantized as its ``QuantizeLinear`` did (half to even, saturating)."""
    result = dict(feed)
    for entry in io:
        if entry.kind == "input" and entry.name in result:
            info = np.iinfo(entry.dtype)
            scaled = np.rint(result[entry.name] / entry.scale) + entry.zero_point
            result[entry.name] = np.clip(scaled, info.min, info.max).astype(entry.dtype)
    return result


def dequantize(outputs: Mapping[str, np.ndarray[Any, Any]], io: list[IoQuantization]) -> dict[str, Any]:
    """``outputs`` with each 8-bit output turned back into the floats its ``DequantizeLinear`` gave."""
    result = dict(outputs)
    for entry in io:
        if entry.kind == "output" and entry.name in result:
            values = result[entry.name].astype(np.float32) - np.float32(entry.zero_point)
            result[entry.name] = values * np.float32(entry.scale)
    return result
