"""The gRPC adapter in process: its error table, health reporting and stream concurrency.

What is under test is the adapter (grpc_api.py), so the data plane behind it is a small stand-in whose calls
raise the error each case needs; the server, the channel and the clients are real grpc.aio ones.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelport.server.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    ServerUnavailable,
    Unsupported,
)
from modelport.server.inference import InferRequest, InferResponse
from modelport.server.observability.tracing import Tracing
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc
from modelport.server.protocols.grpc_api import SERVICE_NAME, build_grpc_server
from modelport.server.settings import ServerSettings

if TYPE_CHECKING:
    from modelport.server.dataplane import DataPlane


class StandInDataPlane:
    """Raises ``error`` from inference and model metadata; ready when told."""

    def __init__(self, error: BaseException | None = None, *, ready: bool = True) -> None:
        self.error = error
        self.is_ready = ready
        self.tracing = Tracing(endpoint=None)

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.is_ready

    def model_metadata(self, name: str, version: str = "") -> Any:
        assert self.error is not None
        raise self.error

    def check_servable(self, name: str, version: str = "") -> None:
        """Every model is servable here: the error comes from inference."""

    async def infer(self, request: Any, **_: Any) -> Any:
        assert self.error is not None
        raise self.error

    def reject(self, error: Any, **_: Any) -> Any:
        return error


Scenario = Callable[[Any, grpc.aio.Channel], Awaitable[None]]


def serve(dataplane: StandInDataPlane, scenario: Scenario) -> None:
    """Run ``scenario(server, channel)`` against a real grpc.aio server on an ephemeral loopback port."""

    async def main() -> None:
        settings = ServerSettings(host="127.0.0.1", grpc_port=0)
        server = build_grpc_server(cast("DataPlane", dataplane), settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                await scenario(server, channel)
        finally:
            await server.stop(0)

    asyncio.run(main())


def _infer_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    return request


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("tensor 'x': bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("Request for unknown model: 'm' is not found"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotReady("model 'm' has no ready version"), grpc.StatusCode.UNAVAILABLE),
        (QueueFull("model 'm': the queue is full (1024 requests)"), grpc.StatusCode.UNAVAILABLE),
        (ServerUnavailable("shutting down"), grpc.StatusCode.UNAVAILABLE),
        (DeadlineExceeded("model 'm': timed out in the queue"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (PayloadTooLarge("tensor 'x' exceeds 8 bytes"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (Unsupported("not here"), grpc.StatusCode.UNIMPLEMENTED),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_each_error_maps_to_its_status(error: Exception, code: grpc.StatusCode) -> None:
    async def scenario(_: Any, channel: grpc.aio.Channel) -> None:
        stub: Any = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # untyped stubs
        for call in (
            stub.ModelInfer(_infer_request()),
            stub.ModelMetadata(pb.ModelMetadataRequest(name="m")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == code
            assert caught.value.details() == str(error)

    serve(StandInDataPlane(error), scenario)


def test_unexpected_errors_are_internal_with_a_request_id_and_a_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(_: Any, channel: grpc.aio.Channel) -> None:
        stub: Any = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # untyped stubs
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(_infer_request())
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        details = caught.value.details() or ""
        match = re.fullmatch(
            r"internal error; the server log has the details \(request id: ([0-9a-f]{32})\)", details
        )
        assert match, details
        assert "secret detail" not in details
        logged = [r for r in caplog.records if match.group(1) in r.getMessage()]
        assert logged and logged[0].exc_info is not None
        assert "secret detail" in str(logged[0].exc_info[1])
        # The stream reports the same in band, and the server keeps answering.
        responses = [r async for r in stub.ModelStreamInfer(iter([_infer_request()]))]
        assert len(responses) == 1 and responses[0].error_message.startswith("internal error; the server log")
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live

    with caplog.at_level(logging.ERROR, logger="modelport.server.protocols.grpc_status"):
        serve(StandInDataPlane(RuntimeError("secret detail")), scenario)


def test_health_follows_readiness_and_drain() -> None:
    dataplane = StandInDataPlane(ready=False)

    async def scenario(server: Any, channel: grpc.aio.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel)

        async def status(service: str) -> int:
            response = await health.Check(health_pb2.HealthCheckRequest(service=service))
            return int(response.status)

        serving, not_serving = (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        assert await status("") == not_serving  # starting: models not loaded yet
        assert await status(SERVICE_NAME) == not_serving
        dataplane.is_ready = True
        assert await status("") == not_serving  # until the server says startup is done
        await server.serving()
        assert await status("") == serving
        assert await status(SERVICE_NAME) == serving
        await server.drain()
        assert await status(SERVICE_NAME) == not_serving
        assert await status("") == not_serving

    serve(dataplane, scenario)


class GatedDataPlane(StandInDataPlane):
    """Inference returns only once ``gate`` requests are in flight together, the latest first."""

    def __init__(self, gate: int) -> None:
        super().__init__()
        self.gate = gate
        self.arrived = 0
        self.all_in = asyncio.Event()

    async def infer(self, request: Any, **_: Any) -> Any:
        assert isinstance(request, InferRequest)
        self.arrived += 1
        if self.arrived == self.gate:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 10)
        await asyncio.sleep(0.01 * (self.gate - int(request.id)))  # later requests finish sooner
        return InferResponse(request.model_name, "1", dict(request.inputs), id=request.id)


def test_stream_runs_requests_concurrently_and_answers_in_request_order() -> None:
    gate = 5

    async def scenario(_: Any, channel: grpc.aio.Channel) -> None:
        stub: Any = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # untyped stubs
        requests = []
        for index in range(gate):
            request = _infer_request()
            request.id = str(index)
            requests.append(request)
        answers = [a async for a in stub.ModelStreamInfer(iter(requests))]
        assert [a.error_message for a in answers] == [
            ""
        ] * gate  # no request timed out waiting for the others
        assert [a.infer_response.id for a in answers] == [str(i) for i in range(gate)]

    serve(GatedDataPlane(gate), scenario)
