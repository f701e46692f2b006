"""modelport's inference server: ONNX Runtime behind the Open Inference Protocol (REST and gRPC).

The server never imports torch or TensorFlow. Start reading at ``app.py`` (the composition root) and
follow one request: ``rest_api``/``grpc_api`` -> ``dataplane`` -> executor -> ONNX Runtime.
"""

__all__: list[str] = []
