"""The internal currency of one inference: named numpy arrays in small dataclasses.

Wire types (JSON, protobuf) stop at the adapters; everything behind them speaks these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "InferRequest",
    "InferResponse",
    "Parameter",
    "Protocol",
    "SharedMemoryInput",
    "Signature",
    "TensorSpec",
    "Tensors",
]

Tensors = dict[str, npt.NDArray[np.generic]]
Parameter = bool | int | float | str
Protocol = Literal["http", "grpc"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a model signature.

    ``shape`` is the full tensor shape with -1 for a dynamic dimension; for a batching model
    (``max_batch_size > 0``) the first dimension is the batch and is -1.
    """

    name: str
    datatype: str  # Open Inference Protocol name, e.g. "FP32"
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SharedMemoryInput:
    """An input whose data lies in a registered shared-memory region (Triton's shared-memory extension):
    ``byte_size`` bytes at ``offset`` into the region called ``region``, as the client declared them."""

    datatype: str
    shape: tuple[int, ...]
    region: str
    offset: int
    byte_size: int


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request, as the data plane receives it from either adapter."""

    model_name: str
    model_version: str  # "" = the server's choice (highest ready version)
    inputs: Tensors
    id: str = ""
    requested_outputs: list[str] | None = None  # None = all outputs, in signature order
    parameters: dict[str, Parameter] = field(default_factory=dict)
    output_parameters: dict[str, dict[str, Parameter]] = field(default_factory=dict)
    protocol: Protocol = "http"
    # Inputs to read from shared memory (the data plane turns them into ``inputs``), by name.
    shared_inputs: dict[str, SharedMemoryInput] = field(default_factory=dict)


@dataclass(slots=True)
class InferResponse:
    """The answer to one :class:`InferRequest`; ``outputs`` keeps the requested order."""

    model_name: str
    model_version: str
    outputs: Tensors
    id: str = ""
    parameters: dict[str, Parameter] = field(default_factory=dict)
    # Outputs written into the client's shared memory: sent with these parameters instead of their data.
    in_shared_memory: dict[str, dict[str, Parameter]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Signature:
    """A model version's graph signature and the provider it gets, without holding a session."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    provider: str  # short name: "cpu", "cuda", ...
