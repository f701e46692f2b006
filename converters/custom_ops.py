"""``--custom-op NAME=module:function``: the user supplies the ONNX implementation of an operator that
has none.

``NAME`` says where it applies, and what ``function`` must be:

- ``namespace::op`` is a PyTorch operator (``torch.ops.namespace.op``): ``function`` is its translation as the
  dynamo exporter takes one (``custom_translation_table``): a Python function of onnxscript ops, for ``.pt2``
  programs and torch factories.
- any other ``NAME`` is an operator an exporter left in the ONNX graph without a definition (tf2onnx passes
  TensorFlow ops it cannot translate through under their own name, e.g. ``Lgamma``): ``function`` is an ONNX
  function (``@onnxscript.script()`` or an ``onnx.FunctionProto``, importing the graph's opset); each such
  node becomes a call of it, added to the model's local functions, which ONNX Runtime inlines.

Either way the conversion's usual verification then compares the result with the framework.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import onnx

from .dotted_names import resolve_callable
from .errors import InvalidOption

__all__ = ["CustomOp", "attach_custom_functions", "parse_custom_op", "torch_translations"]

_SPEC = re.compile(r"^(?P<name>[A-Za-z_][\w.]*(?:::[A-Za-z_]\w*)?)=(?P<target>[\w.]+:[\w.]+)$")
_STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True, slots=True)
class CustomOp:
    """One ``--custom-op``: the operator's name, the ONNX function for it and where the function came from."""

    name: str
    function: Any
    origin: str

    @property
    def is_torch_operator(self) -> bool:
        return "::" in self.name

    def function_proto(self) -> onnx.FunctionProto:
        if isinstance(self.function, onnx.FunctionProto):
            return self.function
        proto = self.function.to_function_proto()
        if not isinstance(proto, onnx.FunctionProto):
            raise InvalidOption(
                f"--custom-op {self.name}={self.origin}: to_function_proto() gave no FunctionProto"
            )
        return proto


def parse_custom_op(text: str) -> CustomOp:
    """``NAME=module:function`` -> :class:`CustomOp`, importing the function (current directory first)."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise InvalidOption(
            f"--custom-op '{text}': expected NAME=module:function, e.g. Lgamma=my_ops:lgamma or "
            "mylib::gelu=my_ops:gelu (a torch operator)"
        )
    origin, name = match["target"], match["name"]
    function = resolve_callable(origin, callable_required=False)
    if "::" in name:
        if not callable(function):
            raise InvalidOption(
                f"--custom-op {name}={origin}: is a {type(function).__name__}; a torch operator's "
                "translation is a function of onnxscript ops (def f(x): return opset18.Sin(x))"
            )
    elif not (isinstance(function, onnx.FunctionProto) or hasattr(function, "to_function_proto")):
        raise InvalidOption(
            f"--custom-op {name}={origin}: is a {type(function).__name__}, not an ONNX function; "
            "decorate it with @onnxscript.script() or make it an onnx.FunctionProto"
        )
    return CustomOp(name=name, function=function, origin=origin)


def torch_translations(ops: tuple[CustomOp, ...]) -> dict[Any, Any]:
    """The dynamo exporter's ``custom_translation_table`` for the torch operators among ``ops``."""
    import torch

    table: dict[Any, Any] = {}
    for op in ops:
        if not op.is_torch_operator:
            continue
        namespace, name = op.name.split("::", 1)
        try:
            packet = getattr(getattr(torch.ops, namespace), name)
        except (AttributeError, RuntimeError) as error:
            raise InvalidOption(
                f"--custom-op {op.name}={op.origin}: torch has no operator {op.name}; import the module that "
                "registers it before converting (the factory's module does, if it defines the operator)"
            ) from error
        table[packet.default] = op.function
    return table


def attach_custom_functions(model: onnx.ModelProto, ops: tuple[CustomOp, ...]) -> list[str]:
    """Turn each undefined default-domain node named by an ONNX-level op into a call of its function, in
    place; returns one note per op attached. An op named but absent from the graph is an error (a typo would
    else pass silently)."""
    notes = []
    for op in ops:
        if op.is_torch_operator:
            continue
        proto = op.function_proto()
        nodes = [n for n in model.graph.node if n.domain in _STANDARD_DOMAINS and n.op_type == op.name]
        if not nodes:
            present = sorted({n.op_type for n in model.graph.node if not onnx.defs.has(n.op_type)})
            raise InvalidOption(
                f"--custom-op {op.name}={op.origin}: the exported graph has no '{op.name}' node to implement "
                f"(undefined operators in it: {', '.join(present) or 'none'})"
            )
        domain = proto.domain or "modelport.custom"
        if not proto.domain:
            proto.domain = domain
        for node in nodes:
            node.domain, node.op_type = domain, proto.name
        if not any(f.domain == proto.domain and f.name == proto.name for f in model.functions):
            model.functions.append(proto)
        if not any(entry.domain == domain for entry in model.opset_import):
            model.opset_import.append(onnx.helper.make_opsetid(domain, 1))
        notes.append(f"operator '{op.name}' ({len(nodes)} node(s)) implemented by --custom-op {op.origin}")
    return notes
