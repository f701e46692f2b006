"""Request bodies of TorchServe's inference API, decoded into the named arrays of one data-plane call.

TorchServe's default handlers take a body as it comes: a JSON array (one instance), a JSON object (one
instance: ``{"data": ...}``/``{"body": ...}`` wrapping it, or input names as keys), a JSON list of instances,
a raw ``.npy`` array, or an image (``torchserve_images``). :func:`decode_body` turns each into the model's
inputs, with a batch dimension added for one instance of a batching model; :class:`Decoded` says whether the
client sent one instance (its answer is that instance's output) or a list of them (a list of outputs).
"""

from __future__ import annotations

import email.parser
import email.policy
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..datatypes import by_name
from ..errors import InvalidInput
from ..inference import Tensors, TensorSpec
from .torchserve_images import decode_image, is_image

__all__ = ["NPY_MAGIC", "Decoded", "decode_body"]

NPY_MAGIC = b"\x93NUMPY"
_NPY_TYPES = ("application/x-npy", "application/npy")
_WRAPPERS = ("data", "body", "instances")


@dataclass(frozen=True, slots=True)
class Decoded:
    """The inputs of one data-plane call; ``single``: the body was one instance (answer it unwrapped)."""

    inputs: Tensors
    single: bool


def decode_body(body: bytes, content_type: str, inputs: list[TensorSpec], batching: bool) -> Decoded:
    """The model inputs ``body`` holds (``inputs``: the model's signature; ``batching``: its first dimension
    is the batch). :class:`InvalidInput` saying what to send instead when it fits none of the forms."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return _form(body, content_type, inputs, batching)
    if not body:
        raise InvalidInput("request body is empty: send a JSON array or object, an .npy array or an image")
    if body.startswith(NPY_MAGIC) or kind in _NPY_TYPES:
        return _one_input(_npy(body), inputs, batching, "the .npy array")
    if is_image(body):
        if len(inputs) != 1:
            raise InvalidInput(f"an image body fits single-input models only; this one has {_names(inputs)}")
        return Decoded({inputs[0].name: decode_image(body, inputs[0])}, single=True)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(
            f"request body is not valid JSON ({error}); send a JSON array or object, an .npy array "
            "(Content-Type: application/x-npy) or a PNG/JPEG image"
        ) from None
    if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in _WRAPPERS:
        data = next(iter(data.values()))
    if isinstance(data, dict):
        return _named(data, inputs, batching)
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        return _named_instances(data, inputs, batching)
    return _one_input(
        _array(data, inputs[0] if len(inputs) == 1 else None, "the JSON body"),
        inputs,
        batching,
        "the JSON body",
    )


def _form(body: bytes, content_type: str, inputs: list[TensorSpec], batching: bool) -> Decoded:
    """``curl -F data=@kitten.jpg``: each ``data`` (or ``body``) field one instance, as TorchServe's handlers
    read them; several fields are several instances."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts = [
        part
        for part in (message.iter_parts() if message.is_multipart() else ())
        if part.get_param("name", header="content-disposition") in _WRAPPERS
    ]
    if not parts:
        raise InvalidInput('multipart body: no "data" field; send the file as -F "data=@FILE"')
    decoded = []
    for part in parts:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        decoded.append(decode_body(data, part.get_content_type(), inputs, batching))
    return decoded[0] if len(decoded) == 1 else _stack(decoded, inputs, batching, "multipart body: fields")


def _names(inputs: list[TensorSpec]) -> str:
    return ", ".join(f"'{t.name}'" for t in inputs)


def _npy(body: bytes) -> np.ndarray[Any, Any]:
    """The array of an ``.npy`` file: its header read by numpy, its data a view of ``body`` (no pickles)."""
    stream = io.BytesIO(body)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(stream)
    except (ValueError, OSError, EOFError) as error:
        raise InvalidInput(f"request body is not a readable .npy array: {error}") from None
    if dtype.hasobject:
        raise InvalidInput("request body is an .npy array of Python objects (a pickle): send numbers")
    try:
        array: np.ndarray[Any, Any] = np.frombuffer(
            body, dtype=dtype, offset=stream.tell(), count=int(np.prod(shape))
        )
    except ValueError as error:
        raise InvalidInput(f"request body is not a whole .npy array (truncated?): {error}") from None
    return array.reshape(shape, order="F" if fortran else "C")


def _array(value: Any, spec: TensorSpec | None, what: str) -> np.ndarray[Any, Any]:
    dtype = by_name(spec.datatype).numpy if spec is not None and spec.datatype != "BYTES" else None
    try:
        array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as error:
        raise InvalidInput(
            f"{what} is not a rectangular array of numbers ({error}); every row must have the same length"
        ) from None
    if array.dtype == object:
        raise InvalidInput(f"{what} is not a rectangular array of numbers: rows of different lengths")
    return array


def _one_input(array: np.ndarray[Any, Any], inputs: list[TensorSpec], batching: bool, what: str) -> Decoded:
    if len(inputs) != 1:
        raise InvalidInput(
            f"{what} fills one input, but the model has {len(inputs)} ({_names(inputs)}): send a JSON object "
            "with one key per input"
        )
    spec = inputs[0]
    tensor, single = _fit(array, spec, batching, what)
    return Decoded({spec.name: tensor}, single)


def _fit(
    array: np.ndarray[Any, Any], spec: TensorSpec, batching: bool, what: str
) -> tuple[np.ndarray[Any, Any], bool]:
    """``array`` as the input ``spec``: one instance (rank one less than the input's, batch added) or
    several (the input's rank); the data plane checks the dimensions and the datatype."""
    if spec.datatype != "BYTES":
        array = array.astype(by_name(spec.datatype).numpy, copy=False)
    rank = len(spec.shape)
    if batching and array.ndim == rank - 1:
        return array[np.newaxis], True
    if array.ndim == rank:
        return array, not batching
    expected = (
        f"rank {rank - 1} (one instance) or {rank} (a list of instances)" if batching else f"rank {rank}"
    )
    raise InvalidInput(
        f"{what} has shape {list(array.shape)}, but input '{spec.name}' has shape {list(spec.shape)}: "
        f"send an array of {expected}"
    )


def _named(data: dict[str, Any], inputs: list[TensorSpec], batching: bool) -> Decoded:
    known = {t.name: t for t in inputs}
    unknown = sorted(set(data) - set(known))
    missing = sorted(set(known) - set(data))
    if unknown or missing:
        if len(inputs) == 1 and not missing:
            raise InvalidInput(
                f"JSON object keys {unknown} name no input of the model (its input is {_names(inputs)}); "
                'send {"data": ...}, a JSON array, or the input name as key'
            )
        raise InvalidInput(
            f"JSON object: the model's inputs are {_names(inputs)}; missing {missing}, unknown {unknown}"
        )
    tensors: Tensors = {}
    singles = set()
    for name, spec in known.items():
        tensor, single = _fit(_array(data[name], spec, f"input '{name}'"), spec, batching, f"input '{name}'")
        tensors[name] = tensor
        singles.add(single)
    if len(singles) != 1:
        raise InvalidInput(
            "JSON object: give every input as one instance, or every input as a list of instances"
        )
    return Decoded(tensors, singles.pop())


def _named_instances(data: list[dict[str, Any]], inputs: list[TensorSpec], batching: bool) -> Decoded:
    return _stack([_named(item, inputs, batching) for item in data], inputs, batching, "a list of instances")


def _stack(rows: list[Decoded], inputs: list[TensorSpec], batching: bool, what: str) -> Decoded:
    """Single instances as one request of their rows."""
    if not batching:
        raise InvalidInput(f"{what}: several instances need a batching model (max_batch_size > 0); send one")
    if any(not row.single for row in rows):
        raise InvalidInput(f"{what}: each instance must be one row per input, not a list")
    try:
        tensors = {t.name: np.concatenate([row.inputs[t.name] for row in rows]) for t in inputs}
    except ValueError as error:
        raise InvalidInput(
            f"{what}: the instances' shapes differ ({error}); give them all the same shape"
        ) from None
    return Decoded(tensors, single=False)
