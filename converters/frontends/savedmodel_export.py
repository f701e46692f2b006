"""TensorFlow SavedModel directories -> ONNX through tf2onnx, one serving signature at a time.

ONNX input and output names are the signature's keys (tf2onnx renames the graph tensors to them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import CorruptSource, ExportFailed, InvalidOption
from ..exported import Arrays, ExportedModel
from ..options import SavedModelOptions
from .keras_export import DEFAULT_TF_OPSET
from .tensorflow_env import import_tensorflow

__all__ = ["export_saved_model"]


def export_saved_model(path: Path, options: SavedModelOptions) -> ExportedModel:
    """Convert signature ``options.signature`` of the SavedModel at ``path``."""
    tf, tf2onnx = import_tensorflow()
    from tf2onnx import tf_loader

    try:
        loaded = tf.saved_model.load(str(path), tags=[options.tag])
    except Exception as error:
        raise CorruptSource(
            f"{path}: not a readable SavedModel ({type(error).__name__}); save it with tf.saved_model.save"
        ) from error
    signature = loaded.signatures.get(options.signature)
    if signature is None:
        known = ", ".join(sorted(loaded.signatures)) or "none"
        raise InvalidOption(
            f"{path}: has no signature '{options.signature}' (it has: {known}); save it with "
            "signatures={'serving_default': ...}"
        )
    try:
        graph_def, inputs, outputs, _tables, renames = tf_loader.from_saved_model(
            str(path),
            None,
            None,
            options.tag,
            [options.signature],
            None,
            False,
            return_initialized_tables=True,
            return_tensors_to_rename=True,
        )
        model_proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=inputs,
            output_names=outputs,
            tensors_to_rename=renames,
            opset=options.opset or DEFAULT_TF_OPSET,
        )
    except Exception as error:
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ExportFailed(
            f"{path}: tf2onnx could not convert signature '{options.signature}' ({type(error).__name__}: "
            f"{detail[:300]}); run with --verbose for the converter's output"
        ) from error

    def run(arrays: Mapping[str, npt.NDArray[np.generic]]) -> Arrays:
        results = signature(**{name: tf.constant(array) for name, array in arrays.items()})
        return {str(name): np.asarray(value.numpy()) for name, value in results.items()}

    return ExportedModel(
        model=model_proto,
        run=run,
        framework="tensorflow",
        framework_version=str(tf.__version__),
        converter="tf2onnx (saved model)",
        converter_version=str(tf2onnx.__version__),
        carries_signature=True,
    )
