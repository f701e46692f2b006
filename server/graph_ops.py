"""The operators an ONNX graph uses, read without the ``onnx`` package (a serving install has none).

The response cache must never answer for a model whose outputs change from run to run; such a model
declares itself by its operators: ONNX's random generators (:data:`NONDETERMINISTIC`), in the main graph,
in any subgraph (``If``/``Loop``/``Scan`` bodies) or in a model-local function. The model file is parsed
with a protobuf message type that names only the fields on the way to ``NodeProto.op_type`` (ONNX's field
numbers, which the format keeps stable); every other field, the weights first, is skipped by protobuf's
parser. Blocking (reads the whole file): call it off the event loop, and only for a model that asks for the
cache.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .model_config import ModelConfigError

__all__ = ["NONDETERMINISTIC", "check_cacheable", "nondeterministic_ops"]

NONDETERMINISTIC = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
)

# message -> [(field name, number, type name or None for a string, repeated)], ONNX's onnx.proto numbers
_SCHEMA: dict[str, list[tuple[str, int, str | None, bool]]] = {
    "Model": [("graph", 7, "Graph", False), ("functions", 25, "Function", True)],
    "Graph": [("node", 1, "Node", True)],
    "Function": [("node", 3, "Node", True)],
    "Node": [("name", 3, None, False), ("op_type", 4, None, False), ("attribute", 5, "Attribute", True)],
    "Attribute": [("g", 6, "Graph", False), ("graphs", 11, "Graph", True)],
}


@functools.cache
def _model_type() -> Any:
    """A protobuf class for ONNX's ModelProto that knows only :data:`_SCHEMA`'s fields."""
    file = descriptor_pb2.FileDescriptorProto(name="modelport_onnx_ops.proto", package="modelport_onnx_ops")
    for message, fields in _SCHEMA.items():
        proto = file.message_type.add(name=message)
        for name, number, type_name, repeated in fields:
            field = proto.field.add(name=name, number=number)
            field.label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            if type_name is None:
                field.type = field.TYPE_STRING
            else:
                field.type = field.TYPE_MESSAGE
                field.type_name = f".modelport_onnx_ops.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)  # type: ignore[no-untyped-call]  # protobuf's stubs leave DescriptorPool untyped
    model = pool.FindMessageTypeByName("modelport_onnx_ops.Model")  # type: ignore[no-untyped-call]  # idem
    return message_factory.GetMessageClass(model)


def nondeterministic_ops(path: Path) -> list[str]:
    """``"OpType (node 'name')"`` for every random operator of the model at ``path``, in graph order; an
    empty list for a deterministic model. ``ValueError`` if the file is not an ONNX model."""
    model = _model_type()()
    try:
        model.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf's DecodeError; the session's own load reports a broken file
        raise ValueError(f"{path.name} is not an ONNX model ({error})") from None
    found: list[str] = []
    graphs = [model.graph, *model.functions]
    while graphs:
        graph = graphs.pop(0)
        for node in graph.node:
            if node.op_type in NONDETERMINISTIC:
                found.append(f"{node.op_type} (node '{node.name}')" if node.name else node.op_type)
            for attribute in node.attribute:
                graphs.extend([attribute.g] if attribute.HasField("g") else [])
                graphs.extend(attribute.graphs)
    return found


def check_cacheable(path: Path, *, config_file: Path) -> None:
    """:class:`~.model_config.ModelConfigError` naming ``config_file``'s ``response_cache.enable`` if the
    graph at ``path`` declares itself non-deterministic: a cached answer would freeze one draw. A file that
    cannot be read or is not ONNX passes: opening the session reports it."""
    try:
        random = nondeterministic_ops(path)
    except (OSError, ValueError):
        return
    if random:
        shown = ", ".join(random[:3]) + (" ..." if len(random) > 3 else "")
        raise ModelConfigError(
            f"{config_file}: response_cache.enable: the graph is non-deterministic (it uses {shown}), so a "
            "cached answer would differ from a computed one; remove response_cache for this model"
        )
