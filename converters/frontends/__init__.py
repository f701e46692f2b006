"""One exporter per framework: each turns its framework's artefact into an ONNX model.

``torch_export`` (torch.export programs and TorchScript, with ``torch_errors``), ``keras_export`` (Keras
``.keras``/``.h5``), ``savedmodel_export`` (TensorFlow SavedModels), ``factory`` (``package.module:factory``),
``tensorflow_env`` (TensorFlow's import-time settings). torch and TensorFlow are imported only here.
"""

__all__: list[str] = []
