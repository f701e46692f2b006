"""Operators an exporter leaves in the graph although ONNX does not define them, rewritten to standard ops.

tf2onnx passes a TensorFlow op it has no handler for through as a node of the same name in the default domain
(Keras's exact GELU becomes ``Erfc``); :func:`..onnx_checks.check_graph` would refuse it. Where the op has an
exact expression in standard ONNX it is rewritten here before the check, and the conversion's notes say so.
A ``--custom-op`` the user gives for the same op wins over these (it is attached first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["KNOWN_REWRITES", "REWRITE_MIN_OPSET", "rewrite_known_ops"]

_STANDARD_DOMAINS = ("", "ai.onnx")
# CastLike, which gives the rewrites' constants the input's type, exists from opset 15.
REWRITE_MIN_OPSET = 15

# (node, fresh-name maker) -> replacement nodes reading the node's inputs and writing its outputs.
Rewrite = Callable[[onnx.NodeProto, Callable[[str], str]], list[onnx.NodeProto]]


def _erfc(node: onnx.NodeProto, fresh: Callable[[str], str]) -> list[onnx.NodeProto]:
    # erfc(x) = 1 - erf(x); the constant takes the input's type through CastLike.
    erf, one, typed = fresh("erf"), fresh("one"), fresh("one_typed")
    return [
        helper.make_node("Erf", [node.input[0]], [erf], name=f"{node.name}/Erf"),
        _constant(one, 1.0, node.name),
        helper.make_node("CastLike", [one, node.input[0]], [typed], name=f"{node.name}/CastLike"),
        helper.make_node("Sub", [typed, erf], [node.output[0]], name=f"{node.name}/Sub"),
    ]


def _expm1(node: onnx.NodeProto, fresh: Callable[[str], str]) -> list[onnx.NodeProto]:
    exp, one, typed = fresh("exp"), fresh("one"), fresh("one_typed")
    return [
        helper.make_node("Exp", [node.input[0]], [exp], name=f"{node.name}/Exp"),
        _constant(one, 1.0, node.name),
        helper.make_node("CastLike", [one, node.input[0]], [typed], name=f"{node.name}/CastLike"),
        helper.make_node("Sub", [exp, typed], [node.output[0]], name=f"{node.name}/Sub"),
    ]


def _xlogy(node: onnx.NodeProto, fresh: Callable[[str], str]) -> list[onnx.NodeProto]:
    # xlogy(x, y) = 0 where x == 0, else x * log(y) (TensorFlow's definition: 0 even where y is 0).
    x, y = node.input[0], node.input[1]
    zero, typed, is_zero, log, product = (
        fresh(n) for n in ("zero", "zero_typed", "is_zero", "log", "product")
    )
    return [
        _constant(zero, 0.0, node.name),
        helper.make_node("CastLike", [zero, x], [typed], name=f"{node.name}/CastLike"),
        helper.make_node("Equal", [x, typed], [is_zero], name=f"{node.name}/Equal"),
        helper.make_node("Log", [y], [log], name=f"{node.name}/Log"),
        helper.make_node("Mul", [x, log], [product], name=f"{node.name}/Mul"),
        helper.make_node("Where", [is_zero, typed, product], [node.output[0]], name=f"{node.name}/Where"),
    ]


def _constant(name: str, value: float, owner: str) -> onnx.NodeProto:
    tensor = numpy_helper.from_array(np.array(value, dtype=np.float32), name=name)
    return helper.make_node("Constant", [], [name], value=tensor, name=f"{owner}/{name}")


# What each rewrite computes, for the notes and the docs.
KNOWN_REWRITES: dict[str, tuple[str, Rewrite]] = {
    "Erfc": ("1 - Erf(x)", _erfc),
    "Expm1": ("Exp(x) - 1", _expm1),
    "Xlogy": ("Where(x == 0, 0, x * Log(y))", _xlogy),
}


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graphs(subgraph)


def rewrite_known_ops(model: onnx.ModelProto) -> list[str]:
    """Replace every node of a :data:`KNOWN_REWRITES` op in the default domain, in place (subgraphs too);
    returns one note per op rewritten, with how many nodes. Below :data:`REWRITE_MIN_OPSET`, nothing."""
    counts: dict[str, int] = {}
    opset = next((e.version for e in model.opset_import if e.domain in _STANDARD_DOMAINS), 0)
    if opset < REWRITE_MIN_OPSET:
        return []
    serial = iter(range(1 << 62))

    def fresh(stem: str) -> str:
        return f"_modelport_rewrite_{stem}_{next(serial)}"

    for graph in _graphs(model.graph):
        rebuilt: list[onnx.NodeProto] = []
        for node in graph.node:
            known = KNOWN_REWRITES.get(node.op_type) if node.domain in _STANDARD_DOMAINS else None
            if known is None or onnx.defs.has(node.op_type):
                rebuilt.append(node)
                continue
            rebuilt.extend(known[1](node, fresh))
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        if counts:
            del graph.node[:]
            graph.node.extend(rebuilt)
    return [
        f"operator '{op}' ({count} node{'s' if count > 1 else ''}) has no ONNX definition; rewritten as "
        f"{KNOWN_REWRITES[op][0]}"
        for op, count in sorted(counts.items())
    ]
