"""Static checks of an exported ONNX graph, and what the rest of the conversion reads from it.

The graph is the truth of what gets served: the signature written to ``config.yaml`` and ``conversion.json``
is read from it, not from the framework.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx

from .errors import UnsupportedOperator, VerificationFailed
from .graph_walk import graph_nodes
from .op_rewrites import KNOWN_REWRITES, REWRITE_MIN_OPSET
from .tensor_specs import DYNAMIC, TensorSpec

__all__ = [
    "check_graph",
    "embedding_bounds",
    "embedding_vocabulary",
    "graph_signature",
    "opset_of",
    "strip_debug_info",
]

_STANDARD_DOMAINS = ("", "ai.onnx")


def strip_debug_info(model: onnx.ModelProto) -> None:
    """Drop every node's doc string and metadata, in place (subgraphs included).

    The dynamo exporter records each node's Python stack trace and module scope there: a third of a small
    model's bytes, and the paths of the machine that converted it. The operator checks run before this.
    """
    model.graph.doc_string = ""
    for node in graph_nodes(model.graph):
        node.doc_string = ""
        del node.metadata_props[:]


def _layer(node: onnx.NodeProto) -> str:
    """The layer a node came from: its name without the final op component (``model/dense_1/MatMul``)."""
    parts = [part for part in node.name.replace("::", "/").split("/") if part]
    return "/".join(parts[:-1]) or node.name or "unknown"


def _unsupported_hint(op_type: str, opset: int) -> str | None:
    """What is wrong with a default-domain op at ``opset`` and what the user can do; ``None`` if nothing."""
    if not onnx.defs.has(op_type):
        rewrite = (
            f"; modelport rewrites it from opset {REWRITE_MIN_OPSET}: pass --opset {REWRITE_MIN_OPSET}"
            if op_type in KNOWN_REWRITES
            else ""
        )
        return (
            f"has no ONNX translation{rewrite}; supply one with --custom-op {op_type}=module:function "
            "(an ONNX function: docs/conversion.md), or replace it with supported operations"
        )
    try:
        onnx.defs.get_schema(op_type, opset)
    except onnx.defs.SchemaError:
        since = onnx.defs.get_schema(op_type).since_version
        return f"exists in ONNX only from opset {since} (this graph imports {opset}); pass --opset {since}"
    return None


def check_graph(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """Refuse operators ONNX does not define, run the checker and strict shape inference.

    Returns the shape-inferred model. Raises :class:`UnsupportedOperator` naming the op and the layer, or
    :class:`VerificationFailed` with the checker's message.
    """
    opset = opset_of(model)
    for node in graph_nodes(model.graph):
        if node.domain not in _STANDARD_DOMAINS:
            continue
        hint = _unsupported_hint(node.op_type, opset)
        if hint is not None:
            layer = _layer(node)
            raise UnsupportedOperator(
                f"{source}: operator '{node.op_type}' in layer '{layer}' {hint}",
                operator=node.op_type,
                layer=layer,
            )
    try:
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise VerificationFailed(
            f"{source}: the exported ONNX graph (opset {opset}) is invalid: {first}"
        ) from error


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset the model imports."""
    for entry in model.opset_import:
        if entry.domain in _STANDARD_DOMAINS:
            return int(entry.version)
    return 0


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    numpy_dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    dims = tuple(
        int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else DYNAMIC
        for dim in tensor_type.shape.dim
    )
    return TensorSpec(name=value.name, dtype=np.dtype(numpy_dtype).name, dims=dims)


def graph_signature(model: onnx.ModelProto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """``(inputs, outputs)`` of the graph; initializers listed as inputs (old exporters) are left out."""
    initializers = {initializer.name for initializer in model.graph.initializer}
    inputs = tuple(_spec(value) for value in model.graph.input if value.name not in initializers)
    return inputs, tuple(_spec(value) for value in model.graph.output)


def _gathered_tables(model: onnx.ModelProto) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(indices value, table dims) of every ``Gather`` that reads an initializer, subgraphs included."""
    shapes = {initializer.name: tuple(initializer.dims) for initializer in model.graph.initializer}
    for node in graph_nodes(model.graph):
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[0] in shapes:
            yield node.input[1], shapes[node.input[0]]


def embedding_vocabulary(model: onnx.ModelProto) -> int | None:
    """The row count of the smallest embedding table: a rank-2 initializer read by a ``Gather``.

    Generated integer inputs stay below it, so ids fed to an embedding are inside its vocabulary.
    """
    rows = [dims[0] for _, dims in _gathered_tables(model) if len(dims) == 2]
    return min(rows) if rows else None


def embedding_bounds(model: onnx.ModelProto) -> dict[str, int]:
    """Per value that indexes a table (an initializer read by a ``Gather``), the table's row count: the
    exclusive upper bound of the ids that value may hold."""
    return {indices: dims[0] for indices, dims in _gathered_tables(model) if dims}
