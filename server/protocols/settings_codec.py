"""The wire forms of Triton's trace and log settings, for both adapters: JSON bodies (REST) and the
``SettingValue`` maps of gRPC ``TraceSetting`` / ``LogSettings``, to and from what the data plane takes.

Trace values are strings (a list for ``trace_level``); REST ``null`` and a gRPC empty value list clear a
model's setting. Log values are booleans, integers and strings (gRPC ``bool_param``, ``uint32_param``,
``string_param``). Changing either is a management operation (the adapters' access check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidInput
from ..observability.log_settings import LogValue
from .generated import grpc_service_pb2 as pb

__all__ = [
    "log_settings_message",
    "log_update_from_grpc",
    "log_update_from_json",
    "trace_settings_message",
    "trace_update_from_grpc",
    "trace_update_from_json",
]


def trace_update_from_json(body: Mapping[str, Any]) -> dict[str, Sequence[str] | None]:
    """A REST trace setting request: each value a string, a list of strings, or null (clear)."""
    update: dict[str, Sequence[str] | None] = {}
    for key, value in body.items():
        if value is None:
            update[key] = None
        elif isinstance(value, str):
            update[key] = [value]
        elif isinstance(value, int) and not isinstance(value, bool):
            update[key] = [str(value)]  # Triton wants strings; a number is what the client meant
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            update[key] = value
        else:
            raise InvalidInput(f"trace setting '{key}': expected a string, a list of strings or null")
    return update


def trace_update_from_grpc(request: pb.TraceSettingRequest) -> dict[str, Sequence[str] | None]:
    """A gRPC trace setting request: an empty value list clears."""
    return {key: list(value.value) or None for key, value in request.settings.items()}


def trace_settings_message(settings: Mapping[str, str | list[str]]) -> pb.TraceSettingResponse:
    response = pb.TraceSettingResponse()
    for key, value in settings.items():
        response.settings[key].value.extend([value] if isinstance(value, str) else value)
    return response


def log_update_from_json(body: Mapping[str, Any]) -> dict[str, LogValue]:
    """A REST log settings request: booleans, integers and strings."""
    for key, value in body.items():
        if not isinstance(value, bool | int | str):
            raise InvalidInput(f"log setting '{key}': expected a boolean, an integer or a string")
    return dict(body)


def log_update_from_grpc(request: pb.LogSettingsRequest) -> dict[str, LogValue]:
    update: dict[str, LogValue] = {}
    for key, value in request.settings.items():
        kind = value.WhichOneof("parameter_choice")
        if kind is None:
            raise InvalidInput(
                f"log setting '{key}': no value given (bool_param, uint32_param or string_param)"
            )
        update[key] = getattr(value, kind)
    return update


def log_settings_message(settings: Mapping[str, LogValue]) -> pb.LogSettingsResponse:
    response = pb.LogSettingsResponse()
    for key, value in settings.items():
        entry = response.settings[key]
        if isinstance(value, bool):
            entry.bool_param = value
        elif isinstance(value, int):
            entry.uint32_param = value
        else:
            entry.string_param = value
    return response
