"""TensorFlow's element types (``tensorflow.DataType`` of types.proto) for the Open Inference Protocol's,
and the signature a model version shows TF Serving's clients: one ``serving_default`` predict signature
whose inputs and outputs are the model's, with -1 for a dynamic dimension, as TF Serving writes it."""

from __future__ import annotations

from typing import Any

from ..dataplane import ModelMetadata
from ..errors import InvalidInput
from ..inference import TensorSpec

__all__ = [
    "DEFAULT_SIGNATURE",
    "PREDICT_METHOD",
    "TF_DATATYPES",
    "check_signature",
    "signature_def_map",
]

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

# OIP datatype -> (TensorFlow DataType name, its number in tensorflow/core/framework/types.proto).
TF_DATATYPES: dict[str, tuple[str, int]] = {
    "FP32": ("DT_FLOAT", 1),
    "FP64": ("DT_DOUBLE", 2),
    "INT32": ("DT_INT32", 3),
    "UINT8": ("DT_UINT8", 4),
    "INT16": ("DT_INT16", 5),
    "INT8": ("DT_INT8", 6),
    "BYTES": ("DT_STRING", 7),
    "INT64": ("DT_INT64", 9),
    "BOOL": ("DT_BOOL", 10),
    "UINT16": ("DT_UINT16", 17),
    "FP16": ("DT_HALF", 19),
    "UINT32": ("DT_UINT32", 22),
    "UINT64": ("DT_UINT64", 23),
}


def check_signature(name: str, model: str) -> None:
    """:class:`InvalidInput` unless ``name`` is this server's one signature (or empty: the default)."""
    if name not in ("", DEFAULT_SIGNATURE):
        shown = name if len(name) <= 64 else name[:61] + "..."
        raise InvalidInput(
            f"Serving signature name: {shown!r} not found in signature def of model '{model}'; it has one "
            f"signature, '{DEFAULT_SIGNATURE}' (or leave signature_name out)"
        )


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    return {
        "dtype": TF_DATATYPES[spec.datatype][0],
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape], "unknown_rank": False},
        "name": spec.name,
    }


def signature_def_map(metadata: ModelMetadata) -> dict[str, Any]:
    """``SignatureDefMap`` in protobuf's JSON form (int64 sizes as strings), as TF Serving's metadata
    call returns it."""
    return {
        "signature_def": {
            DEFAULT_SIGNATURE: {
                "inputs": {t.name: _tensor_info(t) for t in metadata.inputs},
                "outputs": {t.name: _tensor_info(t) for t in metadata.outputs},
                "method_name": PREDICT_METHOD,
            }
        }
    }
