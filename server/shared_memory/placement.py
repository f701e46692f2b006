"""Tensors in the client's shared memory: the parameters that place them, and one request's use of regions.

A tensor is placed by ``shared_memory_region`` (a registered region's name), ``shared_memory_byte_size`` and
the optional ``shared_memory_offset`` (into the region, default 0), as Triton reads them. An input's data is
then a numpy view of the client's memory (no copy here: the worker pool copies it once, into its workers'
shared memory, as it does every input); an output is written into the region once the model has answered
(one copy) and answered with those parameters instead of its data.

The sizes are checked where Triton checks them: an input's byte size must be exactly its datatype and
shape's bytes; an output's region range must hold at least the output's bytes. Every range is checked
against its region on every use (:meth:`regions.ClientRegion.view`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import by_name, by_numpy, decode_bytes_tensor, encode_bytes_tensor
from ..errors import InvalidInput
from ..inference import InferRequest, Parameter, SharedMemoryInput, Tensors
from .regions import ClientRegion, SystemSharedMemory

__all__ = ["SHARED_MEMORY_PARAMETERS", "Placement", "SharedMemoryUse", "placement"]

REGION, OFFSET, BYTE_SIZE = "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size"
SHARED_MEMORY_PARAMETERS = frozenset({REGION, OFFSET, BYTE_SIZE})
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one tensor lies: ``byte_size`` bytes at ``offset`` into the region called ``region``."""

    region: str
    offset: int
    byte_size: int


def _bytes(value: Parameter, parameter: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
        raise InvalidInput(f"{what}: '{parameter}' must be a non-negative integer (bytes), got {value!r:.40}")
    return value


def placement(parameters: Mapping[str, Parameter], what: str) -> Placement | None:
    """The shared-memory placement that ``parameters`` (of the tensor ``what``) give, or None when they
    name no region; :class:`InvalidInput` for a half-given or mistyped placement."""
    region = parameters.get(REGION)
    if region is None:
        if OFFSET in parameters or BYTE_SIZE in parameters:
            raise InvalidInput(
                f"{what}: '{BYTE_SIZE}' and '{OFFSET}' cannot be given without '{REGION}'; name the "
                "registered region the data is in"
            )
        return None
    if not isinstance(region, str) or not region:
        raise InvalidInput(f"{what}: '{REGION}' must be the name of a registered region (a string)")
    size = parameters.get(BYTE_SIZE)
    if size is None:
        raise InvalidInput(
            f"{what}: '{BYTE_SIZE}' is missing; give the size in bytes of the tensor in region '{region}'"
        )
    return Placement(region, _bytes(parameters.get(OFFSET, 0), OFFSET, what), _bytes(size, BYTE_SIZE, what))


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(dim) for dim in shape) + "]"


def _input_tensor(name: str, shared: SharedMemoryInput, region: ClientRegion) -> npt.NDArray[Any]:
    what = f"input '{name}'"
    datatype = by_name(shared.datatype, tensor=name)
    count = math.prod(shared.shape)
    needed = count * datatype.itemsize
    if datatype.itemsize and shared.byte_size != needed:
        raise InvalidInput(
            f"{what}: {shared.datatype} shape {_shape_text(shared.shape)} is {needed} bytes, "
            f"but shared_memory_byte_size is {shared.byte_size} (region '{shared.region}'); give the "
            "tensor's exact size"
        )
    view = region.view(shared.offset, shared.byte_size, what).toreadonly()
    if not datatype.itemsize:  # BYTES: length-prefixed elements filling the range exactly
        return decode_bytes_tensor(view, count, tensor=name).reshape(shared.shape)
    return np.frombuffer(view, dtype=datatype.numpy).reshape(shared.shape)


class SharedMemoryUse:
    """One request's use of the registry: :meth:`attach` before it runs, :meth:`place` once answered,
    :meth:`release` always (the regions it holds are let go)."""

    __slots__ = ("_held", "_outputs", "_registry", "_request")

    def __init__(self, registry: SystemSharedMemory, request: InferRequest) -> None:
        self._registry = registry
        self._request = request
        self._held: list[ClientRegion] = []
        self._outputs: dict[str, tuple[ClientRegion, Placement]] = {}

    def _hold(self, name: str, what: str) -> ClientRegion:
        region = self._registry.hold(name, what)
        self._held.append(region)
        return region

    def attach(self) -> None:
        """Views of the request's shared-memory inputs go into its ``inputs``; the regions of its outputs are
        found and their ranges checked (before the model runs)."""
        request = self._request
        for name, shared in request.shared_inputs.items():
            request.inputs[name] = _input_tensor(name, shared, self._hold(shared.region, f"input '{name}'"))
        for name, parameters in request.output_parameters.items():
            what = f"output '{name}'"
            place = placement(parameters, what)
            if place is not None:
                region = self._hold(place.region, what)
                region.view(place.offset, place.byte_size, what)
                self._outputs[name] = (region, place)

    def place(self, outputs: Tensors) -> dict[str, dict[str, Parameter]]:
        """Write each output asked for in shared memory into its region; the parameters each is answered
        with (region, the bytes written, the offset if not 0), by output name."""
        answered: dict[str, dict[str, Parameter]] = {}
        for name, (region, place) in self._outputs.items():
            array = outputs.get(name)
            if array is None:
                continue
            answered[name] = _write(name, array, region, place)
        return answered

    def release(self) -> None:
        held, self._held = self._held, []
        for region in held:
            region.let_go()


def _write(
    name: str, array: npt.NDArray[Any], region: ClientRegion, place: Placement
) -> dict[str, Parameter]:
    what = f"output '{name}'"
    datatype = by_numpy(array.dtype)
    encoded = encode_bytes_tensor(array) if not datatype.itemsize else None
    nbytes = len(encoded) if encoded is not None else array.nbytes
    if nbytes > place.byte_size:
        raise InvalidInput(
            f"{what}: {datatype.name} shape {_shape_text(array.shape)} is {nbytes} bytes, more than its "
            f"shared_memory_byte_size {place.byte_size} in region '{place.region}'; give a larger range"
        )
    target = region.view(place.offset, nbytes, what)
    if encoded is not None:
        target[:] = encoded
    else:
        np.copyto(np.frombuffer(target, dtype=array.dtype).reshape(array.shape), array)
    answer: dict[str, Parameter] = {REGION: place.region, BYTE_SIZE: nbytes}
    if place.offset:
        answer[OFFSET] = place.offset
    return answer
