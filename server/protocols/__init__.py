"""The wire: protocol adapters that decode a request, make one data-plane call and encode the answer.

``rest_api`` (Open Inference Protocol over HTTP, with ``rest_codec``), ``grpc_api`` / ``grpc_servicer`` (the
same over gRPC, with ``grpc_codec`` and the status mapping in ``grpc_status``), ``wire_tensors`` (the binary
tensor layout both share), ``management_api`` (TorchServe-style worker scaling and registration) and
``generated`` (protoc's code for ``proto/*.proto``). No inference logic lives here.
"""

__all__: list[str] = []
