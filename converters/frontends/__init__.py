"""One exporter per framework: each turns its framework's artefact into an ONNX model.

``torch_export`` (torch.export programs and TorchScript, with ``torch_errors``), ``keras_export`` (Keras
``.keras``/``.h5``), ``savedmodel_export`` (TensorFlow SavedModels), ``factory`` (``package.module:factory``),
``tensorflow_env`` (TensorFlow's import-time settings). torch and TensorFlow are imported only here.
"""

from .factory import export_factory, factory_file
from .keras_export import load_keras
from .savedmodel_export import export_saved_model
from .torch_export import export_program, export_torchscript

# What the conversion (``converters.api``) calls: one entry point per source kind. Importing them is cheap;
# each imports its framework only when called.
__all__ = [
    "export_factory",
    "export_program",
    "export_saved_model",
    "export_torchscript",
    "factory_file",
    "load_keras",
]
