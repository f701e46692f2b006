"""What a framework converter hands to the verification and repository steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import onnx

__all__ = ["Arrays", "ExportedModel", "FrameworkRunner"]

Arrays = dict[str, npt.NDArray[np.generic]]
# Runs the framework's own model on named numpy inputs; returns outputs named as in the ONNX graph.
FrameworkRunner = Callable[[Mapping[str, npt.NDArray[np.generic]]], Arrays]


@dataclass(slots=True, kw_only=True)
class ExportedModel:
    """An ONNX graph plus the framework model it came from, kept alive for the parity check.

    ``input_names``/``output_names`` are in graph order and equal the graph's; ``run`` must accept every input
    name and return every output name. ``carries_signature``: the source defined the inputs itself (a ``.pt2``
    program, a SavedModel signature, a built Keras model), so ``--input`` can only check and refine them.
    """

    model: onnx.ModelProto
    run: FrameworkRunner
    framework: str
    framework_version: str
    converter: str
    converter_version: str
    notes: list[str] = field(default_factory=list)
    carries_signature: bool = False
