"""TF Serving's REST predict bodies (``g3doc/api_rest.md``) to and from named numpy arrays.

Request: ``{"signature_name"?, "instances": [...]}`` (row format: one element per row; a list of objects
for several named inputs, all of one batch size) or ``{"signature_name"?, "inputs": value | {name:
value}}`` (columnar). A string input's values are text (sent as UTF-8) or ``{"b64": "..."}``.
Answer: ``{"predictions": ...}`` for the row format (one output: its rows; several: one object per row),
``{"outputs": ...}`` for the columnar one (one output: its value; several: an object by name). A string
output whose name ends in ``_bytes`` is answered ``{"b64": ...}``, as TF Serving does; other strings as
text (``{"b64": ...}`` where they are not UTF-8). As TF Serving's, the JSON may hold ``NaN``, ``Infinity``
and ``-Infinity`` tokens, in requests and answers (:func:`loads_with_non_finite`,
:func:`dumps_with_non_finite`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from ..config_limits import MAX_RANK
from ..datatypes import by_name
from ..errors import InvalidInput
from ..inference import Tensors, TensorSpec
from .tfserving_types import check_signature

__all__ = [
    "PredictBody",
    "decode_predict",
    "dumps_with_non_finite",
    "encode_predict",
    "loads_with_non_finite",
]


@dataclass(frozen=True, slots=True)
class PredictBody:
    """A decoded predict request: its tensors and whether it came in the row format."""

    inputs: Tensors
    rows: bool


def loads_with_non_finite(body: bytes) -> Any:
    """``body`` parsed as JSON, also with TF Serving's ``NaN``/``Infinity``/``-Infinity`` tokens (orjson
    first; Python's parser, which takes them, only for a body orjson refuses). ``ValueError`` or
    ``RecursionError`` for anything else that is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if b"NaN" not in body and b"Infinity" not in body:
            raise
        original = error
    try:
        return json.loads(body)
    except ValueError:
        raise original from None


def dumps_with_non_finite(answer: dict[str, Any], outputs: Tensors) -> bytes:
    """``answer`` as JSON: orjson's, or Python's (which writes ``NaN``/``Infinity`` where orjson writes
    null) when a floating-point output holds a non-finite value."""
    floating = (array for array in outputs.values() if array.dtype.kind == "f")
    if any(not np.isfinite(array).all() for array in floating):
        return json.dumps(answer, allow_nan=True, separators=(",", ":")).encode()
    return orjson.dumps(answer)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == {"b64"}


def decode_predict(body: dict[str, Any], inputs: Sequence[TensorSpec], *, model: str) -> PredictBody:
    """The tensors of ``body`` for a model with ``inputs``; :class:`InvalidInput` saying what to fix."""
    unknown = sorted(body.keys() - {"signature_name", "instances", "inputs"})
    if unknown:
        raise InvalidInput(
            f"predict request: unknown key(s) {', '.join(repr(key[:64]) for key in unknown[:5])}; give "
            "'instances' (row format) "
            "or 'inputs' (columnar format), and optionally 'signature_name'"
        )
    signature = body.get("signature_name", "")
    if not isinstance(signature, str):
        raise InvalidInput("predict request: 'signature_name' must be a string")
    check_signature(signature, model)
    if ("instances" in body) == ("inputs" in body):
        if "instances" in body:
            raise InvalidInput("predict request: Not both 'inputs' and 'instances' can be set; give one")
        raise InvalidInput("predict request: Missing 'inputs' or 'instances' key")
    specs = {spec.name: spec for spec in inputs}
    if "instances" in body:
        return PredictBody(_rows(body["instances"], specs, model), rows=True)
    columns = body["inputs"]
    if isinstance(columns, dict) and not _is_b64(columns):
        named = columns
    else:
        named = {_sole(specs, model, "'inputs' holds one value"): columns}
    tensors = {name: _tensor(value, _spec(specs, name, model)) for name, value in named.items()}
    return PredictBody(tensors, rows=False)


def _sole(specs: dict[str, TensorSpec], model: str, what: str) -> str:
    if len(specs) != 1:
        raise InvalidInput(
            f"model '{model}' has {len(specs)} inputs ({', '.join(specs)}) but {what}: name each input "
            "(row format: a list of objects {name: value}; columnar: 'inputs': {name: value})"
        )
    return next(iter(specs))


def _spec(specs: dict[str, TensorSpec], name: str, model: str) -> TensorSpec:
    spec = specs.get(name)
    if spec is None:
        shown = name if len(name) <= 64 else name[:61] + "..."
        raise InvalidInput(f"model '{model}' has no input {shown!r} (it has: {', '.join(specs)})")
    return spec


def _rows(instances: Any, specs: dict[str, TensorSpec], model: str) -> Tensors:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("predict request: 'instances' must be a non-empty list, one element per row")
    if not all(isinstance(row, dict) and not _is_b64(row) for row in instances):
        if any(isinstance(row, dict) and not _is_b64(row) for row in instances):
            raise InvalidInput("predict request: 'instances' mixes objects and values; give one kind")
        name = _sole(specs, model, "each instance is one value")
        return {name: _tensor(instances, specs[name])}
    names = instances[0].keys()
    for index, row in enumerate(instances):
        if row.keys() != names:
            raise InvalidInput(
                f"predict request: instances[{index}] names inputs {sorted(row)} but instances[0] names "
                f"{sorted(names)}; every instance must name the same inputs"
            )
    return {name: _tensor([row[name] for row in instances], _spec(specs, name, model)) for name in names}


def _tensor(value: Any, spec: TensorSpec) -> npt.NDArray[np.generic]:
    datatype = by_name(spec.datatype)
    if datatype.name == "BYTES":
        return _strings(value, spec.name)
    _check_depth(value, spec.name)
    try:
        return np.asarray(value, dtype=datatype.numpy)
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidInput(
            f"input '{spec.name}': the values are not a {spec.datatype} tensor ({error}); rows must all "
            "have the same length and hold numbers"
        ) from None


def _check_depth(value: Any, name: str) -> None:
    depth = 0
    while isinstance(value, list) and value:
        depth += 1
        if depth > MAX_RANK:
            raise InvalidInput(f"input '{name}': nested deeper than {MAX_RANK} levels")
        value = value[0]


def _strings(value: Any, name: str) -> npt.NDArray[np.object_]:
    def leaf(item: Any, depth: int) -> Any:
        if isinstance(item, list):
            if depth >= MAX_RANK:
                raise InvalidInput(f"input '{name}': nested deeper than {MAX_RANK} levels")
            return [leaf(x, depth + 1) for x in item]
        if isinstance(item, str):
            return item.encode()
        if _is_b64(item) and isinstance(item["b64"], str):
            try:
                return base64.b64decode(item["b64"], validate=True)
            except binascii.Error:
                raise InvalidInput(f"input '{name}': a 'b64' value is not valid base64") from None
        raise InvalidInput(
            f'input \'{name}\' is a string tensor: give text or {{"b64": "..."}}, not {type(item).__name__}'
        )

    converted = leaf(value, 0)
    ragged = InvalidInput(f"input '{name}': rows must all have the same length")
    try:
        array: npt.NDArray[np.object_] = np.array(converted, dtype=object)
    except ValueError:
        raise ragged from None
    # Ragged rows do not fail here: numpy makes them an array of lists.
    if any(type(item) is not bytes for item in array.reshape(-1)):
        raise ragged
    return array


def _value(array: npt.NDArray[Any], name: str) -> Any:
    if array.dtype != object:
        return array.tolist()
    as_b64 = name.endswith("_bytes")

    def leaf(item: Any) -> Any:
        if isinstance(item, list):
            return [leaf(x) for x in item]
        data = item.encode() if isinstance(item, str) else bytes(item)
        if not as_b64:
            try:
                return data.decode()
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(data).decode("ascii")}

    return leaf(array.tolist())


def encode_predict(outputs: Tensors, *, rows: bool) -> dict[str, Any]:
    """The answer's JSON object for ``outputs`` (in signature order) in the request's format."""
    if not rows:
        if len(outputs) == 1:
            ((name, array),) = outputs.items()
            return {"outputs": _value(array, name)}
        return {"outputs": {name: _value(array, name) for name, array in outputs.items()}}
    if len(outputs) == 1:
        ((name, array),) = outputs.items()
        if array.ndim == 0:
            raise InvalidInput(f"output '{name}' is a scalar: ask in the columnar format ('inputs')")
        return {"predictions": _value(array, name)}
    sizes = {name: array.shape[0] if array.ndim else None for name, array in outputs.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        shown = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise InvalidInput(
            f"the outputs do not share a batch size ({shown}), so they cannot be answered as rows: ask in "
            "the columnar format ('inputs')"
        )
    columns = {name: _value(array, name) for name, array in outputs.items()}
    count = next(iter(sizes.values())) or 0
    return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(count)]}
