"""The composition root: settings -> repository -> model manager -> data plane -> servers.

Everything is wired here and nowhere else. All listeners run in one asyncio event loop: uvicorn (REST) is
driven programmatically, and the gRPC server (``grpc.aio``) joins the same loop. Ports given as 0 bind
ephemeral ports; the ports actually bound are logged and written to the ready file once every listener is up
and the startup models are loaded. SIGTERM/SIGINT: readiness goes false, listeners stop accepting, in-flight
requests finish within the drain timeout, executors close, exit status 0. A signal while the startup models
load abandons the load at once (a file read still in progress is left to its daemon thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from .dataplane import DataPlane
from .executor import Executor
from .grpc_api import build_grpc_server
from .live_metrics import version_states
from .management_api import create_management_app
from .metrics import ServerMetrics
from .metrics_listener import MetricsListener
from .model_manager import ModelManager, VersionSpec
from .pooled_executor import PooledExecutor
from .repository import Repository
from .rest_api import create_rest_app
from .settings import ServerSettings
from .worker_process import prestart

__all__ = ["make_executor", "run", "serve"]

logger = logging.getLogger("modelport.server")


def make_executor(spec: VersionSpec, metrics: ServerMetrics | None = None) -> Executor:
    """The one factory of executors: every loaded model version runs behind what this returns.

    A dynamic batcher in front of worker processes (``dynamic_batching`` and ``workers`` in config.yaml);
    its batches, worker restarts and autoscaling go to ``metrics``.
    """
    version_metrics = metrics.for_version(spec.name, str(spec.version)) if metrics is not None else None
    return PooledExecutor.from_spec(spec, version_metrics)


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` owns SIGTERM/SIGINT for every listener."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP; without it
    # Nagle + delayed ACKs add ~40 ms to every response written in two parts (headers, body).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _start_metrics(
    metrics: ServerMetrics,
    manager: ModelManager,
    settings: ServerSettings,
    loop: asyncio.AbstractEventLoop,
    ports: dict[str, Any],
) -> MetricsListener:
    """The metrics port (into ``ports``), served from a thread of its own (see metrics_listener.py); queue
    depths and workers are read on ``loop`` when scraped."""
    metrics.watch(loop, lambda: version_states(manager))
    listener = MetricsListener(metrics.registry, host=settings.host, port=settings.metrics_port)
    ports["metrics_port"] = listener.start()
    return listener


def _write_ready_file(path: Path, ports: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(ports))
    partial.replace(path)  # atomic: a reader never sees half a file


async def _until_started(server: uvicorn.Server, task: asyncio.Task[Any]) -> None:
    """Wait until a uvicorn server listens; raise its error if it failed to start."""
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    if task.done():
        task.result()


async def _load_unless_stopped(manager: ModelManager, stopping: asyncio.Task[Any]) -> bool:
    """Load the startup models; a stop signal meanwhile abandons the load (whatever already started is
    stopped) so SIGTERM is honoured at once. Whether loading finished."""
    loading = asyncio.create_task(manager.start())
    await asyncio.wait([loading, stopping], return_when=asyncio.FIRST_COMPLETED)
    if loading.done():
        loading.result()
        return True
    logger.info("stop requested while models load: abandoning the load")
    loading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loading
    return False


async def serve(settings: ServerSettings) -> int:
    """Run the server until SIGTERM/SIGINT; returns the exit status."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    repository = Repository(settings.repository)
    metrics = ServerMetrics()
    manager = ModelManager(
        repository=repository,
        settings=settings,
        make_executor=functools.partial(make_executor, metrics=metrics),
        metrics=metrics,
    )
    dataplane = DataPlane(manager=manager, settings=settings, metrics=metrics)
    ports: dict[str, Any] = {"pid": os.getpid()}

    # REST
    http_socket = _bind(settings.host, settings.http_port)
    ports["http_port"] = http_socket.getsockname()[1]
    http = _UvicornServer(
        uvicorn.Config(
            create_rest_app(dataplane, settings),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # Nothing reads the client's address (the access log has none): no X-Forwarded-For middleware.
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.drain_timeout) or 1,
        )
    )
    http_task = asyncio.create_task(http.serve(sockets=[http_socket]))
    listeners: list[asyncio.Task[Any]] = [http_task]

    # gRPC (grpc.aio) in this loop; started now, it answers ServerReady false until the models are loaded.
    grpc_server = build_grpc_server(dataplane, settings)
    ports["grpc_port"] = await grpc_server.start()

    metrics_listener = _start_metrics(metrics, manager, settings, loop, ports)

    # Management API (TorchServe-shaped); settings refused a non-loopback host without a token.
    management_socket = _bind(settings.management_host, settings.management_port)
    ports["management_port"] = management_socket.getsockname()[1]
    management = _UvicornServer(
        uvicorn.Config(
            create_management_app(manager, token=settings.management_token),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
        )
    )
    management_task = asyncio.create_task(management.serve(sockets=[management_socket]))
    listeners.append(management_task)

    stopping = asyncio.create_task(stop.wait())
    poller: asyncio.Task[None] | None = None
    if await _load_unless_stopped(manager, stopping):
        await _until_started(http, http_task)
        await _until_started(management, management_task)
        if settings.model_control == "poll":
            poller = asyncio.create_task(manager.poll_forever(settings.poll_interval))
        dataplane.set_ready(True)
        await grpc_server.serving()
        if settings.ready_file is not None:
            _write_ready_file(settings.ready_file, ports)
        logger.info(
            "modelport ready in %.2f s: %s (repository %s, model control %s)",
            time.monotonic() - started,
            ", ".join(f"{k} {v}" for k, v in ports.items() if k != "pid"),
            settings.repository,
            settings.model_control,
        )
        await asyncio.wait([stopping, *listeners], return_when=asyncio.FIRST_COMPLETED)
    logger.info("shutting down: finishing in-flight requests (at most %.1f s)", settings.drain_timeout)
    drain_deadline = time.monotonic() + settings.drain_timeout
    dataplane.set_ready(False)
    await grpc_server.drain()
    if poller is not None:
        poller.cancel()
    http.should_exit = True
    management.should_exit = True
    await asyncio.gather(grpc_server.stop(settings.drain_timeout), *listeners, return_exceptions=True)
    # What the listeners left of the drain timeout: the whole shutdown stays within it.
    await manager.close(drain_timeout=max(0.0, drain_deadline - time.monotonic()))
    metrics_listener.stop()
    logger.info("stopped")
    return 0


def run(settings: ServerSettings) -> int:
    """Run :func:`serve` on uvloop when it is installed (plain asyncio otherwise).

    (uvloop runs I/O callbacks before the tasks scheduled in the same iteration; a worker's messages that
    arrive before their reader first runs wait in ``WorkerProcess``'s inbox, so either order is safe.)
    """
    # Workers start from a forkserver: launch it before any gRPC thread exists; it imports ONNX Runtime
    # while this process binds its listeners.
    prestart()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(settings))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(settings))
