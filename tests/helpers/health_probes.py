"""Probe a server's readiness (REST ``/v2/health/ready`` and, if asked, gRPC ``ServerReady``) while a request
runs, and check that the probes were answered quickly: the tests of "the server keeps answering while a
maximum-size request is decoded" (issue 12, item 3)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

__all__ = ["MIN_PROBES", "Probed", "assert_answered_quickly", "probe_while"]

MIN_PROBES = 5
_PROBE_PAUSE_S = 0.01
_PROBE_TIMEOUT_S = 10.0


@dataclass
class Probed:
    """Each probe's latency in seconds, by probe ("rest", "grpc"), and how long the request took."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    took: float = 0.0


def probe_while(
    send: Callable[[], None], *, http_url: str, grpc_url: str | None = None, max_sends: int = 8
) -> Probed:
    """Run ``send()`` in a thread and probe readiness until it returns (each probe must answer ready).

    A request that answers before :data:`MIN_PROBES` probes of each kind were made is sent again, at most
    ``max_sends`` times in all; ``took`` is the time of all sends together.
    """
    probed = Probed(latencies={"rest": [], **({"grpc": []} if grpc_url else {})})
    done = threading.Event()
    enough = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        started = time.perf_counter()
        try:
            for _ in range(max_sends):
                send()
                if enough.is_set():
                    break
        except BaseException as error:  # re-raised in the test's thread
            failures.append(error)
        finally:
            probed.took = time.perf_counter() - started
            done.set()

    with contextlib.ExitStack() as stack:
        http = stack.enter_context(httpx.Client(base_url=f"http://{http_url}"))
        probes: dict[str, Callable[[], bool]] = {
            "rest": lambda: http.get("/v2/health/ready", timeout=_PROBE_TIMEOUT_S).status_code == 200
        }
        if grpc_url:
            channel = stack.enter_context(grpc.insecure_channel(grpc_url))
            stub: Any = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped
            probes["grpc"] = lambda: bool(
                stub.ServerReady(pb.ServerReadyRequest(), timeout=_PROBE_TIMEOUT_S).ready
            )
        for probe in probes.values():  # connections are open before the big request starts
            assert probe()
        sender = threading.Thread(target=run)
        sender.start()
        time.sleep(0.05)  # the request is on its way
        while not done.is_set():
            for name, probe in probes.items():
                started = time.perf_counter()
                assert probe(), f"{name} probe: not ready"
                probed.latencies[name].append(time.perf_counter() - started)
            if min(map(len, probed.latencies.values())) >= MIN_PROBES:
                enough.set()
            time.sleep(_PROBE_PAUSE_S)
        sender.join()
    if failures:
        raise failures[0]
    return probed


def assert_answered_quickly(probed: Probed, *, median_s: float = 0.1, worst_s: float = 0.5) -> None:
    """At least :data:`MIN_PROBES` probes of each kind were made; their median is under ``median_s`` (the
    bound) and the worst under ``worst_s`` (one probe may meet a descheduled process on a shared machine)."""
    for name, latencies in probed.latencies.items():
        made = f"only {len(latencies)} {name} probes while the request took {probed.took:.2f} s"
        assert len(latencies) >= MIN_PROBES, made
        ordered = sorted(latencies)
        assert ordered[len(ordered) // 2] < median_s, f"{name} health probe latencies {ordered}"
        assert ordered[-1] < worst_s, f"{name} health probe latencies {ordered}"
