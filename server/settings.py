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

from .setting_fields import Setting, SettingError, check_all, port, setting, settings_of

__all__ = [
    "CONFIG_VARIABLE",
    "SETTINGS",
    "LogFormat",
    "LogLevel",
    "ModelControl",
    "ServerSettings",
    "SettingError",
]

ModelControl = Literal["none", "poll", "explicit"]
LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
CONFIG_VARIABLE = "MODELPORT_CONFIG"  # the --config FILE of serve_cli, which names no setting of its own


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Everything the composition root (``app.py``) needs. Port 0 binds an ephemeral port.

    Raises :class:`SettingError` (a ``ValueError``) naming the first setting whose value is not allowed.
    """

    repository: Path = setting(Path("models"), "Model repository: REPO/MODEL/VERSION/model.onnx.")
    host: str = setting("0.0.0.0", "Address of the REST, gRPC and metrics listeners.")
    http_port: int = port(8000, "REST port (0 = any free port).")
    grpc_port: int = port(8001, "gRPC port (0 = any free port).")
    metrics_port: int = port(8002, "Prometheus metrics port (0 = any free port).")
    management_host: str = setting(
        "127.0.0.1", "Address of the management API (any but loopback needs --management-token)."
    )
    management_port: int = port(8081, "Management API port (0 = any free port).")
    management_token: str | None = setting(None, "Bearer token the management API requires.")
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
    default_max_batch_size: int = setting(
        64, "max_batch_size of a graph with a leading dynamic dimension and no config.", minimum=1
    )
    grpc_max_message_bytes: int = setting(
        2**31 - 1, "Largest gRPC message received or sent.", minimum=4 * 2**20, maximum=2**31 - 1
    )
    http_max_body_bytes: int = setting(64 * 2**20, "Largest REST request body (413 above).", minimum=1024)
    ready_file: Path | None = setting(None, "Write the bound ports here as JSON once every listener is up.")
    log_format: LogFormat = setting("text", "Log lines for people (text) or machines (json).")
    log_level: LogLevel = setting("info", "Least severe level logged.")

    def __post_init__(self) -> None:
        check_all(self, SETTINGS)
        if self.management_host not in _LOOPBACK and not self.management_token:
            raise SettingError(
                "management_host",
                f"management_host: binding the management API to {self.management_host} needs a "
                "management_token (MODELPORT_MANAGEMENT_TOKEN)",
            )


SETTINGS: tuple[Setting, ...] = settings_of(ServerSettings)
"""Every setting of :class:`ServerSettings` in declaration order: what the CLI and the docs are built from."""
