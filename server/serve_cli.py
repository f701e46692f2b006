"""``modelport serve``: every setting as an option, a ``MODELPORT_*`` variable, or a key of ``--config FILE``.

The options are generated from :data:`~modelport.server.settings.SETTINGS` (one per field of
``ServerSettings``); none is declared here but ``--config``. Precedence: command line > environment > config
file > default. The config file is YAML whose keys are the setting names (``http_port: 8000`` or
``http-port: 8000``); an unknown key is an error naming file and key. A value a setting does not allow is a
usage error (exit 2) naming the setting, what it allows and where the value came from. Heavy imports (the HTTP
stack, ONNX Runtime) happen only once the options are valid.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .setting_fields import Setting, SettingError
from .settings import CONFIG_VARIABLE, SETTINGS, ServerSettings

__all__ = ["serve"]

FC = TypeVar("FC", bound=Callable[..., Any])
_CONFIG_FILE = "modelport.config_file"  # ctx.meta key: the --config file read, for error messages


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
    options = {option.name: option for option in ctx.command.params if option.name != "config"}
    defaults: dict[str, Any] = {}
    for key, item in data.items():
        name = str(key).replace("-", "_")
        option = options.get(name)
        if option is None:
            raise click.BadParameter(
                f"{value}: unknown key '{key}' (known: {', '.join(sorted(map(str, options)))})", ctx, param
            )
        # A repeatable setting may be given one value instead of a list.
        given = [item] if option.multiple and not isinstance(item, list) else item
        try:  # converted here, so that a value of the wrong type names the file and the key
            defaults[name] = option.type_cast_value(ctx, given)
        except click.BadParameter as error:
            raise click.BadParameter(f"{value}: {key}: {error.message}", ctx, param) from None
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_CONFIG_FILE] = value
    return value


def _source_of(name: str) -> str:
    """Where the value of setting ``name`` came from, as " (from ...)", so the error says what to edit."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(name)
    declared = next(item for item in SETTINGS if item.name == name)
    if source is click.core.ParameterSource.COMMANDLINE:
        return f" (from {declared.flag})"
    if source is click.core.ParameterSource.ENVIRONMENT:
        return f" (from {declared.env})"
    if source is click.core.ParameterSource.DEFAULT_MAP:
        return f" (from {ctx.meta.get(_CONFIG_FILE, '--config')})"
    return ""


def _setting_option(declared: Setting) -> Callable[[FC], FC]:
    """The click option of one setting: its flag, ``MODELPORT_*`` variable, type, default and help."""
    kind: click.ParamType[Any, Any] | type[Any]
    if declared.choices:
        # Choices are matched without case (INFO = info); the value passed on is the declared spelling.
        kind = click.Choice(declared.choices, case_sensitive=False)
    elif declared.kind is Path:
        kind = click.Path(path_type=Path, file_okay=declared.path != "dir", dir_okay=declared.path != "file")
    else:
        kind = declared.kind
    allowed = declared.allowed()
    help_text = f"{declared.help} Allowed: {allowed}." if allowed and not declared.choices else declared.help
    flag = declared.flag
    if declared.kind is bool and not declared.repeated:
        flag = f"{flag}/--no-{flag.removeprefix('--')}"
    return click.option(
        flag,
        declared.name,
        type=kind,
        default=declared.default,
        multiple=declared.repeated,
        envvar=declared.env,
        show_envvar=True,
        help=help_text,
    )


def _setting_options(command: Callable[..., None]) -> Callable[..., None]:
    """Every setting of ``ServerSettings`` as an option, in declaration order (``--help`` lists them so)."""
    for declared in reversed(SETTINGS):
        command = _setting_option(declared)(command)
    return command


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_load_config_file,
    envvar=CONFIG_VARIABLE,
    show_envvar=True,
    help="YAML file of these settings (keys = setting names: http_port or http-port).",
)
@_setting_options
def serve(**options: Any) -> None:
    """Serve a model repository over REST and gRPC (Open Inference Protocol, as Triton speaks it)."""
    for declared in SETTINGS:
        if declared.repeated:
            options[declared.name] = tuple(options[declared.name])
    try:
        settings = ServerSettings(**options)
    except SettingError as error:
        raise click.UsageError(f"{error}{_source_of(error.setting)}") from None
    from .observability.access_log import configure_access_log
    from .observability.logging_setup import configure_logging

    configure_logging(log_format=settings.log_format, level=settings.log_level)
    configure_access_log(enabled=settings.access_log, sample=settings.access_log_sample)
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
