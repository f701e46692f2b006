"""The quantized mobile export: INT8/FP16 ONNX and ONNX Runtime's ``.ort`` format, gated by an accuracy check.

``api`` (``quantize_model``), ``cli`` (``modelport quantize`` and ``export-mobile``), ``data`` (calibration
and validation samples), ``int8`` (ONNX Runtime's quantizer), ``gate`` and ``measure`` (accuracy and speed
against FP32), ``report``, ``mobile`` and ``minify`` (the ``.ort`` file and its reduced-operator config),
``cpu`` (the INT8 instructions this CPU has), ``repository`` (writing the results beside the model).
"""

__all__: list[str] = []
