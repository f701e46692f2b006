"""The server's settings: one frozen, keyword-only object, validated once and passed down.

``serve_cli`` builds it from command-line options, ``MODELPORT_*`` environment variables and an optional YAML
file; nothing else reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["LogFormat", "ModelControl", "ServerSettings"]

ModelControl = Literal["none", "poll", "explicit"]
LogFormat = Literal["text", "json"]

_MODEL_CONTROLS = ("none", "poll", "explicit")
_LOG_FORMATS = ("text", "json")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Everything the composition root (``app.py``) needs. Port 0 binds an ephemeral port."""

    repository: Path = Path("models")
    host: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    management_host: str = "127.0.0.1"
    management_port: int = 8081
    management_token: str | None = None
    model_control: ModelControl = "none"
    load_models: tuple[str, ...] = ()  # explicit mode: models to load at start ("*" = all)
    poll_interval: float = 15.0  # seconds between repository scans in poll mode
    drain_timeout: float = 30.0  # seconds to finish in-flight requests on SIGTERM
    default_max_batch_size: int = 64  # for a graph with a leading dynamic dim and no max_batch_size
    grpc_max_message_bytes: int = 2**31 - 1
    http_max_body_bytes: int = 64 * 2**20
    ready_file: Path | None = None  # JSON with the bound ports, written once every listener is up
    log_format: LogFormat = "text"
    log_level: str = "info"

    def __post_init__(self) -> None:
        for field in ("http_port", "grpc_port", "metrics_port", "management_port"):
            port = getattr(self, field)
            if not 0 <= port <= 65535:
                raise ValueError(f"{field}: {port} is not a port number (0..65535; 0 = any free port)")
        if self.model_control not in _MODEL_CONTROLS:
            raise ValueError(
                f"model_control: '{self.model_control}' is not one of {', '.join(_MODEL_CONTROLS)}"
            )
        if self.log_format not in _LOG_FORMATS:
            raise ValueError(f"log_format: '{self.log_format}' is not one of {', '.join(_LOG_FORMATS)}")
        if self.log_level.lower() not in _LOG_LEVELS:
            raise ValueError(f"log_level: '{self.log_level}' is not one of {', '.join(_LOG_LEVELS)}")
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval: {self.poll_interval} must be > 0 seconds")
        if self.drain_timeout < 0:
            raise ValueError(f"drain_timeout: {self.drain_timeout} must be >= 0 seconds")
        if self.default_max_batch_size < 1:
            raise ValueError(f"default_max_batch_size: {self.default_max_batch_size} must be >= 1")
        if self.grpc_max_message_bytes < 4 * 2**20:
            raise ValueError(f"grpc_max_message_bytes: {self.grpc_max_message_bytes} must be >= 4 MiB")
        if self.http_max_body_bytes < 1024:
            raise ValueError(f"http_max_body_bytes: {self.http_max_body_bytes} must be >= 1024")
        if self.management_host not in ("127.0.0.1", "localhost", "::1") and not self.management_token:
            raise ValueError(
                f"management_host: binding the management API to {self.management_host} needs a "
                "management_token (MODELPORT_MANAGEMENT_TOKEN)"
            )
