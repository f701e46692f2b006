"""The composition root: settings -> repository -> model manager -> data plane -> servers.

Everything is wired here and nowhere else. All listeners run in one asyncio event loop: uvicorn (REST,
management, metrics) is driven programmatically under the connection limits of ``protocols/http_limits``
(one connection budget shared by the three, sized with gRPC's cap to the open-file limit), and the gRPC
server (``grpc.aio``) joins the same loop. Ports given as 0 bind
ephemeral ports; the ports actually bound are logged and written to the ready file once every listener is up
and the startup models are loaded. SIGTERM/SIGINT: readiness goes false, listeners stop accepting, in-flight
requests finish within the drain timeout, executors close, exit status 0. A signal while the startup models
load abandons the load at once (a file read still in progress is left to its daemon thread). A failed
startup closes whatever it had started (listeners, executors and their worker processes) the same way, then
raises its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from .batching.pooled_executor import PooledExecutor
from .cgroup_limits import describe_limits
from .console.site import ConsoleSite
from .dataplane import DataPlane
from .executor import Executor, VersionSpec
from .next_steps import next_steps_text, print_next_steps, wanted
from .observability.live_metrics import VersionState, WorkerState
from .observability.metrics import ServerMetrics
from .observability.metrics_listener import MetricsApp
from .protocols.grpc_api import GrpcServer, build_grpc_server
from .protocols.http_limits import ConnectionBudget, HttpLimits, descriptor_budget
from .protocols.http_protocol import limited_protocol
from .protocols.large_requests import map_large_allocations
from .protocols.management_api import create_management_app
from .protocols.rest_api import create_rest_app
from .protocols.rest_fast_infer import FastInfer
from .protocols.torchserve_api import create_torchserve_app
from .protocols.torchserve_defaults import DefaultVersions
from .repository.explicit import ExplicitControl
from .repository.folders import Repository
from .repository.model_manager import ModelManager
from .settings import InstanceKind, ServerSettings
from .workers.worker_process import prestart

__all__ = ["make_executor", "run", "serve", "version_states"]

logger = logging.getLogger(__name__)


def make_executor(
    spec: VersionSpec, metrics: ServerMetrics | None = None, *, instance_kind: InstanceKind = "thread"
) -> Executor:
    """The one factory of executors: every loaded model version runs behind what this returns.

    A dynamic batcher in front of thread or process instances (``dynamic_batching``, ``workers`` and
    ``instances`` in config.yaml; ``instance_kind`` where it names none); its batches, worker restarts and
    autoscaling go to ``metrics``.
    """
    version_metrics = metrics.for_version(spec.name, str(spec.version)) if metrics is not None else None
    return PooledExecutor.from_spec(spec, version_metrics, default_kind=instance_kind)


def version_states(manager: ModelManager) -> list[VersionState]:
    """The state of every serving version (queue depth, workers), as its executor reports it. Call on the
    event loop (it reads loop-owned objects)."""
    states = []
    for loaded in manager.serving():
        status = loaded.executor.status()
        workers = [WorkerState(str(w.id), w.pid, w.state.lower()) for w in status.workers]
        states.append(VersionState(loaded.spec.name, str(loaded.spec.version), status.queue_depth, workers))
    return states


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` owns SIGTERM/SIGINT for every listener."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port``: an IPv4 address (0.0.0.0 included) binds IPv4 only; an
    IPv6 one (``::``, also written ``[::]``) binds IPv6 and, on an OS that maps them, IPv4 as well."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP; without it
    # Nagle + delayed ACKs add ~40 ms to every response written in two parts (headers, body).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:  # dual stack where the OS allows it (Linux's default, not every OS's)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _stack(host: str) -> str:
    """What binding ``host`` listens on, in words, for the ready log line."""
    host = host.strip("[]")
    if ":" not in host:
        return "IPv4"
    if host == "::":
        return "IPv6 + IPv4 (dual stack)" if socket.has_dualstack_ipv6() else "IPv6 only"
    return "IPv6"


def _connection_limits(settings: ServerSettings) -> tuple[ConnectionBudget, int]:
    """The HTTP listeners' shared budget and the gRPC connection cap, scaled to the open-file limit."""
    caps = descriptor_budget({"http": settings.max_connections, "grpc": settings.grpc_max_connections})
    if caps["http"] < settings.max_connections or caps["grpc"] < settings.grpc_max_connections:
        logger.warning(
            "open-file limit: at most %d HTTP and %d gRPC connections (asked for %d and %d)",
            caps["http"],
            caps["grpc"],
            settings.max_connections,
            settings.grpc_max_connections,
        )
    limits = HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        max_url_bytes=settings.max_url_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        body_min_rate=settings.body_min_rate,
        keep_alive_timeout=settings.keep_alive_timeout,
    )
    return ConnectionBudget(caps["http"], limits), caps["grpc"]


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


def _stop_requested() -> asyncio.Task[Any]:
    """A task that ends at the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return asyncio.create_task(stop.wait())


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


class _Listeners:
    """The REST, management, metrics and gRPC listeners started so far. :meth:`stop` stops all but metrics
    together, so the requests in flight on every port share one drain timeout; :meth:`stop_metrics` comes
    last, so the drain can be watched. The HTTP listeners share one :class:`ConnectionBudget`."""

    def __init__(self, drain_timeout: float, budget: ConnectionBudget) -> None:
        self._drain_timeout = drain_timeout
        self._budget = budget
        self._uvicorn: list[tuple[_UvicornServer, asyncio.Task[Any]]] = []
        self._metrics: list[tuple[_UvicornServer, asyncio.Task[Any]]] = []
        self._sockets: list[socket.socket] = []
        self._grpc: GrpcServer | None = None

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """The uvicorn servers' tasks (one that ends by itself has failed)."""
        return [task for _, task in self._uvicorn + self._metrics]

    def start_uvicorn(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        metrics: bool = False,
        fast_infer: FastInfer | None = None,
        **options: Any,
    ) -> int:
        """Bind ``host:port`` and serve ``app`` there from a task (``options``: uvicorn's) under the
        connection limits; the bound port. ``metrics``: the metrics listener (see :meth:`stop_metrics`);
        ``fast_infer``: the REST listener's infer requests are answered past ``app``."""
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            http=limited_protocol(self._budget, fast_infer=fast_infer),
            ws="none",
            **options,
        )
        server = _UvicornServer(config)
        sock = _bind(host, port)
        self._sockets.append(sock)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        (self._metrics if metrics else self._uvicorn).append((server, task))
        return int(sock.getsockname()[1])

    async def start_grpc(self, server: GrpcServer) -> int:
        """Start ``server`` (health NOT_SERVING until :meth:`serving`); its port."""
        self._grpc = server
        return await server.start()

    async def started(self) -> None:
        """Wait until every uvicorn server listens; raise the error of one that failed to start."""
        for server, task in self._uvicorn + self._metrics:
            await _until_started(server, task)

    async def serving(self) -> None:
        """Startup is done: gRPC health reports SERVING."""
        if self._grpc is not None:
            await self._grpc.serving()

    async def drain(self) -> None:
        """gRPC health reports NOT_SERVING from now on; requests are still answered."""
        if self._grpc is not None:
            await self._grpc.drain()

    async def stop(self) -> None:
        """Stop accepting; requests in flight finish within the drain timeout; the sockets close."""
        for server, _ in self._uvicorn:
            server.should_exit = True
        stopping: list[Awaitable[Any]] = [task for _, task in self._uvicorn]
        if self._grpc is not None:
            stopping.append(self._grpc.stop(self._drain_timeout))
        await asyncio.gather(*stopping, return_exceptions=True)

    async def stop_metrics(self) -> None:
        """Last of all: the metrics listener stops, the sockets close, the deadline sweeps end."""
        for server, _ in self._metrics:
            server.should_exit = True
        await asyncio.gather(*(task for _, task in self._metrics), return_exceptions=True)
        for sock in self._sockets:  # uvicorn closed them, unless it failed to start
            sock.close()
        self._budget.close()


@dataclasses.dataclass
class _Server:
    """What :func:`serve` wires together, with the steps that start it and the steps that close it."""

    settings: ServerSettings
    metrics: ServerMetrics
    manager: ModelManager
    dataplane: DataPlane
    explicit: ExplicitControl
    listeners: _Listeners
    metrics_app: MetricsApp
    grpc_max_connections: int
    console: ConsoleSite
    drain_deadline: float = 0.0

    @classmethod
    def compose(cls, settings: ServerSettings) -> _Server:
        """settings -> repository -> model manager -> data plane (and explicit control); nothing is bound or
        started yet."""
        metrics = ServerMetrics()
        manager = ModelManager(
            repository=Repository(settings.repository),
            settings=settings,
            make_executor=functools.partial(
                make_executor, metrics=metrics, instance_kind=settings.instance_kind
            ),
            metrics=metrics,
        )
        budget, grpc_max_connections = _connection_limits(settings)
        return cls(
            settings=settings,
            metrics=metrics,
            manager=manager,
            dataplane=DataPlane(manager=manager, settings=settings, metrics=metrics),
            explicit=ExplicitControl(manager=manager, settings=settings),
            listeners=_Listeners(settings.drain_timeout, budget),
            metrics_app=MetricsApp(metrics.registry),
            grpc_max_connections=grpc_max_connections,
            console=ConsoleSite.build(metrics=metrics, manager=manager, settings=settings),
        )

    async def open_listeners(self) -> dict[str, Any]:
        """Bind and start every listener; the ports they got (and this process's pid) for the ready file."""
        settings, ports = self.settings, {"pid": os.getpid()}
        defaults = DefaultVersions(self.manager)  # TorchServe's set-default, shared by its two adapters
        rest_app = create_rest_app(self.dataplane, settings, explicit=self.explicit, defaults=defaults)
        self.console.install(rest_app)
        ports["http_port"] = self.listeners.start_uvicorn(
            rest_app,
            settings.host,
            settings.http_port,
            fast_infer=FastInfer(self.dataplane, limit=settings.http_max_body_bytes),
            # Nothing reads the client's address (the access log has none): no X-Forwarded-For middleware.
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.drain_timeout) or 1,
        )
        # gRPC (grpc.aio) in this loop; started now, it answers ServerReady false until the models are loaded.
        ports["grpc_port"] = await self.listeners.start_grpc(
            build_grpc_server(
                self.dataplane,
                settings,
                explicit=self.explicit,
                max_connections=self.grpc_max_connections,
            )
        )
        # Rendered on a thread of its own (see metrics_listener.py); queue depths and workers are read on this
        # loop when scraped.
        self.metrics.watch(asyncio.get_running_loop(), lambda: version_states(self.manager))
        ports["metrics_port"] = self.listeners.start_uvicorn(
            self.metrics_app, settings.metrics_host or settings.host, settings.metrics_port, metrics=True
        )
        # Management API (TorchServe-shaped); settings refused a non-loopback host without a token.
        ports["management_port"] = self.listeners.start_uvicorn(
            create_management_app(
                self.manager,
                token=settings.management_token,
                console_port=ports["http_port"],
                defaults=defaults,
            ),
            settings.management_host,
            settings.management_port,
        )
        self.console.management_port = ports["management_port"]
        if settings.torchserve_port is not None:
            ports["torchserve_port"] = self.listeners.start_uvicorn(
                create_torchserve_app(self.dataplane, defaults, limit=settings.http_max_body_bytes),
                settings.host,
                settings.torchserve_port,
            )
        return ports

    async def announce_ready(self, ports: dict[str, Any], started: float) -> None:
        """Readiness true on every protocol, the ready file written, one log line."""
        self.dataplane.set_ready(True)
        await self.listeners.serving()
        if self.settings.ready_file is not None:
            _write_ready_file(self.settings.ready_file, ports)
        settings = self.settings
        metrics_host = settings.metrics_host or settings.host
        logger.info(
            "modelport ready in %.2f s: %s; REST and gRPC on %s (%s), metrics on %s (%s), management on %s "
            "(%s) (repository %s, model control %s)",
            time.monotonic() - started,
            ", ".join(f"{k} {v}" for k, v in ports.items() if k != "pid"),
            settings.host,
            _stack(settings.host),
            metrics_host,
            _stack(metrics_host),
            settings.management_host,
            _stack(settings.management_host),
            settings.repository,
            settings.model_control,
        )
        if wanted(settings.next_steps):
            models = sorted({loaded.spec.name for loaded in self.manager.serving()})
            print_next_steps(
                next_steps_text(host=settings.host, metrics_host=metrics_host, ports=ports, models=models)
            )

    async def begin_shutdown(self, _type: Any, error: BaseException | None, _traceback: Any) -> None:
        """The first step out (after a stop signal, or with the ``error`` startup failed on): readiness goes
        false and the drain clock starts."""
        if error is None:
            drain_timeout = self.settings.drain_timeout
            logger.info("shutting down: finishing in-flight requests (at most %.1f s)", drain_timeout)
        else:
            logger.info("startup failed: closing what already started")
        self.drain_deadline = time.monotonic() + self.settings.drain_timeout
        self.dataplane.set_ready(False)
        await self.listeners.drain()

    async def close_models(self) -> None:
        """After the listeners: the executors and their worker processes, in what is left of the drain."""
        # What the listeners left of the drain timeout: the whole shutdown stays within it.
        await self.manager.close(drain_timeout=max(0.0, self.drain_deadline - time.monotonic()))
        await asyncio.to_thread(self.explicit.close)  # the uploads: no executor reads them any more
        self.dataplane.system_shared_memory.close()  # the client's regions: no request uses them any more


async def serve(settings: ServerSettings) -> int:
    """Run the server until SIGTERM/SIGINT; returns the exit status.

    Every closing step is on an exit stack before what it closes exists, so the stack unwinds the same way
    after a stop signal (the drain) and after a failed startup (a port taken, a listener that failed, a load
    that raised): whatever was started is closed, worker processes included, and the error propagates.
    """
    started = time.monotonic()
    # The budgets below (threads per instance, worker caps) come from these, not from the host's core count.
    logger.info("resources: %s", describe_limits())
    map_large_allocations()  # before the first large request: see large_requests
    stopping = _stop_requested()
    server = _Server.compose(settings)
    async with contextlib.AsyncExitStack() as stack:
        # Unwound last to first: readiness false, listeners stop, executors close, /metrics last of all.
        stack.callback(server.metrics_app.close)
        stack.push_async_callback(server.listeners.stop_metrics)
        stack.push_async_callback(server.dataplane.tracing.close)  # after the last request's spans
        stack.push_async_callback(server.close_models)
        stack.push_async_callback(server.listeners.stop)
        stack.push_async_exit(server.begin_shutdown)
        stack.callback(stopping.cancel)
        ports = await server.open_listeners()
        stack.callback(server.console.sampler.start().cancel)  # the console's live series
        if await _load_unless_stopped(server.manager, stopping):
            await server.listeners.started()
            if settings.model_control == "poll":
                stack.callback(
                    asyncio.create_task(server.manager.poll_forever(settings.poll_interval)).cancel
                )
            await server.announce_ready(ports, started)
            await asyncio.wait([stopping, *server.listeners.tasks], return_when=asyncio.FIRST_COMPLETED)
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
