"""ONNX functions a user would give ``--custom-op``: an onnxscript translation for a torch operator, a
FunctionProto for an op tf2onnx leaves undefined."""

from __future__ import annotations

from typing import Any

import onnx
from onnx import helper
from onnxscript import opset18

__all__ = ["expm1_function", "wiggle"]


def wiggle(x: Any) -> Any:
    """``modelport_test::wiggle`` (sin) in ONNX: a translation as the dynamo exporter takes them, a Python
    function calling onnxscript ops (traced by the exporter)."""
    return opset18.Sin(x)


def _expm1() -> onnx.FunctionProto:
    # exp(x) - 1 with the 1 cast to x's type; the function imports the opset tf2onnx exports (17).
    return helper.make_function(
        "user.functions",
        "UserExpm1",
        inputs=["x"],
        outputs=["y"],
        nodes=[
            helper.make_node("Exp", ["x"], ["e"]),
            helper.make_node(
                "Constant", [], ["one"], value=helper.make_tensor("one", onnx.TensorProto.FLOAT, [], [1.0])
            ),
            helper.make_node("CastLike", ["one", "x"], ["one_typed"]),
            helper.make_node("Sub", ["e", "one_typed"], ["y"]),
        ],
        opset_imports=[helper.make_opsetid("", 17)],
    )


expm1_function = _expm1()
