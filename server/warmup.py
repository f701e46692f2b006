"""Model warm-up (Triton's ``model_warmup``): the samples a model's config names, made once per load.

``config.yaml``'s ``model_warmup`` is a list of samples; each has a ``name``, a ``batch_size`` (1 for a
model without batching), a ``count`` (runs) and, for every input of the model, ``data_type`` (as the
model's), ``dims`` (without the batch dimension when the model batches, every one a size) and one source of
data: ``zero_data``, ``random_data`` or ``input_data_file`` (raw row-major bytes, or Triton's 4-byte
length-prefixed elements for BYTES; a file of the model's folder, which it may not leave, links included).

:func:`build_samples` checks the samples against the model's inputs and makes their tensors, in the server
process, while the version loads (a bad sample fails the load naming the sample and the input); every
instance then runs them before it takes a request (``workers.feeds.warm_up``), and :class:`WarmupTimes`
adds up how long that took, for the statistics and the log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pydantic

from . import config_limits as limits
from .config_files import UnreadableFile, check_relative_path, read_bytes, resolve_inside
from .datatypes import DATATYPES, Datatype, by_name, decode_bytes_tensor
from .errors import InvalidInput
from .inference import TensorSpec

__all__ = [
    "WarmupError",
    "WarmupInputConfig",
    "WarmupSample",
    "WarmupSampleConfig",
    "WarmupTimes",
    "build_samples",
]

_DATATYPE_NAMES = tuple(d.name for d in DATATYPES)
_Size = Annotated[int, pydantic.Field(ge=1, le=limits.INT64_MAX)]


class WarmupError(ValueError):
    """A warm-up sample that does not fit the model; the message names the sample and the input."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WarmupInputConfig(_Strict):
    """One input of a warm-up sample: its type, shape and where its data comes from (exactly one)."""

    data_type: str
    dims: tuple[_Size, ...] = ()
    zero_data: bool = False
    random_data: bool = False
    input_data_file: str | None = None

    @pydantic.field_validator("data_type")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        if value not in _DATATYPE_NAMES:
            raise ValueError(f"'{value}' is not one of {', '.join(_DATATYPE_NAMES)}")
        return value

    @pydantic.field_validator("input_data_file")
    @classmethod
    def _inside_the_folder(cls, value: str | None) -> str | None:
        return value if value is None else check_relative_path(value)

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> WarmupInputConfig:
        sources = [k for k in ("zero_data", "random_data") if getattr(self, k)]
        sources += ["input_data_file"] if self.input_data_file is not None else []
        if len(sources) != 1:
            given = f" (got {', '.join(sources)})" if sources else ""
            raise ValueError(f"give exactly one of zero_data, random_data, input_data_file{given}")
        return self


class WarmupSampleConfig(_Strict):
    """One warm-up sample as the config names it."""

    name: str = pydantic.Field(min_length=1)
    batch_size: Annotated[int, pydantic.Field(ge=1, le=limits.MAX_BATCH_SIZE)] = 1
    count: Annotated[int, pydantic.Field(ge=1, le=limits.MAX_WARMUP_COUNT)] = 1
    inputs: dict[str, WarmupInputConfig] = pydantic.Field(min_length=1)


@dataclass(frozen=True, slots=True)
class WarmupSample:
    """A sample ready to run: its tensors, made once and handed to every instance (pickled to a worker)."""

    name: str
    count: int
    inputs: dict[str, npt.NDArray[Any]]


@dataclass(slots=True)
class WarmupTimes:
    """How long the instances of a version took to warm up: one ``count`` per instance (scaling and
    restarts included), ``ns`` their total. Written and read on the event loop."""

    samples: int = 0  # samples each instance runs (0: the version has no warm-up)
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def to_json(self) -> dict[str, int]:
        return {"samples": self.samples, "count": self.count, "ns": self.ns}


def build_samples(
    samples: Sequence[WarmupSampleConfig],
    inputs: Sequence[TensorSpec],
    max_batch_size: int,
    *,
    folder: Path,
) -> tuple[WarmupSample, ...]:
    """The tensors of ``samples`` for a model with ``inputs`` (full shapes, -1 the batch when
    ``max_batch_size > 0``); files are read from the model's ``folder``. Blocking (files): call it off the
    event loop. :class:`WarmupError` naming the sample and the input if one does not fit."""
    return tuple(
        _build(index, sample, inputs, max_batch_size, folder) for index, sample in enumerate(samples)
    )


def _build(
    index: int, sample: WarmupSampleConfig, specs: Sequence[TensorSpec], max_batch_size: int, folder: Path
) -> WarmupSample:
    where = f"model_warmup[{index}] '{sample.name}'"
    if max_batch_size == 0 and sample.batch_size != 1:
        raise WarmupError(f"{where}: batch_size {sample.batch_size}: the model does not batch; give 1")
    if sample.batch_size > max(max_batch_size, 1):
        raise WarmupError(
            f"{where}: batch_size {sample.batch_size} exceeds the model's max_batch_size {max_batch_size}"
        )
    known = {spec.name: spec for spec in specs}
    unknown = sorted(set(sample.inputs) - set(known))
    if unknown:
        raise WarmupError(
            f"{where}: input '{unknown[0]}': the model has no such input (inputs: {', '.join(known)})"
        )
    missing = [name for name in known if name not in sample.inputs]
    if missing:
        raise WarmupError(
            f"{where}: input '{missing[0]}' is missing; a sample gives every input of the model"
        )
    tensors = {
        name: _tensor(
            f"{where}: input '{name}'",
            config,
            known[name],
            batch=sample.batch_size if max_batch_size > 0 else None,
            seed=index,
            folder=folder,
        )
        for name, config in sample.inputs.items()
    }
    return WarmupSample(sample.name, sample.count, tensors)


def _tensor(
    where: str,
    config: WarmupInputConfig,
    spec: TensorSpec,
    *,
    batch: int | None,
    seed: int,
    folder: Path,
) -> npt.NDArray[Any]:
    """The tensor of one input; ``batch``: the sample's batch size, None for a model that does not batch."""
    if config.data_type != spec.datatype:
        raise WarmupError(f"{where}: data_type {config.data_type} is not the model's {spec.datatype}")
    declared = spec.shape[1:] if batch is not None else spec.shape
    dims = list(config.dims)
    if len(dims) != len(declared) or any(
        want not in (-1, got) for want, got in zip(declared, dims, strict=True)
    ):
        batch_note = " (without the batch dimension)" if batch is not None else ""
        raise WarmupError(
            f"{where}: dims {dims} do not fit the model's {list(declared)}{batch_note}; -1 takes any size"
        )
    shape = (batch, *dims) if batch is not None else tuple(dims)
    datatype = by_name(config.data_type)
    elements = math.prod(shape)
    if elements * max(datatype.itemsize, 4) > limits.MAX_WARMUP_BYTES:
        raise WarmupError(f"{where}: shape {list(shape)} is larger than {limits.MAX_WARMUP_BYTES} bytes")
    if config.input_data_file is not None:
        return _from_file(where, config.input_data_file, datatype, shape, folder)
    if config.zero_data:
        if datatype.name == "BYTES":
            return np.full(shape, b"", dtype=np.object_)
        return np.zeros(shape, dtype=datatype.numpy)
    return _random(datatype, shape, np.random.default_rng(seed))


def _random(datatype: Datatype, shape: tuple[int, ...], rng: np.random.Generator) -> npt.NDArray[Any]:
    kind = datatype.numpy.kind
    if datatype.name == "BYTES":
        letters = rng.integers(ord("a"), ord("z") + 1, size=(*shape, 8), dtype=np.uint8)
        return np.array([row.tobytes() for row in letters.reshape(-1, 8)], dtype=np.object_).reshape(shape)
    if kind == "b":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if kind in "iu":
        return rng.integers(0, 100, size=shape).astype(datatype.numpy)
    return rng.random(size=shape).astype(datatype.numpy)


def _from_file(
    where: str, relative: str, datatype: Datatype, shape: tuple[int, ...], folder: Path
) -> npt.NDArray[Any]:
    what = f"{where}: input_data_file '{relative}'"
    try:
        data = read_bytes(resolve_inside(folder, relative), limit=limits.MAX_WARMUP_BYTES)
    except FileNotFoundError:
        raise WarmupError(f"{what} does not exist in the model's folder") from None
    except (UnreadableFile, OSError) as error:
        reason = error if isinstance(error, UnreadableFile) else f"cannot be read ({error.strerror})"
        raise WarmupError(f"{what} {reason}") from None
    elements = math.prod(shape)
    if datatype.name == "BYTES":
        try:
            return decode_bytes_tensor(data, elements, tensor=relative).reshape(shape)
        except InvalidInput as error:
            raise WarmupError(f"{what}: {error}") from None
    expected = elements * datatype.itemsize
    if len(data) != expected:
        raise WarmupError(
            f"{what} holds {len(data)} bytes; shape {list(shape)} of {datatype.name} needs exactly {expected}"
        )
    return np.frombuffer(data, dtype=datatype.numpy).reshape(shape).copy()
