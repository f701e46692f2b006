"""Keras models (``.keras``, ``.h5`` or a model object) -> ONNX through tf2onnx's Keras front end.

ONNX input names are the Keras input layers' names, output names the model's ``output_names``; the batch axis
stays dynamic (``None``). Keras and TensorFlow are imported only here and in the SavedModel converter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ExportFailed, InvalidOption, MissingInputSpec
from ..exported import Arrays, ExportedModel
from ..options import KerasOptions
from ..samples import generate
from ..tensor_specs import DYNAMIC, TensorSpec
from .keras_errors import unreadable_keras_file
from .tensorflow_env import import_tensorflow

__all__ = ["DEFAULT_TF_OPSET", "export_keras_model", "load_keras"]

DEFAULT_TF_OPSET = 17


def load_keras(path: Path, options: KerasOptions) -> ExportedModel:
    """Load a ``.keras``/``.h5`` file without compiling it and convert it."""
    import_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as error:
        raise unreadable_keras_file(path, error) from error
    return export_keras_model(model, inputs=options.inputs, opset=options.opset, source=str(path))


def _input_specs(model: Any, inputs: Sequence[TensorSpec], source: str) -> tuple[list[TensorSpec], bool]:
    """The specs to export with, and whether they are the model's own (its input layers).

    Given ``inputs`` for a model with input layers are not used here: the conversion checks them against the
    exported graph (:mod:`..signature_match`).
    """
    try:
        symbolic = list(model.inputs)
    except (AttributeError, ValueError):
        symbolic = []
    if symbolic:
        return [
            TensorSpec(
                name=str(tensor.name),
                dtype=str(np.dtype(tensor.dtype)),
                dims=tuple(DYNAMIC if d is None else int(d) for d in tensor.shape),
            )
            for tensor in symbolic
        ], True
    if not inputs:
        raise MissingInputSpec(
            f"{source}: the Keras model was never built, so it has no input shapes; give --input "
            "NAME:DTYPE:DIMS (e.g. features:float32:-1,12), or build it with keras.Input"
        )
    return list(inputs), False


def _as_list(outputs: Any) -> list[Any]:
    if isinstance(outputs, Mapping):
        return list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def export_keras_model(
    model: Any, *, inputs: Sequence[TensorSpec], opset: int | None, source: str
) -> ExportedModel:
    """Convert a Keras model object; ``inputs`` describe a model with no input layers, and are checked against
    the input layers of one that has them."""
    tf, tf2onnx = import_tensorflow()
    import keras

    specs, own_signature = _input_specs(model, inputs, source)
    names = [spec.name for spec in specs]

    def call(arrays: Mapping[str, npt.NDArray[np.generic]]) -> Any:
        ordered = [arrays[name] for name in names]
        return model(ordered[0] if len(ordered) == 1 else ordered, training=False)

    # Calling the model once builds it: tf2onnx and Keras' own exporter refuse a model that was never called.
    try:
        first = _as_list(call(generate(specs, batch=2, rng=np.random.default_rng(0), int_high=1)))
    except Exception as error:
        raise InvalidOption(
            f"{source}: the model failed on inputs shaped {', '.join(s.describe() for s in specs)} "
            f"({type(error).__name__}); check --input"
        ) from error
    output_names = [str(name) for name in getattr(model, "output_names", None) or []]
    if len(output_names) != len(first):
        output_names = ["output"] if len(first) == 1 else [f"output_{i}" for i in range(len(first))]
    signature = [
        tf.TensorSpec([None if d == DYNAMIC else d for d in s.dims], tf.as_dtype(s.dtype), name=s.name)
        for s in specs
    ]
    try:
        if not own_signature:
            # A model built by calling it has no input layers for tf2onnx's Keras front end to follow: trace a
            # function instead, returning a dict so that tf2onnx names the outputs after its keys.
            names_out = list(output_names)

            def traced(*tensors: Any) -> dict[str, Any]:
                outputs = _as_list(model(tensors[0] if len(tensors) == 1 else list(tensors), training=False))
                return dict(zip(names_out, outputs, strict=True))

            model_proto, _ = tf2onnx.convert.from_function(
                tf.function(traced), input_signature=signature, opset=opset or DEFAULT_TF_OPSET
            )
        else:
            model_proto, _ = tf2onnx.convert.from_keras(
                model, input_signature=signature, opset=opset or DEFAULT_TF_OPSET
            )
    except Exception as error:
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ExportFailed(
            f"{source}: tf2onnx could not convert the Keras model ({type(error).__name__}: {detail[:300]}); "
            "run with --verbose for the converter's output"
        ) from error
    graph_outputs = [output.name for output in model_proto.graph.output]
    if len(graph_outputs) == len(output_names):
        output_names = graph_outputs

    def run(arrays: Mapping[str, npt.NDArray[np.generic]]) -> Arrays:
        raw = call(arrays)
        # A model returning a dict names its outputs itself; a list is in output_names' order.
        named = raw.items() if isinstance(raw, Mapping) else zip(output_names, _as_list(raw), strict=True)
        return {str(name): np.asarray(keras.ops.convert_to_numpy(value)) for name, value in named}

    return ExportedModel(
        model=model_proto,
        run=run,
        framework="keras",
        framework_version=f"{keras.__version__} (tensorflow {tf.__version__})",
        converter="tf2onnx (keras)",
        converter_version=str(tf2onnx.__version__),
        carries_signature=own_signature,
    )
