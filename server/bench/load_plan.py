"""What every step of a sweep sends, and where: the request's tensors, its encoding and the infer URL.

``check`` sends the request once with a real client (urllib over REST, the gRPC stub) before any load, so
a request the server refuses (data not matching the signature, a wrong version) is an error with the
server's message instead of a run of failed requests; h2load cannot see gRPC errors at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from .endpoints import Endpoint, GrpcEndpoint, HttpEndpoint
from .errors import BenchError, ServerUnreachable
from .request_bodies import RestBody, grpc_message, grpc_request, rest_body
from .signature import Signature

__all__ = ["LoadPlan", "make_plan"]


@dataclass(frozen=True)
class LoadPlan:
    """One request of ``model``/``version`` to the server at ``url`` over ``protocol``."""

    endpoint: Endpoint
    protocol: str
    model: str
    version: str
    tensors: Mapping[str, npt.NDArray[Any]]
    outputs: tuple[str, ...]
    binary: bool

    @property
    def encoding(self) -> str:
        return "raw" if self.protocol == "grpc" else "binary" if self.binary else "json"

    @property
    def infer_url(self) -> str:
        """The URL the native generator posts to: REST's infer path, or the gRPC method's HTTP/2 path."""
        if self.protocol == "grpc":
            return f"http://{self.endpoint.url}/inference.GRPCInferenceService/ModelInfer"
        version = f"/versions/{self.version}" if self.version else ""
        return f"{self.endpoint.url}/v2/models/{self.model}{version}/infer"

    def rest_body(self) -> RestBody:
        return rest_body(self.tensors, self.outputs, binary=self.binary)

    def grpc_message(self) -> bytes:
        return grpc_message(grpc_request(self.model, self.version, self.tensors, self.outputs))

    def check(self) -> None:
        """Send the request once; :class:`BenchError` with the server's answer if it is refused."""
        try:
            if isinstance(self.endpoint, GrpcEndpoint):
                request = grpc_request(self.model, self.version, self.tensors, self.outputs)
                self.endpoint.call(self.endpoint.stub.ModelInfer, request)
            elif isinstance(self.endpoint, HttpEndpoint):
                body = self.rest_body()
                path = self.infer_url.removeprefix(self.endpoint.url)
                self.endpoint.request(path, body.body, body.headers)
        except ServerUnreachable:
            raise
        except BenchError as error:
            raise BenchError(
                f"the server refused the benchmark request, so no load was run: {error.message}"
            ) from None


def make_plan(
    endpoint: Endpoint,
    signature: Signature,
    tensors: Mapping[str, npt.NDArray[Any]],
    version: str,
    *,
    binary: bool,
) -> LoadPlan:
    protocol = "grpc" if isinstance(endpoint, GrpcEndpoint) else "http"
    return LoadPlan(endpoint, protocol, signature.model, version, tensors, signature.outputs, binary)
