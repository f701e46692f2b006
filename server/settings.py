"""The server's settings: one frozen, keyword-only object, validated once and passed down.

HOW TO ADD A SETTING: add one field to ``ServerSettings`` declared with
``setting(default, "One sentence of help.", ...)`` (bounds: ``minimum=``, ``maximum=``, ``above=``; choices: a
``Literal`` type; a port: ``port(default, help)``). That line alone becomes the ``--the-name`` option of
``modelport serve``, the ``MODELPORT_THE_NAME`` variable, the ``the_name`` key of ``--config FILE``, its range
check and its row of ``docs/settings.md``. Then run ``python -m modelport.server.settings_doc --write`` (a
test fails while the docs are stale). A check across two settings goes in ``__post_init__``.

``serve_cli`` builds the object from command-line options, ``MODELPORT_*`` environment variables and an
optional YAML file; nothing else reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .cgroup_limits import budget_bytes
from .setting_fields import Setting, SettingError, check_all, port, setting, settings_of

__all__ = [
    "CONFIG_VARIABLE",
    "SETTINGS",
    "InstanceKind",
    "LogFormat",
    "LogLevel",
    "ModelControl",
    "NextSteps",
    "ServerSettings",
    "SettingError",
]

ModelControl = Literal["none", "poll", "explicit"]
LogFormat = Literal["text", "json"]
InstanceKind = Literal["thread", "process"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
NextSteps = Literal["auto", "on", "off"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
CONFIG_VARIABLE = "MODELPORT_CONFIG"  # the --config FILE of serve_cli, which names no setting of its own


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Everything the composition root (``app.py``) needs. Port 0 binds an ephemeral port.

    Raises :class:`SettingError` (a ``ValueError``) naming the first setting whose value is not allowed.
    """

    repository: Path = setting(Path("models"), "Model repository: REPO/MODEL/VERSION/model.onnx.", path="dir")
    host: str = setting(
        "0.0.0.0",
        "Address of the REST, gRPC and metrics listeners: 0.0.0.0 = every IPv4 address only; :: (or [::]) = "
        "IPv6, and IPv4 too where the OS maps it (dual stack).",
    )
    http_port: int = port(8000, "REST port (0 = any free port).")
    grpc_port: int = port(8001, "gRPC port (0 = any free port).")
    metrics_port: int = port(8002, "Prometheus metrics port (0 = any free port).")
    metrics_host: str | None = setting(
        None, "Address of the metrics listener (unset: --host); 127.0.0.1 keeps /metrics off the network."
    )
    management_host: str = setting(
        "127.0.0.1", "Address of the management API (any but loopback needs --management-token)."
    )
    management_port: int = port(8081, "Management API port (0 = any free port).")
    torchserve_port: int | None = setting(
        None,
        "TorchServe's inference API (/ping, /predictions) on a port of its own too, as TorchServe's 8080 "
        "(0 = any free port); it is on the REST port either way. Default: off.",
        minimum=0,
        maximum=65535,
        noun="a port number",
    )
    management_token: str | None = setting(
        None,
        "Bearer token that the management API and REST/gRPC repository load/unload require; without it "
        "they answer loopback clients only.",
    )
    model_control: ModelControl = setting(
        "none", "none: load all at start; poll: follow the repository; explicit: load/unload endpoints."
    )
    load_models: tuple[str, ...] = setting(
        (),
        "Explicit mode: a model to load at start (repeatable; the variable separates them by spaces; "
        "'*' = all).",
        flag="--load-model",
    )
    poll_interval: float = setting(15.0, "Seconds between repository scans in poll mode.", above=0)
    drain_timeout: float = setting(30.0, "Seconds to finish in-flight requests on SIGTERM.", minimum=0)
    memory_budget: float | None = setting(
        None,
        "Most memory the loaded model versions may hold: bytes, or up to 1 a fraction of the cgroup's memory "
        "limit (0.8); a load that would exceed it first evicts the least recently used idle versions.",
        above=0,
    )
    cache_size: int = setting(
        0,
        "Bytes of the response cache that models with response_cache: {enable: true} share (least recently "
        "used answers go first); 0: no cache, and such models serve uncached with a warning.",
        minimum=0,
    )
    load_on_demand: bool = setting(
        False,
        "A request for a model of the repository that is not loaded (never, evicted, unloaded) loads it and "
        "is then answered, waiting at most its timeout; concurrent requests share one load.",
    )
    instance_kind: InstanceKind = setting(
        "thread",
        "Where a model's batches run unless its config.yaml says instances.kind: thread (sessions in the "
        "server process, the cheapest) or process (worker processes: crash isolation, retry, restarts).",
    )
    default_max_batch_size: int = setting(
        64, "max_batch_size of a graph with a leading dynamic dimension and no config.", minimum=1
    )
    grpc_max_message_bytes: int = setting(
        2**31 - 1, "Largest gRPC message received or sent.", minimum=4 * 2**20, maximum=2**31 - 1
    )
    http_max_body_bytes: int = setting(64 * 2**20, "Largest REST request body (413 above).", minimum=1024)
    # Connection limits of every listener (see protocols/http_limits.py and protocols/grpc_api.py).
    max_header_bytes: int = setting(
        32 * 2**10,
        "Largest HTTP header section (431 above) and gRPC metadata of one request.",
        minimum=1024,
        maximum=2**20,
    )
    max_url_bytes: int = setting(
        8 * 2**10, "Longest HTTP request URL (414 above).", minimum=256, maximum=2**20
    )
    header_timeout: float = setting(
        10.0,
        "Seconds a client has to send a request's headers (HTTP, 408 after) or its HTTP/2 preface and "
        "settings (gRPC).",
        above=0,
    )
    body_timeout: float = setting(
        30.0,
        "Seconds an HTTP request body may take, plus 1 s per --body-min-rate bytes received (408 after).",
        above=0,
    )
    body_min_rate: int = setting(
        64 * 2**10,
        "Bytes per second a slow HTTP body must average to earn time beyond --body-timeout.",
        minimum=1,
    )
    keep_alive_timeout: float = setting(5.0, "Seconds an idle HTTP connection stays open.", above=0)
    grpc_idle_timeout: float = setting(
        300.0, "Seconds a gRPC connection without an RPC stays open (a client reconnects at once).", above=0
    )
    max_connections: int = setting(
        2048,
        "Most open connections of the REST, management and metrics listeners together; one more closes the "
        "idlest first (stuck on its request, then idle between requests). Scaled down to fit the open-file "
        "limit.",
        minimum=1,
    )
    grpc_max_connections: int = setting(
        1024,
        "Most open gRPC connections (more are refused). Scaled down to fit the open-file limit.",
        minimum=1,
    )
    allow_custom_ops: bool = setting(
        False,
        "Load models whose config.yaml names session.custom_op_libraries (native code run in the server).",
    )
    ready_file: Path | None = setting(
        None, "Write the bound ports here as JSON once every listener is up.", path="file"
    )
    log_format: LogFormat = setting("text", "Log lines for people (text) or machines (json).")
    log_level: LogLevel = setting("info", "Least severe level logged.")
    access_log: bool = setting(
        False,
        "Write one line per inference request to the modelport.access logger (off: a busy server would write "
        "tens of MB a minute).",
    )
    access_log_sample: float = setting(
        1.0,
        "With --access-log: the fraction of successful requests written (failed ones are always written).",
        above=0,
        maximum=1,
    )
    trace_endpoint: str | None = setting(
        None,
        "OTLP/HTTP endpoint that request traces are exported to (http://collector:4318, or its full "
        "/v1/traces URL); unset: tracing is off and costs nothing.",
    )
    trace_rate: int = setting(
        1000,
        "With --trace-endpoint: trace one request in N, as Triton's default (a traced request costs a few "
        "hundred microseconds of CPU); the trace settings API changes it while serving.",
        minimum=1,
        maximum=2**32 - 1,
    )
    next_steps: NextSteps = setting(
        "auto",
        "Once ready, print what to try next (a curl, a client script, the metrics URL) on stdout; auto: only "
        "when stdout is a terminal (make serve), so a container's log stays quiet.",
    )

    def __post_init__(self) -> None:
        check_all(self, SETTINGS)
        if self.memory_budget is not None:
            try:
                budget_bytes(self.memory_budget)
            except ValueError as error:
                raise SettingError("memory_budget", f"memory_budget: {error}") from None
        if self.trace_endpoint is not None and not self.trace_endpoint.startswith(("http://", "https://")):
            raise SettingError(
                "trace_endpoint",
                f"trace_endpoint: '{self.trace_endpoint}' is not an http:// or https:// URL (OTLP/HTTP, e.g. "
                "http://collector:4318)",
            )
        if self.management_host not in _LOOPBACK and not self.management_token:
            raise SettingError(
                "management_host",
                f"management_host: binding the management API to {self.management_host} needs a "
                "management_token (MODELPORT_MANAGEMENT_TOKEN)",
            )


SETTINGS: tuple[Setting, ...] = settings_of(ServerSettings)
"""Every setting of :class:`ServerSettings` in declaration order: what the CLI and the docs are built from."""
