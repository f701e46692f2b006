"""A model's ``config.yaml`` (optional) and the configuration resolved against its ONNX graph.

Every key is optional and unknown keys are errors; every error names the file and the key path
(``models/mlp/config.yaml: inputs[0].dims: ...``). Conventions follow Triton: with ``max_batch_size > 0`` the
first dimension of every input and output is the batch and ``dims`` leave it out. Every number has a range
(the table in :mod:`.config_limits`), checked here and only here, whatever the config came from.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy.typing as npt
import pydantic
import yaml

from . import config_limits as limits
from .config_files import (
    CONFIG_MAX_BYTES,
    LABELS_MAX_BYTES,
    UnreadableFile,
    check_relative_path,
    load_yaml,
    read_text,
    resolve_inside,
)
from .datatypes import DATATYPES
from .inference import Tensors, TensorSpec
from .settings import InstanceKind
from .warmup import WarmupError, WarmupSample, WarmupSampleConfig, build_samples

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DynamicBatchingConfig",
    "InstancesConfig",
    "ModelConfig",
    "ModelConfigError",
    "ResolvedConfig",
    "ResponseCacheConfig",
    "SessionConfig",
    "TensorConfig",
    "VersionPolicy",
    "WorkersConfig",
    "check_worker_bounds",
    "load_model_config",
    "parse_model_config",
    "resolve_config",
]

_DATATYPE_NAMES = tuple(d.name for d in DATATYPES)
DEFAULT_MODEL_FILE = "model.onnx"  # in each version folder, unless model_filename names another
ExecutionProviderName = Literal["tensorrt", "cuda", "rocm", "migraphx", "openvino", "dml", "coreml", "cpu"]


class ModelConfigError(ValueError):
    """A ``config.yaml`` that cannot be read or does not fit the model; the message names file and key."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _within(low: int | float, high: Any, note: str = "") -> pydantic.AfterValidator:
    """A check that a number lies in ``low..high`` (``high``: a number, or a function of no arguments giving
    the host-derived bound); the message states the range."""

    def check(value: Any) -> Any:
        top = high() if callable(high) else high
        if not low <= value <= top:
            shown = int(value) if isinstance(value, float) and value.is_integer() else value
            raise ValueError(f"{shown} is out of range; allowed: {low}..{top}{note}")
        return value

    return pydantic.AfterValidator(check)


_Int64 = Annotated[int, _within(1, limits.INT64_MAX, " (int64)")]
_BatchSize = Annotated[int, _within(1, limits.MAX_BATCH_SIZE)]
_Threads = Annotated[int, _within(0, limits.max_threads, " (4 x the usable cores; 0 = the default)")]
_TargetDelay = Annotated[int, _within(1, limits.MAX_TARGET_QUEUE_DELAY_US, " (60 s)")]
_Workers = Annotated[int, _within(1, limits.max_workers, " (min(4 x cores, memory / 128 MiB) here)")]


class TensorConfig(_Strict):
    """One input or output as ``config.yaml`` declares it."""

    name: str = pydantic.Field(min_length=1)
    datatype: str | None = None
    dims: tuple[int, ...] | None = None
    # Triton's reshape: the graph's shape (without the batch dimension when batching) where clients send and
    # get ``dims``; the element counts must agree.
    reshape: tuple[int, ...] | None = None
    labels: str | None = None  # outputs only: a file in the model's folder, one label per line

    @pydantic.field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str | None) -> str | None:
        if value is not None and value not in _DATATYPE_NAMES:
            raise ValueError(f"'{value}' is not one of {', '.join(_DATATYPE_NAMES)}")
        return value

    @pydantic.field_validator("dims", "reshape")
    @classmethod
    def _valid_dims(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is None:
            return value
        if len(value) > limits.MAX_RANK:
            raise ValueError(f"{len(value)} dimensions; at most {limits.MAX_RANK} are allowed")
        if any(d < -1 or d == 0 or d > limits.INT64_MAX for d in value):
            raise ValueError(
                f"{list(value)}: every dimension must be -1 (dynamic) or a size in "
                f"1..{limits.INT64_MAX} (int64)"
            )
        return value

    @pydantic.field_validator("labels")
    @classmethod
    def _inside_the_folder(cls, value: str | None) -> str | None:
        return value if value is None else check_relative_path(value)


class VersionPolicy(_Strict):
    """Which versions serve: the latest N (default 1), all, or specific ones. Exactly one key."""

    latest: _Int64 | None = None
    all: Literal[True] | None = None
    specific: tuple[_Int64, ...] | None = None

    @pydantic.model_validator(mode="after")
    def _one_choice(self) -> VersionPolicy:
        chosen = [k for k in ("latest", "all", "specific") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"give one of latest, all, specific (got {', '.join(chosen)})")
        if self.specific is not None and (not self.specific or min(self.specific) < 1):
            raise ValueError("specific: a non-empty list of version numbers >= 1")
        return self

    def select(self, available: Sequence[int]) -> list[int]:
        """The versions this policy serves among ``available``, ascending."""
        ordered = sorted(available)
        if self.all:
            return ordered
        if self.specific is not None:
            return [v for v in ordered if v in self.specific]
        return ordered[-(self.latest or 1) :]


class SessionConfig(_Strict):
    """ONNX Runtime session options; 0 threads = ONNX Runtime's default."""

    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    intra_op_threads: _Threads = 0
    inter_op_threads: _Threads = 0
    # Shared libraries of custom operators (Triton's model_operations.op_library_filename), each a file in
    # the model's folder, resolved inside it (links too) when the session opens. They run as the server's
    # code in every worker: a model folder is code as much as data.
    custom_op_libraries: tuple[Annotated[str, pydantic.AfterValidator(check_relative_path)], ...] = ()


class DynamicBatchingConfig(_Strict):
    """How the dynamic batcher gathers requests (consumed by the batcher)."""

    max_queue_delay_us: Annotated[int, _within(0, limits.MAX_QUEUE_DELAY_US, " (10 s)")] = 500
    preferred_batch_sizes: tuple[_BatchSize, ...] = ()
    max_queue_size: Annotated[int, _within(1, limits.MAX_QUEUE_SIZE)] = 1024
    default_timeout_us: Annotated[int, _within(0, limits.MAX_DEFAULT_TIMEOUT_US, " (24 h)")] = 0


class WorkersConfig(_Strict):
    """Worker processes for this model (consumed by the worker pool)."""

    min: _Workers = 1
    max: _Workers = 1
    threads: _Threads = 1
    # Autoscaling: add a worker when the queue delay over the window exceeds this (None: max(5 ms,
    # 4 x dynamic_batching.max_queue_delay_us)); remove one after this many seconds with no request waiting.
    target_queue_delay_us: _TargetDelay | None = None
    scale_down_idle_s: Annotated[float, _within(0, limits.MAX_IDLE_S, " (24 h)")] = 10.0

    @pydantic.model_validator(mode="before")
    @classmethod
    def _max_defaults_to_min(cls, data: Any) -> Any:
        if isinstance(data, dict) and "min" in data and "max" not in data:
            return {**data, "max": data["min"]}
        return data

    @pydantic.model_validator(mode="after")
    def _ordered(self, info: pydantic.ValidationInfo) -> WorkersConfig:
        if self.max < self.min:
            names = (info.context or {}).get("names", {})  # the caller's names for min and max
            high, low = names.get("max", "max"), names.get("min", "min")
            raise ValueError(f"{high} ({self.max}) must be >= {low} ({self.min})")
        return self


class InstancesConfig(_Strict):
    """Where the model's batches run (consumed by the executor): ``thread`` = sessions in the server process
    (cheapest), ``process`` = worker processes (crash isolation, retry, restarts); None = the server's
    ``--instance-kind``."""

    kind: InstanceKind | None = None


class ResponseCacheConfig(_Strict):
    """Triton's ``response_cache``: answer a repeated request from the server's ``--cache-size`` cache."""

    enable: bool = False


def _file_name(value: str) -> str:
    check_relative_path(value)
    if "/" in value:
        raise ValueError(f"'{value}': give a file name in the version folder, not a path")
    return value


class ModelConfig(_Strict):
    """The contents of ``config.yaml``; ``None`` = derive from the graph or use the default."""

    # The graph's file in each version folder (Triton's default_model_filename).
    model_filename: Annotated[str, pydantic.AfterValidator(_file_name)] = DEFAULT_MODEL_FILE
    max_batch_size: Annotated[int, _within(0, limits.MAX_BATCH_SIZE)] | None = None
    inputs: tuple[TensorConfig, ...] = ()
    outputs: tuple[TensorConfig, ...] = ()
    version_policy: VersionPolicy = VersionPolicy()
    execution_providers: tuple[ExecutionProviderName, ...] = ("cpu",)
    session: SessionConfig = SessionConfig()
    dynamic_batching: DynamicBatchingConfig | None = None
    workers: WorkersConfig = WorkersConfig()
    instances: InstancesConfig = InstancesConfig()
    model_warmup: tuple[WarmupSampleConfig, ...] = ()  # run on every instance before it serves
    response_cache: ResponseCacheConfig = ResponseCacheConfig()

    @pydantic.field_validator("inputs", "outputs")
    @classmethod
    def _unique_names(cls, value: tuple[TensorConfig, ...]) -> tuple[TensorConfig, ...]:
        names = [t.name for t in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tensor names must be unique (repeated: {', '.join(duplicates)})")
        return value


def _key_path(location: Sequence[int | str], names: Mapping[str, str] | None = None) -> str:
    path = ""
    for part in location:
        key = names.get(part, part) if isinstance(part, str) and names else part
        path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
    return path or "(top level)"


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


def _refusal(source: str, error: pydantic.ValidationError, names: Mapping[str, str] | None = None) -> str:
    """The message of ``error``: each problem with its key path (the top level's named only without
    ``names``: with them the keys are the caller's and each message names its own)."""
    problems = (
        f"{_key_path(e['loc'], names)}: {_message(e)}" if e["loc"] or names is None else _message(e)
        for e in error.errors(include_url=False)
    )
    return f"{source}: {'; '.join(problems)}"


def parse_model_config(data: Any, *, source: str, names: Mapping[str, str] | None = None) -> ModelConfig:
    """Validate already-parsed YAML/JSON; errors name ``source``, every offending key path and, for a
    number, its allowed range. ``names`` renames keys in the messages (a config translated from another
    schema names the keys its author wrote)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return ModelConfig.model_validate(data)
    except pydantic.ValidationError as error:
        raise ModelConfigError(_refusal(source, error, names)) from None


def check_worker_bounds(minimum: int, maximum: int, *, source: str, names: tuple[str, str]) -> WorkersConfig:
    """Worker bounds asked for at run time (the management API) checked as ``workers.min``/``workers.max``
    of a config are: the same ranges, with the caller's key ``names`` (min, max) in the message."""
    renamed = {"min": names[0], "max": names[1]}
    try:
        return WorkersConfig.model_validate({"min": minimum, "max": maximum}, context={"names": renamed})
    except pydantic.ValidationError as error:
        raise ModelConfigError(_refusal(source, error, renamed)) from None


def load_model_config(path: Path) -> ModelConfig:
    """Read ``config.yaml`` at ``path``; a missing file is the all-default config.

    Blocking (call it off the event loop), but never for long: a FIFO, a device, a file over
    :data:`~.config_files.CONFIG_MAX_BYTES`, text that is not UTF-8 and YAML nested absurdly deep are
    :class:`ModelConfigError` (of this model alone) instead of a hang or a crash.
    """
    try:
        text = read_text(path, limit=CONFIG_MAX_BYTES)
    except FileNotFoundError:
        return ModelConfig()
    except UnreadableFile as error:
        raise ModelConfigError(f"{path}: {error}") from None
    try:
        data = load_yaml(text)
    except UnreadableFile as error:
        raise ModelConfigError(f"{path}: {error}") from None
    except (yaml.YAMLError, RecursionError) as error:
        raise ModelConfigError(f"{path}: not valid YAML ({error})") from None
    return parse_model_config(data, source=str(path))


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A model version's configuration after merging ``config.yaml`` with its graph.

    ``inputs``/``outputs`` carry full shapes: for a batching model the first dimension is -1 (the batch).
    """

    name: str
    config: ModelConfig
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: dict[str, tuple[str, ...]]  # output name -> labels
    warmup: tuple[WarmupSample, ...] = ()  # config.model_warmup's tensors
    # tensor name -> the graph's shape for it (per row when batching), where config.yaml reshapes it
    reshapes: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def to_graph_shapes(self, inputs: Tensors) -> Tensors:
        """``inputs`` (named arrays, as clients sent them) with every reshaped one in the graph's shape
        (``inputs`` itself when nothing is reshaped: the common case costs nothing)."""
        if not self.reshapes:
            return inputs
        return {name: self._reshaped(array, self.reshapes.get(name)) for name, array in inputs.items()}

    def to_client_shapes(self, outputs: Tensors) -> Tensors:
        """``outputs`` (named arrays from the graph) with every reshaped one in the shape clients get."""
        if not self.reshapes:
            return outputs
        dims = {spec.name: spec.shape[1:] if self.max_batch_size > 0 else spec.shape for spec in self.outputs}
        return {
            name: self._reshaped(array, dims[name] if name in self.reshapes else None)
            for name, array in outputs.items()
        }

    def _reshaped(self, array: npt.NDArray[Any], shape: tuple[int, ...] | None) -> npt.NDArray[Any]:
        if shape is None:
            return array
        return array.reshape((array.shape[0], *shape) if self.max_batch_size > 0 else shape)

    @property
    def dynamic_batching(self) -> DynamicBatchingConfig | None:
        """The dynamic batching in force, None when every request runs alone.

        As in Triton, a model whose batch support was read from the graph (no ``max_batch_size`` in
        config.yaml) gets dynamic batching with the default settings; an explicit ``max_batch_size`` without
        ``dynamic_batching`` does not.
        """
        dynamic = self.config.dynamic_batching
        if dynamic is None and self.config.max_batch_size is None and self.max_batch_size > 0:
            return DynamicBatchingConfig()
        return dynamic


def resolve_config(
    name: str,
    config: ModelConfig,
    graph_inputs: Sequence[TensorSpec],
    graph_outputs: Sequence[TensorSpec],
    *,
    source: str,
    default_max_batch_size: int,
) -> ResolvedConfig:
    """Merge ``config`` into the graph's signature; a conflict raises :class:`ModelConfigError`.

    A graph whose inputs and outputs all lead with a dynamic dimension batches, with
    ``default_max_batch_size`` unless the config says otherwise. ``source`` (the config file) is named in
    errors, and its folder is where label files are read from: blocking, so call this off the event loop.
    """
    everything = [*graph_inputs, *graph_outputs]
    leading_dynamic = all(len(t.shape) >= 1 and t.shape[0] == -1 for t in everything)
    if config.max_batch_size is None:
        max_batch_size = default_max_batch_size if leading_dynamic else 0
    else:
        max_batch_size = config.max_batch_size
        if max_batch_size > 0 and not leading_dynamic:
            fixed = [f"{t.name} {list(t.shape)}" for t in everything if not t.shape or t.shape[0] != -1]
            raise ModelConfigError(
                f"{source}: max_batch_size: {max_batch_size} needs the first dimension of every input and "
                f"output to be dynamic in the graph, but these are not: {', '.join(fixed)}; set "
                "max_batch_size: 0, or export the model with a dynamic batch dimension"
            )
    preferred = config.dynamic_batching.preferred_batch_sizes if config.dynamic_batching else ()
    too_large = [size for size in preferred if size > max_batch_size]
    if too_large:  # as Triton: a size the batcher can never reach is a mistake, not a wish
        allowed = f"allowed: 1..{max_batch_size}" if max_batch_size else "a model without batching has none"
        raise ModelConfigError(
            f"{source}: dynamic_batching.preferred_batch_sizes: {too_large} exceed max_batch_size "
            f"({max_batch_size}); {allowed}"
        )
    reshapes: dict[str, tuple[int, ...]] = {}
    inputs = _merge("inputs", config.inputs, graph_inputs, max_batch_size, source, reshapes=reshapes)
    outputs = _merge("outputs", config.outputs, graph_outputs, max_batch_size, source, reshapes=reshapes)
    for index, tensor in enumerate(config.inputs):
        if tensor.labels is not None:
            raise ModelConfigError(f"{source}: inputs[{index}].labels: labels belong to outputs only")
    labels = {
        tensor.name: _read_labels(Path(source).parent, tensor.labels, f"{source}: outputs[{index}].labels")
        for index, tensor in enumerate(config.outputs)
        if tensor.labels is not None
    }
    try:
        warmup = build_samples(config.model_warmup, inputs, max_batch_size, folder=Path(source).parent)
    except WarmupError as error:
        raise ModelConfigError(f"{source}: {error}") from None
    return ResolvedConfig(name, config, max_batch_size, inputs, outputs, labels, warmup, reshapes)


def _merge(
    key: str,
    declared: Sequence[TensorConfig],
    graph: Sequence[TensorSpec],
    max_batch_size: int,
    source: str,
    *,
    reshapes: dict[str, tuple[int, ...]],
) -> tuple[TensorSpec, ...]:
    by_name = {t.name: (i, t) for i, t in enumerate(declared)}
    graph_names = {t.name for t in graph}
    for index, tensor in enumerate(declared):
        if tensor.name not in graph_names:
            raise ModelConfigError(
                f"{source}: {key}[{index}].name: the graph has no {key[:-1]} '{tensor.name}' "
                f"(it has: {', '.join(sorted(graph_names))})"
            )
    merged: list[TensorSpec] = []
    for spec in graph:
        if spec.name not in by_name:
            merged.append(spec)
            continue
        index, tensor = by_name[spec.name]
        where = f"{source}: {key}[{index}]"
        if tensor.datatype is not None and tensor.datatype != spec.datatype:
            raise ModelConfigError(
                f"{where}.datatype: {tensor.datatype} does not match the graph's {spec.datatype} for "
                f"'{spec.name}'"
            )
        if tensor.reshape is not None:
            shape = _reshape(tensor, spec, max_batch_size, where)
            reshapes[spec.name] = tensor.reshape
        else:
            shape = _merge_dims(tensor, spec, max_batch_size, where)
        merged.append(TensorSpec(spec.name, spec.datatype, shape))
    return tuple(merged)


def _reshape(tensor: TensorConfig, spec: TensorSpec, max_batch_size: int, where: str) -> tuple[int, ...]:
    """The shape clients use for a tensor the graph takes as ``tensor.reshape``: ``tensor.dims`` (with the
    batch dimension when batching), once reshape fits the graph and holds as many elements as dims."""
    if tensor.dims is None or tensor.reshape is None:
        raise ModelConfigError(f"{where}.reshape: give dims too (the shape clients send and get)")
    _merge_dims(tensor.model_copy(update={"dims": tensor.reshape}), spec, max_batch_size, f"{where} reshape")
    for key, dims in (("dims", tensor.dims), ("reshape", tensor.reshape)):
        if list(dims).count(-1) > 1:
            raise ModelConfigError(
                f"{where}.{key}: {list(dims)} has more than one -1; reshaping needs at most one"
            )
    if (
        -1 not in tensor.dims
        and -1 not in tensor.reshape
        and math.prod(tensor.dims) != math.prod(tensor.reshape)
    ):
        raise ModelConfigError(
            f"{where}.reshape: {list(tensor.reshape)} holds {math.prod(tensor.reshape)} elements but dims "
            f"{list(tensor.dims)} hold {math.prod(tensor.dims)}; they must hold the same number"
        )
    return (-1, *tensor.dims) if max_batch_size > 0 else tensor.dims


def _merge_dims(tensor: TensorConfig, spec: TensorSpec, max_batch_size: int, where: str) -> tuple[int, ...]:
    if tensor.dims is None:
        return spec.shape
    graph_dims = spec.shape[1:] if max_batch_size > 0 else spec.shape
    if len(tensor.dims) != len(graph_dims):
        batch_note = " (without the batch dimension, as max_batch_size > 0)" if max_batch_size > 0 else ""
        raise ModelConfigError(
            f"{where}.dims: {list(tensor.dims)} has {len(tensor.dims)} dimensions but '{spec.name}' has "
            f"{len(graph_dims)} in the graph: {list(graph_dims)}{batch_note}"
        )
    dims: list[int] = []
    for declared, actual in zip(tensor.dims, graph_dims, strict=True):
        if actual != -1 and declared not in (-1, actual):
            raise ModelConfigError(
                f"{where}.dims: {list(tensor.dims)} conflicts with the graph's {list(graph_dims)} "
                f"for '{spec.name}'"
            )
        dims.append(actual if declared == -1 else declared)
    return (-1, *dims) if max_batch_size > 0 else tuple(dims)


def _read_labels(folder: Path, relative: str, where: str) -> tuple[str, ...]:
    """The labels in ``folder / relative``, which must stay inside ``folder`` (links resolved), be a regular
    file of at most :data:`~.config_files.LABELS_MAX_BYTES` and UTF-8. Blocking: call it off the loop."""
    try:
        text = read_text(resolve_inside(folder, relative), limit=LABELS_MAX_BYTES)
    except FileNotFoundError:
        raise ModelConfigError(f"{where}: '{relative}' does not exist in the model's folder") from None
    except (UnreadableFile, OSError) as error:
        reason = error if isinstance(error, UnreadableFile) else f"cannot be read ({error.strerror})"
        raise ModelConfigError(f"{where}: '{relative}' {reason}") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())
