"""Framework -> ONNX converters, numeric verification, and the quantized mobile export.

torch and TensorFlow are imported lazily, only by the converter that needs them. This package never imports
``modelport.server``.
"""

__all__: list[str] = []
