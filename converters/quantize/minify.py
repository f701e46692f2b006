"""Debug information a deployed model does not need: exporter metadata and long internal names.

Exporters attach a stack trace and module scopes to every node (torch's dynamo exporter: about a sixth of a
small CNN's file) and the quantizer names each tensor it adds after its source (``classifier.0.weight_
DequantizeLinear_Output``). Neither changes what the model computes. Dropping the metadata and renaming
internal tensors and nodes to short ids shrinks the file; the graph's inputs and outputs keep their names.
Graphs with subgraphs (``Loop``, ``If``, ``Scan``) keep their names, since a subgraph may refer to outer
tensors by name.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from ..onnx_checks import strip_debug_info

if TYPE_CHECKING:
    import onnx

__all__ = ["minify"]


def _has_subgraphs(graph: onnx.GraphProto) -> bool:
    return any(attribute.g.node or attribute.graphs for node in graph.node for attribute in node.attribute)


def _shorten_names(graph: onnx.GraphProto) -> None:
    kept = {v.name for v in [*graph.input, *graph.output]}
    ids = (f"_{i:x}" for i in itertools.count())
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in kept:
            return name
        if name not in renamed:
            renamed[name] = next(n for n in ids if n not in kept)
        return renamed[name]

    for initializer in graph.initializer:
        initializer.name = short(initializer.name)
    for node in graph.node:
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for value in graph.value_info:
        value.name = short(value.name)
    for index, node in enumerate(graph.node):
        node.name = f"n{index:x}"


def minify(model: onnx.ModelProto) -> int:
    """Strip ``model``'s debug information in place; return the bytes saved."""
    before = model.ByteSize()
    strip_debug_info(model)
    if not _has_subgraphs(model.graph):
        _shorten_names(model.graph)
    return before - model.ByteSize()
