"""The wire: protocol adapters that decode a request, make one data-plane call and encode the answer.

``rest_api`` (Open Inference Protocol over HTTP, with ``rest_codec``), ``grpc_api`` / ``grpc_servicer`` (the
same over gRPC, with ``grpc_codec`` and the status mapping in ``grpc_status``), ``wire_tensors`` (the binary
tensor layout both share), ``management_api`` (TorchServe-style worker scaling and registration) and
``generated`` (protoc's code for ``proto/*.proto``). No inference logic lives here.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .grpc_api import GrpcServer, build_grpc_server
    from .http_limits import ConnectionBudget, HttpLimits, descriptor_budget
    from .http_protocol import limited_protocol
    from .management_api import create_management_app
    from .rest_api import create_rest_app

# What the layers above import from this package; each is imported from its module on first use.
__all__ = [
    "ConnectionBudget",
    "GrpcServer",
    "HttpLimits",
    "build_grpc_server",
    "create_management_app",
    "create_rest_app",
    "descriptor_budget",
    "limited_protocol",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "ConnectionBudget": "http_limits",
        "GrpcServer": "grpc_api",
        "HttpLimits": "http_limits",
        "build_grpc_server": "grpc_api",
        "create_management_app": "management_api",
        "create_rest_app": "rest_api",
        "descriptor_budget": "http_limits",
        "limited_protocol": "http_protocol",
    },
)
