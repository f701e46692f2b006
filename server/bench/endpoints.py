"""What ``modelport bench`` asks the server besides the load: metadata, statistics and one checked request.

Over the protocol being benchmarked, so a gRPC-only server is benchmarked over gRPC alone. Answers come back
in the REST JSON shape (gRPC messages through protobuf's JSON mapping), so one reader serves both. HTTP uses
the standard library: the command needs no HTTP client package.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from ..protocols.generated import grpc_service_pb2 as pb
from ..protocols.generated import grpc_service_pb2_grpc as pb_grpc
from .errors import BenchError, ServerUnreachable

__all__ = ["Endpoint", "GrpcEndpoint", "HttpEndpoint", "StatsTotals", "http_base"]

_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class StatsTotals:
    """The statistics extension's cumulative counters of one model (summed over the versions asked)."""

    success: int = 0
    fail: int = 0
    queue_ns: int = 0
    compute_input_ns: int = 0
    compute_infer_ns: int = 0
    compute_output_ns: int = 0

    def __sub__(self, other: StatsTotals) -> StatsTotals:
        return StatsTotals(
            *(getattr(self, f) - getattr(other, f) for f in self.__dataclass_fields__)  # field order
        )


def _totals(answer: Mapping[str, Any]) -> StatsTotals:
    sums = dict.fromkeys(StatsTotals.__dataclass_fields__, 0)
    for model in answer.get("model_stats", []):
        stats = model.get("inference_stats", {})
        sums["success"] += int(stats.get("success", {}).get("count", 0))
        sums["fail"] += int(stats.get("fail", {}).get("count", 0))
        for key in ("queue", "compute_input", "compute_infer", "compute_output"):
            sums[f"{key}_ns"] += int(stats.get(key, {}).get("ns", 0))
    return StatsTotals(**sums)


class Endpoint(Protocol):
    url: str

    def server_metadata(self) -> dict[str, Any]: ...
    def model_metadata(self, model: str, version: str) -> dict[str, Any]: ...
    def statistics(self, model: str, version: str) -> StatsTotals: ...
    def close(self) -> None: ...


def http_base(url: str) -> str:
    """``host:port`` or a full URL as ``http://host:port`` (no trailing slash)."""
    return (url if "://" in url else f"http://{url}").rstrip("/")


class HttpEndpoint:
    """The REST API of the server at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = http_base(url)

    def request(self, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """The JSON answer to GET (or POST ``body`` to) ``path``; :class:`BenchError` with the server's
        message on an error status, or saying the server cannot be reached."""
        call = urllib.request.Request(self.url + path, data=body, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(call, timeout=_TIMEOUT_S) as answer:
                raw = answer.read()
                if answer.headers.get("Inference-Header-Content-Length"):
                    raw = raw[: int(answer.headers["Inference-Header-Content-Length"])]
                return json.loads(raw or b"{}")
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):  # not JSON: the text as it came
                text = json.loads(text).get("error", text)
            raise BenchError(f"{call.get_method()} {self.url}{path}: HTTP {error.code}: {text}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ServerUnreachable(f"cannot reach the server at {self.url} over HTTP: {error}") from None

    def server_metadata(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.request("/v2")
        return answer

    def model_metadata(self, model: str, version: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.request(_model_path(model, version))
        return answer

    def statistics(self, model: str, version: str) -> StatsTotals:
        return _totals(self.request(_model_path(model, version) + "/stats"))

    def close(self) -> None:
        pass


def _model_path(model: str, version: str) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "")


def grpc_target(url: str) -> str:
    """``host:port`` from ``url`` with any scheme dropped."""
    return url.split("://", 1)[-1].rstrip("/")


class GrpcEndpoint:
    """The gRPC API of the server at ``url`` (``host:port``)."""

    def __init__(self, url: str) -> None:
        self.url = grpc_target(url)
        self._channel = grpc.insecure_channel(
            self.url, options=[("grpc.max_receive_message_length", 2**31 - 1)]
        )
        self.stub: Any = pb_grpc.GRPCInferenceServiceStub(self._channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped

    def call(self, method: Callable[..., Message], request: Message) -> dict[str, Any]:
        """Call ``method`` (a stub method) and return its answer in the REST JSON shape; :class:`BenchError`
        naming the status and the server's message on an error."""
        try:
            answer = method(request, timeout=_TIMEOUT_S)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()  # a grpc.Call too
            if code == grpc.StatusCode.UNAVAILABLE:
                raise ServerUnreachable(
                    f"cannot reach the server at {self.url} over gRPC: {details}"
                ) from None
            name = type(request).__name__.removesuffix("Request")
            raise BenchError(f"{name} at {self.url}: {code.name}: {details}") from None
        return json_format.MessageToDict(answer, preserving_proto_field_name=True)

    def server_metadata(self) -> dict[str, Any]:
        return self.call(self.stub.ServerMetadata, pb.ServerMetadataRequest())

    def model_metadata(self, model: str, version: str) -> dict[str, Any]:
        return self.call(self.stub.ModelMetadata, pb.ModelMetadataRequest(name=model, version=version))

    def statistics(self, model: str, version: str) -> StatsTotals:
        return _totals(
            self.call(self.stub.ModelStatistics, pb.ModelStatisticsRequest(name=model, version=version))
        )

    def close(self) -> None:
        self._channel.close()
