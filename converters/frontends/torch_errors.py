"""Translating torch's export errors into one-line messages that name the file, the operator and the layer."""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConversionError, ExportFailed, UnsupportedOperator

__all__ = ["export_error", "translation_error"]

_NO_FUNCTION = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)'")
_NODE = re.compile(r"translating node %(\w+)")
_LEGACY_OPERATOR = re.compile(r"operator '([^']+)'")
_NAMESPACED = re.compile(r"\b([A-Za-z_]\w*::\w+)")
_USER_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\w+)\n\s*(.+)')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(error: BaseException) -> str:
    for line in _ANSI.sub("", str(error)).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def export_error(error: BaseException, source: str) -> ConversionError:
    """``torch.export`` could not trace the model: the reason and the user's line that caused it."""
    text = _ANSI.sub("", str(error))
    where = ""
    frames = _USER_FRAME.findall(text)
    if frames:
        file, line, function, code = frames[-1]
        where = f" at {file}:{line} in {function}(): {code.strip()}"
    return ExportFailed(
        f"{source}: torch.export cannot trace the model "
        f"({type(error).__name__}: {_first_line(error)}){where}; "
        "make forward() traceable (no Python branching on tensor values; see the torch.export docs)"
    )


def _layer_of(program: Any, node_name: str) -> str:
    """``path (Type)`` of the innermost module that holds node ``node_name`` of an ExportedProgram."""
    if program is None:
        return "unknown"
    for node in program.graph.nodes:
        if node.name != node_name:
            continue
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return "the top-level forward()"
        path, kind = list(stack.values())[-1]
        path = re.sub(r"^L\['self'\]\.?", "", str(path)) or "the top-level module"
        kind_name = kind.__name__ if isinstance(kind, type) else str(kind).rsplit(".", 1)[-1]
        return f"{path} ({kind_name})"
    return "unknown"


def _scripted_layer_of(module: Any, operator: str) -> str:
    """``path (Type)`` of the innermost TorchScript submodule whose own graph calls ``operator``."""
    found = "unknown"
    for path, submodule in module.named_modules():
        graph = getattr(submodule, "graph", None)
        if graph is not None and any(node.kind() == operator for node in graph.nodes()):
            found = f"{path or 'the top-level module'} ({getattr(submodule, 'original_name', 'module')})"
    return found


def translation_error(
    error: BaseException, program: Any, source: str, *, scripted: Any = None
) -> ConversionError:
    """The ONNX exporter failed on a graph: an unsupported operator if it says so, else the reason.

    ``program`` (an ExportedProgram) or ``scripted`` (a TorchScript module) locate the operator's layer.
    """
    text = _ANSI.sub("", str(error))
    cause: BaseException | None = error
    while cause is not None:
        text += "\n" + _ANSI.sub("", str(cause))
        cause = cause.__cause__ or cause.__context__
    missing = _NO_FUNCTION.search(text)
    legacy = _LEGACY_OPERATOR.search(text) if "is not supported" in text else None
    if legacy is None and type(error).__name__ == "UnsupportedOperatorError":
        legacy = _NAMESPACED.search(text)
    if missing or legacy:
        operator = (missing or legacy).group(1)  # type: ignore[union-attr]  # one of the two matched
        node = _NODE.search(text)
        if scripted is not None:
            layer = _scripted_layer_of(scripted, operator)
        else:
            layer = _layer_of(program, node.group(1)) if node and program is not None else "unknown"
        if scripted is not None:
            remedy = "convert a torch.export program (.pt2) instead, which takes --custom-op, or replace it"
        else:
            qualified = operator.removesuffix(".default").replace(".", "::", 1)
            remedy = (
                f"supply one with --custom-op {qualified}=module:function (an onnxscript function), "
                "or replace it"
            )
        return UnsupportedOperator(
            f"{source}: operator '{operator}' in layer {layer} has no ONNX translation; {remedy} with "
            "supported operations",
            operator=operator,
            layer=layer,
        )
    return ExportFailed(
        f"{source}: the ONNX exporter failed ({type(error).__name__}: {_first_line(error)}); "
        "run with --verbose for the exporter's output"
    )
