"""Triton's ModelConfig JSON as a load request's ``config`` (what ``tritonclient``'s ``load_model(name,
config=...)`` sends), translated into ``config.yaml``'s schema.

:func:`is_triton_config` tells the two forms apart by keys only Triton's has (``input``, ``output``,
``platform``, ``instance_group``, ``dynamic_batching.max_queue_delay_microseconds``, ``version_policy.latest
{num_versions}``, ...). :func:`from_triton_config` translates what this server can honour and refuses every
other key, naming it: nothing is silently ignored except what only describes this server (the ``name`` of the
model being loaded, the ONNX Runtime platform/backend, ``parameters.execution_provider`` as ``/config``
reports it). What ``GET /v2/models/M/config`` returns loads back unchanged. Integers may be JSON strings, as
protobuf's JSON form writes int64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..datatypes import DATATYPES
from ..errors import InvalidInput
from .triton_config import PLATFORM

__all__ = ["TRITON_KEY_NAMES", "from_triton_config", "is_triton_config"]

_TRITON_ONLY = {
    "name",
    "platform",
    "backend",
    "input",
    "output",
    "instance_group",
    "default_model_filename",
    "parameters",
    "optimization",
    "model_transaction_policy",
    "model_operations",
    "sequence_batching",
    "ensemble_scheduling",
}
_BY_TRITON = {d.triton: d.name for d in DATATYPES}
_GRAPH_LEVELS = {-1: "disable", 0: "all", 1: "extended"}
# Keys that only restate this server's defaults: accepted when they hold exactly this value.
_NEUTRAL_TENSOR = {
    "is_shape_tensor": False,
    "allow_ragged_batch": False,
    "optional": False,
}


# config.yaml's key -> the Triton key it was translated from, for the messages of parse_model_config(names=):
# a value refused there (a range, above all) is named as the client wrote it.
TRITON_KEY_NAMES: Mapping[str, str] = {
    "inputs": "input",
    "outputs": "output",
    "datatype": "data_type",
    "labels": "label_filename",
    "max_queue_delay_us": "max_queue_delay_microseconds",
    "preferred_batch_sizes": "preferred_batch_size",
    "max_queue_size": "default_queue_policy.max_queue_size",
    "default_timeout_us": "default_queue_policy.default_timeout_microseconds",
    "latest": "latest.num_versions",
    "specific": "specific.versions",
    "workers": "instance_group",
    "min": "count (summed over the groups)",
    "max": "count (summed over the groups)",
    "session": "parameters",
    "intra_op_threads": "intra_op_thread_count",
    "custom_op_libraries": "model_operations.op_library_filename",
    "model_filename": "default_model_filename",
    "inter_op_threads": "inter_op_thread_count",
}


def is_triton_config(data: Any) -> bool:
    """Whether ``data`` (parsed JSON) is Triton's ModelConfig rather than config.yaml's schema."""
    if not isinstance(data, dict):
        return False
    if _TRITON_ONLY & data.keys():
        return True
    batching, policy = data.get("dynamic_batching"), data.get("version_policy")
    if (
        isinstance(batching, dict)
        and {"max_queue_delay_microseconds", "preferred_batch_size", "default_queue_policy"} & batching.keys()
    ):
        return True
    if isinstance(policy, dict) and any(isinstance(value, dict) for value in policy.values()):
        return True
    return _has_triton_datatypes(data.get("model_warmup"))


def _has_triton_datatypes(warmups: Any) -> bool:
    """Whether a ``model_warmup`` names its data types as Triton does (``TYPE_FP32``)."""
    samples = warmups if isinstance(warmups, list) else []
    inputs = [s["inputs"] for s in samples if isinstance(s, dict) and isinstance(s.get("inputs"), dict)]
    return any(
        isinstance(tensor, dict) and str(tensor.get("data_type", "")).startswith("TYPE_")
        for group in inputs
        for tensor in group.values()
    )


def from_triton_config(data: Mapping[str, Any], *, model: str, where: str) -> dict[str, Any]:
    """config.yaml's schema for Triton's ``data``; :class:`InvalidInput` naming ``where`` and the key."""
    prefix = f"{where} (Triton ModelConfig)"
    result: dict[str, Any] = {}
    handlers: dict[str, Callable[[Any, str], None]] = {
        "name": lambda v, at: _same_name(v, model, at),
        "platform": lambda v, at: _allowed(v, (PLATFORM, ""), at),
        "backend": lambda v, at: _allowed(v, ("onnxruntime", ""), at),
        "default_model_filename": lambda v, at: result.__setitem__("model_filename", v) if v else None,
        "max_batch_size": lambda v, at: result.__setitem__("max_batch_size", _int(v, at)),
        "input": lambda v, at: result.__setitem__("inputs", _tensors(v, at, output=False)),
        "output": lambda v, at: result.__setitem__("outputs", _tensors(v, at, output=True)),
        "version_policy": lambda v, at: result.__setitem__("version_policy", _version_policy(v, at)),
        "dynamic_batching": lambda v, at: result.__setitem__("dynamic_batching", _batching(v, at)),
        "instance_group": lambda v, at: _instances(v, at, result),
        "optimization": lambda v, at: _optimization(v, at, result),
        "parameters": lambda v, at: _parameters(v, at, result),
        "model_operations": lambda v, at: _keys(
            v,
            at,
            {
                "op_library_filename": lambda n, a: result.setdefault("session", {}).__setitem__(
                    "custom_op_libraries", _list(n, a)
                )
            },
        ),
        "model_transaction_policy": lambda v, at: _keys(
            v, at, {"decoupled": lambda d, a: _allowed(d, (False,), a)}
        ),
        "model_warmup": lambda v, at: result.__setitem__("model_warmup", _warmups(v, at)),
        "response_cache": lambda v, at: result.__setitem__("response_cache", _response_cache(v, at)),
    }
    _keys(data, prefix, handlers, top=True)
    return result


def _keys(
    value: Any, at: str, handlers: Mapping[str, Callable[[Any, str], None]], *, top: bool = False
) -> None:
    if not isinstance(value, dict):
        raise InvalidInput(f"{at}: expected a JSON object, got {type(value).__name__}")
    for key, item in value.items():
        handler = handlers.get(key)
        if handler is None:
            what = f"Triton ModelConfig key '{key}'" if top else f"key '{key}'"
            raise InvalidInput(f"{at}: {what} is not supported (supported: {', '.join(sorted(handlers))})")
        handler(item, f"{at}: {key}" if top else f"{at}.{key}")


def _int(value: Any, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{at}: {value!r} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{at}: {value!r} is not an integer") from None


def _allowed(value: Any, allowed: tuple[Any, ...], at: str) -> None:
    if value not in allowed:
        raise InvalidInput(f"{at}: {value!r} is not supported here (only {', '.join(map(repr, allowed))})")


def _same_name(value: Any, model: str, at: str) -> None:
    if value not in (model, ""):
        raise InvalidInput(f"{at}: {value!r} is not the model being loaded ({model!r})")


def _tensors(value: Any, at: str, *, output: bool) -> list[dict[str, Any]]:
    return [_tensor(raw, f"{at}[{index}]", output=output) for index, raw in enumerate(_list(value, at))]


def _tensor(raw: Any, at: str, *, output: bool) -> dict[str, Any]:
    tensor: dict[str, Any] = {}

    def name(v: Any, a: str) -> None:
        tensor["name"] = v

    def datatype(v: Any, a: str) -> None:
        if v not in _BY_TRITON:
            raise InvalidInput(f"{a}: {v!r} is not a Triton data type ({', '.join(_BY_TRITON)})")
        tensor["datatype"] = _BY_TRITON[v]

    def dims(v: Any, a: str) -> None:
        tensor["dims"] = [_int(d, a) for d in _list(v, a)]

    def labels(v: Any, a: str) -> None:
        if v:
            tensor["labels"] = v

    def reshape(v: Any, a: str) -> None:
        # reshape { shape: [ ] } (a scalar per row) is written without its empty list
        _keys(v, a, {"shape": _ignore})
        tensor["reshape"] = [_int(d, f"{a}.shape") for d in _list(v.get("shape", []), f"{a}.shape")]

    handlers: dict[str, Callable[[Any, str], None]] = {
        "name": name,
        "data_type": datatype,
        "dims": dims,
        "reshape": reshape,
    }
    # An image layout, for Triton only a check of the dims: the graph's shape is the check here.
    handlers["format"] = lambda v, a: _allowed(v, ("FORMAT_NONE", "FORMAT_NCHW", "FORMAT_NHWC"), a)
    handlers.update({key: _only(want) for key, want in _NEUTRAL_TENSOR.items()})
    if output:
        handlers["label_filename"] = labels
    _keys(raw, at, handlers)
    return tensor


def _only(want: Any) -> Callable[[Any, str], None]:
    """A handler accepting just ``want`` (a key that restates this server's behaviour)."""
    return lambda value, at: _allowed(value, (want,), at)


def _ignore(value: Any, at: str) -> None:
    """A handler for a key that only describes (an instance group's name, ...)."""


def _list(value: Any, at: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{at}: expected a list")
    return value


def _version_policy(value: Any, at: str) -> dict[str, Any]:
    policy: dict[str, Any] = {}

    def latest(v: Any, a: str) -> None:
        _keys(v, a, {"num_versions": lambda n, b: policy.__setitem__("latest", _int(n, b))})

    def every(v: Any, a: str) -> None:
        _keys(v, a, {})
        policy["all"] = True

    def specific(v: Any, a: str) -> None:
        _keys(
            v, a, {"versions": lambda n, b: policy.__setitem__("specific", [_int(x, b) for x in _list(n, b)])}
        )

    _keys(value, at, {"latest": latest, "all": every, "specific": specific})
    return policy


def _batching(value: Any, at: str) -> dict[str, Any]:
    batching: dict[str, Any] = {}
    queue = {
        "max_queue_size": lambda v, a: batching.__setitem__("max_queue_size", _int(v, a)),
        "default_timeout_microseconds": lambda v, a: batching.__setitem__("default_timeout_us", _int(v, a)),
        "timeout_action": lambda v, a: _allowed(v, ("REJECT",), a),
        "allow_timeout_override": lambda v, a: _allowed(v, (True,), a),
    }
    _keys(
        value,
        at,
        {
            "max_queue_delay_microseconds": lambda v, a: batching.__setitem__(
                "max_queue_delay_us", _int(v, a)
            ),
            "preferred_batch_size": lambda v, a: batching.__setitem__(
                "preferred_batch_sizes", [_int(x, a) for x in _list(v, a)]
            ),
            "default_queue_policy": lambda v, a: _keys(v, a, queue),
        },
    )
    return batching


def _instances(value: Any, at: str, result: dict[str, Any]) -> None:
    count = sum(
        _instance_count(group, f"{at}[{index}]", result) for index, group in enumerate(_list(value, at))
    )
    if count:
        result["workers"] = {"min": count, "max": count}


def _instance_count(group: Any, at: str, result: dict[str, Any]) -> int:
    count = [1]

    def kind(v: Any, a: str) -> None:
        _allowed(v, ("KIND_CPU", "KIND_AUTO", "KIND_GPU"), a)
        if v == "KIND_GPU":
            result.setdefault("execution_providers", ["cuda", "cpu"])

    def instances(v: Any, a: str) -> None:
        count[0] = _int(v, a)

    _keys(group, at, {"name": _ignore, "kind": kind, "count": instances, "gpus": _ignore})
    return count[0]


def _optimization(value: Any, at: str, result: dict[str, Any]) -> None:
    def level(v: Any, a: str) -> None:
        number = _int(v, a)
        if number not in _GRAPH_LEVELS:
            raise InvalidInput(f"{a}: {number} is not a graph optimization level (-1, 0, 1)")
        result.setdefault("session", {})["graph_optimization_level"] = _GRAPH_LEVELS[number]

    def accelerators(v: Any, a: str) -> None:
        names = [
            _name_of(item, f"{a}.{key}[{index}]")
            for key in ("gpu_execution_accelerator", "cpu_execution_accelerator")
            for index, item in enumerate(_list(v.get(key, []), f"{a}.{key}") if isinstance(v, dict) else [])
        ]
        _keys(
            v,
            a,
            {"gpu_execution_accelerator": _ignore, "cpu_execution_accelerator": _ignore},
        )
        if names:
            result.setdefault("execution_providers", [*names, "cpu"])

    _keys(
        value,
        at,
        {"graph": lambda v, a: _keys(v, a, {"level": level}), "execution_accelerators": accelerators},
    )


def _name_of(item: Any, at: str) -> str:
    _keys(item, at, {"name": _ignore, "parameters": _only({})})
    name = item.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f"{at}.name: an execution provider name is required")
    return name


def _parameters(value: Any, at: str, result: dict[str, Any]) -> None:
    session = result.setdefault("session", {})

    def text(v: Any, a: str) -> str:
        _keys(v, a, {"string_value": _ignore})
        string = v.get("string_value")
        if not isinstance(string, str):
            raise InvalidInput(f"{a}.string_value: a string is required")
        return string

    _keys(
        value,
        at,
        {
            "execution_provider": _ignore,  # what /config reports as active: nothing to set
            "execution_providers": lambda v, a: result.__setitem__(
                "execution_providers", [p.strip() for p in text(v, a).split(",") if p.strip()]
            ),
            "intra_op_thread_count": lambda v, a: session.__setitem__(
                "intra_op_threads", _int(text(v, a), a)
            ),
            "inter_op_thread_count": lambda v, a: session.__setitem__(
                "inter_op_threads", _int(text(v, a), a)
            ),
        },
    )


def _warmups(value: Any, at: str) -> list[Any]:
    """``model_warmup`` in config.yaml's schema, which has Triton's keys: only the data types (TYPE_ names),
    the integers (JSON strings for int64) and the files (in the model folder's ``warmup/``, where Triton
    keeps them) change; the keys are checked with the rest of config.yaml's."""
    samples: list[Any] = []
    for index, raw in enumerate(_list(value, at)):
        where = f"{at}[{index}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where}: expected a JSON object")
        sample = dict(raw)
        if "batch_size" in sample:
            sample["batch_size"] = _int(sample["batch_size"], f"{where}.batch_size")
        if "count" in sample:  # Triton runs a sample of count 0 once
            sample["count"] = max(1, _int(sample["count"], f"{where}.count"))
        if isinstance(sample.get("inputs"), dict):
            sample["inputs"] = {
                name: _warmup_input(tensor, f"{where}.inputs.{name}")
                for name, tensor in sample["inputs"].items()
            }
        samples.append(sample)
    return samples


def _warmup_input(raw: Any, at: str) -> Any:
    if not isinstance(raw, dict):
        return raw  # refused by config.yaml's schema, with its key path
    # protobuf's JSON writes a false data source when it writes defaults: a false one is no source
    tensor = {k: v for k, v in raw.items() if k not in ("zero_data", "random_data") or v is not False}
    if "data_type" in tensor:
        if tensor["data_type"] not in _BY_TRITON:
            raise InvalidInput(f"{at}.data_type: {tensor['data_type']!r} is not a Triton data type")
        tensor["data_type"] = _BY_TRITON[tensor["data_type"]]
    if "dims" in tensor:
        tensor["dims"] = [_int(d, f"{at}.dims") for d in _list(tensor["dims"], f"{at}.dims")]
    if isinstance(tensor.get("input_data_file"), str):
        tensor["input_data_file"] = f"warmup/{tensor['input_data_file']}"
    return tensor


def _response_cache(value: Any, at: str) -> dict[str, Any]:
    cache: dict[str, Any] = {}
    _keys(value, at, {"enable": lambda v, a: cache.__setitem__("enable", v)})
    return cache
