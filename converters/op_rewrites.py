"""Operators an exporter leaves in the graph although ONNX does not define them, rewritten to standard ops.

tf2onnx passes a TensorFlow op it has no handler for through as a node of the same name in the default domain
(Keras's exact GELU becomes ``Erfc``); :func:`..onnx_checks.check_graph` would refuse it. Where the op has an
exact expression in standard ONNX it is rewritten here before the check, and the conversion's notes say so.
A ``--custom-op`` the user gives for the same op wins over these (it is attached first).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph_walk import graphs

__all__ = ["KNOWN_REWRITES", "REWRITE_MIN_OPSET", "rewrite_known_ops"]

_STANDARD_DOMAINS = ("", "ai.onnx")
# CastLike, which gives the rewrites' constants the input's type, exists from opset 15.
REWRITE_MIN_OPSET = 15

# (node, fresh-name maker) -> replacement nodes reading the node's inputs and writing its outputs.
Rewrite = Callable[[onnx.NodeProto, Callable[[str], str]], list[onnx.NodeProto]]


def _like(
    value: float, like: str, owner: onnx.NodeProto, fresh: Callable[[str], str]
) -> tuple[list[onnx.NodeProto], str]:
    """Nodes making the scalar ``value`` in the type of ``like`` (a Constant, then CastLike), and its name."""
    constant, typed = fresh("constant"), fresh("typed")
    tensor = numpy_helper.from_array(np.array(value, dtype=np.float32), name=constant)
    return [
        helper.make_node("Constant", [], [constant], value=tensor, name=f"{owner.name}/{constant}"),
        helper.make_node("CastLike", [constant, like], [typed], name=f"{owner.name}/CastLike"),
    ], typed


def _erfc(node: onnx.NodeProto, fresh: Callable[[str], str]) -> list[onnx.NodeProto]:
    # erfc(x) = 1 - erf(x)
    erf = fresh("erf")
    one_nodes, one = _like(1.0, node.input[0], node, fresh)
    return [
        helper.make_node("Erf", [node.input[0]], [erf], name=f"{node.name}/Erf"),
        *one_nodes,
        helper.make_node("Sub", [one, erf], [node.output[0]], name=f"{node.name}/Sub"),
    ]


def _expm1(node: onnx.NodeProto, fresh: Callable[[str], str]) -> list[onnx.NodeProto]:
    exp = fresh("exp")
    one_nodes, one = _like(1.0, node.input[0], node, fresh)
    return [
        helper.make_node("Exp", [node.input[0]], [exp], name=f"{node.name}/Exp"),
        *one_nodes,
        helper.make_node("Sub", [exp, one], [node.output[0]], name=f"{node.name}/Sub"),
    ]


def _xlogy(node: onnx.NodeProto, fresh: Callable[[str], str]) -> list[onnx.NodeProto]:
    # xlogy(x, y) = 0 where x == 0, else x * log(y) (TensorFlow's definition: 0 even where y is 0).
    x, y = node.input[0], node.input[1]
    is_zero, log, product = fresh("is_zero"), fresh("log"), fresh("product")
    zero_nodes, zero = _like(0.0, x, node, fresh)
    return [
        *zero_nodes,
        helper.make_node("Equal", [x, zero], [is_zero], name=f"{node.name}/Equal"),
        helper.make_node("Log", [y], [log], name=f"{node.name}/Log"),
        helper.make_node("Mul", [x, log], [product], name=f"{node.name}/Mul"),
        helper.make_node("Where", [is_zero, zero, product], [node.output[0]], name=f"{node.name}/Where"),
    ]


# What each rewrite computes, for the notes and the docs.
KNOWN_REWRITES: dict[str, tuple[str, Rewrite]] = {
    "Erfc": ("1 - Erf(x)", _erfc),
    "Expm1": ("Exp(x) - 1", _expm1),
    "Xlogy": ("Where(x == 0, 0, x * Log(y))", _xlogy),
}


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

    for graph in graphs(model.graph):
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
