"""``modelport serve``: every setting as an option, a ``MODELPORT_*`` variable, or a key of ``--config FILE``.

Precedence: command line > environment > config file > default. The config file is YAML whose keys are the
option names (``http_port: 8000`` or ``http-port: 8000``); an unknown key is an error naming file and key.
Heavy imports (the HTTP stack, ONNX Runtime) happen only once the options are valid.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["serve"]


def _load_config_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager callback: the YAML file's keys become defaults of the other options (below env and CLI)."""
    if value is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(Path(value).read_text())
    except OSError as error:
        raise click.BadParameter(f"{value}: cannot be read ({error.strerror})", ctx, param) from None
    except yaml.YAMLError as error:
        raise click.BadParameter(f"{value}: not valid YAML ({error})", ctx, param) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise click.BadParameter(f"{value}: expected a mapping of settings", ctx, param)
    command = ctx.command
    known = {p.name for p in command.params if p.name and p.name != "config"}
    defaults: dict[str, Any] = {}
    for key, item in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise click.BadParameter(
                f"{value}: unknown key '{key}' (known: {', '.join(sorted(known))})", ctx, param
            )
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _env(name: str) -> str:
    return f"MODELPORT_{name.upper()}"


# Every option shows its environment variable in --help.
_option = functools.partial(click.option, show_envvar=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@_option(
    "--config",
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_load_config_file,
    envvar=_env("config"),
    help="YAML file of these settings (keys = option names).",
)
@_option(
    "--repository",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    envvar=_env("repository"),
    help="Model repository: REPO/MODEL/VERSION/model.onnx.",
)
@_option("--host", default="0.0.0.0", envvar=_env("host"), help="Address for REST and gRPC.")
@_option("--http-port", type=int, default=8000, envvar=_env("http_port"), help="REST port (0 = any).")
@_option("--grpc-port", type=int, default=8001, envvar=_env("grpc_port"), help="gRPC port (0 = any).")
@_option(
    "--metrics-port",
    type=int,
    default=8002,
    envvar=_env("metrics_port"),
    help="Prometheus metrics port (0 = any).",
)
@_option(
    "--management-host",
    default="127.0.0.1",
    envvar=_env("management_host"),
    help="Address of the management API (another needs --management-token).",
)
@_option(
    "--management-port",
    type=int,
    default=8081,
    envvar=_env("management_port"),
    help="Management API port (0 = any).",
)
@_option(
    "--management-token",
    default=None,
    envvar=_env("management_token"),
    help="Bearer token the management API requires.",
)
@_option(
    "--model-control",
    type=click.Choice(["none", "poll", "explicit"]),
    default="none",
    envvar=_env("model_control"),
    help="none: load all at start; poll: follow the repository; explicit: load/unload endpoints.",
)
@_option(
    "--load-model",
    "load_models",
    multiple=True,
    envvar=_env("load_models"),
    help="Explicit mode: a model to load at start (repeatable; '*' = all).",
)
@_option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    envvar=_env("poll_interval"),
    help="Seconds between repository scans in poll mode.",
)
@_option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    envvar=_env("drain_timeout"),
    help="Seconds to finish in-flight requests on SIGTERM.",
)
@_option(
    "--default-max-batch-size",
    type=click.IntRange(min=1),
    default=64,
    envvar=_env("default_max_batch_size"),
    help="max_batch_size of a graph with a leading dynamic dimension and no config.",
)
@_option(
    "--grpc-max-message-bytes",
    type=int,
    default=2**31 - 1,
    envvar=_env("grpc_max_message_bytes"),
    help="Largest gRPC message received or sent.",
)
@_option(
    "--http-max-body-bytes",
    type=int,
    default=64 * 2**20,
    envvar=_env("http_max_body_bytes"),
    help="Largest REST request body (413 above).",
)
@_option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar=_env("ready_file"),
    help="Write the bound ports here as JSON once ready.",
)
@_option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar=_env("log_format"),
    help="Log lines for people (text) or machines (json).",
)
@_option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    envvar=_env("log_level"),
    help="Least severe level logged.",
)
def serve(**options: Any) -> None:
    """Serve a model repository over REST and gRPC (Open Inference Protocol, as Triton speaks it)."""
    from .settings import ServerSettings

    options["load_models"] = tuple(options["load_models"])
    try:
        settings = ServerSettings(**options)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    from .observability.logging_setup import configure_logging

    configure_logging(log_format=settings.log_format, level=settings.log_level)
    # The forkserver workers start from imports ONNX Runtime in the background while this process imports
    # the HTTP/gRPC stack below (forkserver.py itself imports nothing heavy; no thread exists yet).
    from .workers.forkserver import prestart

    prestart()
    from .app import run

    try:
        status = run(settings)
    except OSError as error:
        raise click.ClickException(str(error)) from None
    sys.exit(status)
