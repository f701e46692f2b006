"""``--input`` given for a source that carries its own signature (``.pt2``, SavedModel, a built Keras model).

Such a source's inputs are already known, so the given specs are a check and a refinement, not a description:
they pair with the exported graph's inputs in order; a given name renames the input; a given dimension may fix
(narrow) a dynamic axis but not change or free a fixed one; datatypes and ranks must agree. What conflicts is
refused naming the input and both specs, so a script that passes ``--input`` for every source keeps working
where its specs are consistent and fails with the reason where they are not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import onnx

from .errors import InvalidOption
from .exported import Arrays, ExportedModel
from .graph_walk import graphs
from .tensor_specs import DYNAMIC, TensorSpec

__all__ = ["apply_given_inputs", "reconcile"]


def _conflict(own: TensorSpec, given: TensorSpec) -> str | None:
    """Why ``given`` cannot describe ``own``, or ``None`` when it can."""
    if own.dtype != given.dtype:
        return f"datatype {given.dtype} is not the source's {own.dtype}"
    if len(own.dims) != len(given.dims):
        return f"rank {len(given.dims)} is not the source's {len(own.dims)}"
    for axis, (mine, theirs) in enumerate(zip(own.dims, given.dims, strict=True)):
        if mine in {DYNAMIC, theirs}:
            continue
        if theirs == DYNAMIC:
            return f"axis {axis} is fixed at {mine} in the source; export it with a dynamic axis to free it"
        return f"axis {axis} is {mine} in the source, not {theirs}"
    return None


def reconcile(own: Sequence[TensorSpec], given: Sequence[TensorSpec], source: str) -> list[TensorSpec]:
    """The inputs to serve: ``given`` checked against the source's ``own`` (paired in order).

    Raises :class:`InvalidOption` naming the input and both specs where they conflict.
    """
    if len(own) != len(given):
        listed = ", ".join(spec.describe() for spec in own)
        raise InvalidOption(
            f"{source}: {len(given)} --input given but the source has {len(own)} input(s) ({listed}); "
            "give one --input per input, in this order, or none"
        )
    for mine, theirs in zip(own, given, strict=True):
        reason = _conflict(mine, theirs)
        if reason is not None:
            raise InvalidOption(
                f"{source}: --input {theirs.describe()} conflicts with the source's input "
                f"{mine.describe()}: {reason}"
            )
    return list(given)


def _rename_everywhere(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    """Rename values read by nodes, subgraphs included (a subgraph may read an outer graph's input)."""
    for each in graphs(graph):
        for node in each.node:
            node.input[:] = [renames.get(name, name) for name in node.input]
            node.output[:] = [renames.get(name, name) for name in node.output]
        for value in (*each.output, *each.value_info):
            value.name = renames.get(value.name, value.name)


def _taken_names(graph: onnx.GraphProto) -> set[str]:
    """Names of the values a graph computes or holds (not its inputs): a rename must not reuse one."""
    taken = {initializer.name for initializer in graph.initializer}
    taken.update(name for node in graph.node for name in node.output)
    return taken


def _narrowed_graph(
    model: onnx.ModelProto, own: Sequence[TensorSpec], given: Sequence[TensorSpec], source: str
) -> None:
    pairs = list(zip(own, given, strict=True))
    renames = {mine.name: theirs.name for mine, theirs in pairs if mine.name != theirs.name}
    clashes = sorted(set(renames.values()) & _taken_names(model.graph))
    if clashes:
        raise InvalidOption(
            f"{source}: --input name '{clashes[0]}' is already a value inside the model's graph; "
            "choose another name"
        )
    by_name = {mine.name: theirs for mine, theirs in pairs}
    for value in model.graph.input:
        theirs = by_name.get(value.name)
        if theirs is None:
            continue
        for dim, wanted in zip(value.type.tensor_type.shape.dim, theirs.dims, strict=True):
            if wanted != DYNAMIC:
                dim.Clear()
                dim.dim_value = wanted
        value.name = theirs.name
    _rename_everywhere(model.graph, renames)


def apply_given_inputs(
    exported: ExportedModel, own: Sequence[TensorSpec], given: Sequence[TensorSpec], source: str
) -> None:
    """Give ``exported``'s graph the ``given`` names and fixed axes, in place; the framework runner is wrapped
    to take the given names too, so verification feeds both sides the same arrays."""
    _narrowed_graph(exported.model, own, given, source)
    names = [(theirs.name, mine.name) for mine, theirs in zip(own, given, strict=True)]
    run = exported.run

    def renamed(arrays: Mapping[str, npt.NDArray[np.generic]]) -> Arrays:
        return run({mine: arrays[theirs] for theirs, mine in names})

    exported.run = renamed
