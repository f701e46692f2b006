"""What the REST routes answer, for the OpenAPI document (``/openapi.json``): statuses, bodies, headers.

The routes are plain handlers that return :class:`Response` objects, so FastAPI cannot infer any of this; it
is declared here, route by route, and ``tests/reliability/test_openapi_schemathesis.py`` holds the server to
it with schemathesis. Keep the two in step: a new status a route can answer is added to its entry here.

Every error body is ``{"error": "..."}``. FastAPI's own 422 (request validation) is never sent: no route
declares a model FastAPI would validate (the infer body is read raw), so :func:`without_validation_errors`
removes the 422 entries FastAPI adds to the document by itself.
"""

from __future__ import annotations

from typing import Any

from ..names import MAX_NAME_LENGTH, MAX_VERSION_DIGITS, NAME_RULE, VERSION_RULE

__all__ = ["MODEL_NAME_PATTERN", "MODEL_VERSION_PATTERN", "ROUTE_DOCS", "without_validation_errors"]

# The name rule of :mod:`modelport.server.names` as JSON Schema patterns (a test holds the two to agree).
MODEL_NAME_PATTERN = rf"^[A-Za-z0-9_+@=,~-][A-Za-z0-9_.+@=,~-]{{0,{MAX_NAME_LENGTH - 1}}}$"
MODEL_VERSION_PATTERN = rf"^[0-9]{{1,{MAX_VERSION_DIGITS}}}$"
REGION_NAME_PATTERN = r"^[^\x00-\x1f\x7f/]{1,256}$"  # shared_memory.keys.check_region_name

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what went wrong and what to change"}},
}
_JSON = "application/json"
_BINARY = "application/octet-stream"
_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16"]
_DATATYPES += ["FP32", "FP64", "BYTES"]
_PARAMETERS = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "integer", "boolean"]},
}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_SPEC_FIELDS: dict[str, Any] = {"name": {"type": "string"}, "datatype": {"type": "string"}, "shape": _SHAPE}
# Model metadata reports -1 for a variable dimension.
_SPEC_DIMS = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {**_SPEC_FIELDS, "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}}},
}
_STATS = {"type": "object", "required": ["model_stats"], "properties": {"model_stats": {"type": "array"}}}
_SERVER_METADATA = {
    "type": "object",
    "required": ["name", "version", "extensions"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "extensions": {"type": "array", "items": {"type": "string"}},
    },
}
_MODEL_METADATA = {
    "type": "object",
    "required": ["name", "versions", "platform", "inputs", "outputs"],
    "properties": {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": _SPEC_DIMS},
        "outputs": {"type": "array", "items": _SPEC_DIMS},
    },
}
_INDEX = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "state", "reason"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "state": {"type": "string", "enum": ["READY", "UNAVAILABLE", "LOADING", "UNLOADING"]},
            "reason": {"type": "string"},
        },
    },
}
_INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "datatype", "shape"],
                "properties": {
                    "name": {"type": "string"},
                    "datatype": {"type": "string", "enum": _DATATYPES},
                    "shape": _SHAPE,
                    "parameters": _PARAMETERS,
                    "data": {"description": "row-major values, flat or nested; absent with binary_data_size"},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
            },
        },
    },
}
_INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "model_version", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "datatype", "shape"],
                "properties": {**_SPEC_FIELDS, "data": {}, "parameters": _PARAMETERS},
            },
        },
    },
}
_HEADER_LENGTH = {
    "Inference-Header-Content-Length": {
        "description": "length of the JSON header in front of the binary output tensors",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ERROR}}}


def _ok(schema: dict[str, Any] | None, description: str = "OK") -> dict[str, Any]:
    if schema is None:
        return {"description": f"{description} (empty body)"}
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _flag(name: str) -> dict[str, Any]:
    """KServe's health body: ``{"live": true}`` or ``{"ready": true}``."""
    return {"type": "object", "required": [name], "properties": {name: {"type": "boolean"}}}


_MODEL_LIST = {
    "type": "object",
    "required": ["models"],
    "properties": {"models": {"type": "array", "items": {"type": "string"}}},
}
_MODEL_READY = {
    "type": "object",
    "required": ["name", "ready"],
    "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
}
_BAD_NAME = _error("unknown model or version, or a name or version the name rule refuses")
_NOT_READY = _error("the model exists but no version of it is ready (loading, failed, unloading)")
_TOO_LARGE = _error("the body, or its decompressed size, exceeds the server's body limit")
_BAD_BODY = _error("the body is not valid JSON, not an object, or its fields have the wrong types")
_EXPLICIT_ONLY = _error("the server was not started with --model-control explicit")
_REFUSED = _error("not allowed from this client: load/unload need a loopback client or the management token")

_MODEL_GET: dict[int | str, dict[str, Any]] = {400: _BAD_NAME, 503: _NOT_READY}


def _infer() -> dict[str, Any]:
    return {
        "responses": {
            200: {
                "description": "the outputs: JSON, or a JSON header followed by binary tensors",
                "headers": _HEADER_LENGTH,
                "content": {_JSON: {"schema": _INFER_RESPONSE}, _BINARY: {"schema": {}}},
            },
            400: _error(
                "a malformed request, an unknown model or version, or inputs that do not match the model"
            ),
            413: _TOO_LARGE,
            501: _error("a feature modelport does not implement (e.g. shared-memory tensors)"),
            503: _error("the model is not ready, its queue is full, or the server is shutting down"),
            504: _error("the request's timeout expired before it ran"),
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "description": (
                    "A JSON inference request, or Triton's binary tensor extension: the JSON header, then "
                    "the binary tensors (Inference-Header-Content-Length gives the header's length; 0 means "
                    "the whole body is the one input of a single-input model). gzip/deflate Content-Encoding "
                    "is accepted."
                ),
                "content": {_JSON: {"schema": _INFER_REQUEST}, _BINARY: {"schema": {}}},
            }
        },
    }


def _path_parameters(path: str) -> dict[str, Any]:
    """The path parameters of ``path`` with the name rule (FastAPI would declare any string)."""
    parameters = []
    if "{model_name}" in path:
        parameters.append(
            {
                "name": "model_name",
                "in": "path",
                "required": True,
                "description": f"a model name: {NAME_RULE}",
                "schema": {"type": "string", "pattern": MODEL_NAME_PATTERN},
            }
        )
    if "{model_version}" in path:
        parameters.append(
            {
                "name": "model_version",
                "in": "path",
                "required": True,
                "description": VERSION_RULE,
                "schema": {"type": "string", "pattern": MODEL_VERSION_PATTERN},
            }
        )
    if "{region_name}" in path:
        parameters.append(
            {
                "name": "region_name",
                "in": "path",
                "required": True,
                "description": "a shared memory region name: 1 to 256 printable characters without '/'",
                "schema": {"type": "string", "pattern": REGION_NAME_PATTERN},
            }
        )
    return {"parameters": parameters} if parameters else {}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": False, "content": {_JSON: {"schema": schema}}}}


_LOAD_BODY = {
    "type": "object",
    "properties": {
        "parameters": {
            "type": "object",
            "description": "config: Triton config JSON text; file:<version>/<name>: base64 file content",
            "additionalProperties": {"type": "string"},
        }
    },
}
_REPOSITORY_CHANGE: dict[int | str, dict[str, Any]] = {
    200: _ok(None),
    400: _error("a bad body, an unknown model, or a name the name rule refuses"),
    401: _REFUSED,
    403: _REFUSED,
    413: _TOO_LARGE,
    501: _EXPLICIT_ONLY,
    503: _error("the model failed to load or to unload; the reason says why"),
}

_MODEL = "/v2/models/{model_name}"
_VERSION = "/v2/models/{model_name}/versions/{model_version}"

ROUTE_DOCS: dict[str, dict[str, Any]] = {
    "/v2": {"responses": {200: _ok(_SERVER_METADATA)}},
    "/v2/health/live": {"responses": {200: _ok(_flag("live"), "live"), 400: _error("not live")}},
    "/v2/health/ready": {"responses": {200: _ok(_flag("ready"), "ready"), 400: _error("not ready")}},
    "/v2/models": {"responses": {200: _ok(_MODEL_LIST, "the names of the models with a version ready")}},
    "/v2/models/stats": {"responses": {200: _ok(_STATS)}},
    **{path: {"responses": {200: _ok(_MODEL_METADATA), **_MODEL_GET}} for path in (_MODEL, _VERSION)},
    **{
        f"{path}/ready": {
            "responses": {200: _ok(_MODEL_READY, "ready"), 400: _error("not ready, or unknown")}
        }
        for path in (_MODEL, _VERSION)
    },
    **{
        f"{path}/config": {
            "responses": {200: _ok({"type": "object"}, "Triton ModelConfig JSON"), **_MODEL_GET}
        }
        for path in (_MODEL, _VERSION)
    },
    **{f"{path}/stats": {"responses": {200: _ok(_STATS), **_MODEL_GET}} for path in (_MODEL, _VERSION)},
    **{f"{path}/infer": _infer() for path in (_MODEL, _VERSION)},
    "/v2/repository/index": {
        "responses": {200: _ok(_INDEX), 400: _BAD_BODY, 413: _TOO_LARGE},
        "openapi_extra": _json_body({"type": "object", "properties": {"ready": {"type": "boolean"}}}),
    },
    "/v2/repository/models/{model_name}/load": {
        "responses": _REPOSITORY_CHANGE,
        "openapi_extra": _json_body(_LOAD_BODY),
    },
    "/v2/repository/models/{model_name}/unload": {
        "responses": _REPOSITORY_CHANGE,
        "openapi_extra": _json_body({"type": "object", "properties": {"parameters": {"type": "object"}}}),
    },
}
_REGION = "/v2/systemsharedmemory/region/{region_name}"
_REGION_STATUS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "key", "offset", "byte_size"],
        "properties": {
            "name": {"type": "string"},
            "key": {"type": "string"},
            "offset": {"type": "integer", "minimum": 0},
            "byte_size": {"type": "integer", "minimum": 0},
        },
    },
}
_REGISTER_BODY = {
    "type": "object",
    "required": ["key", "byte_size"],
    "properties": {
        "key": {"type": "string", "description": "the POSIX shared memory name (shm_open), e.g. /input0"},
        "offset": {"type": "integer", "minimum": 0},
        "byte_size": {"type": "integer", "minimum": 1},
    },
}
_SHM_REFUSED = _error("not allowed from this client: a loopback client or the management token is needed")
_SHM_CHANGE: dict[int | str, dict[str, Any]] = {200: _ok(None), 401: _SHM_REFUSED, 403: _SHM_REFUSED}
ROUTE_DOCS |= {
    "/v2/systemsharedmemory/status": {"responses": {200: _ok(_REGION_STATUS)}},
    f"{_REGION}/status": {
        "responses": {
            200: _ok(_REGION_STATUS),
            400: _error("a bad region name"),
            404: _error("not registered"),
        }
    },
    f"{_REGION}/register": {
        "responses": {
            **_SHM_CHANGE,
            400: _error("a bad body, key, offset or size, a missing key, or a name already registered"),
            413: _TOO_LARGE,
        },
        "openapi_extra": _json_body(_REGISTER_BODY),
    },
    "/v2/systemsharedmemory/unregister": {"responses": _SHM_CHANGE},
    f"{_REGION}/unregister": {"responses": _SHM_CHANGE},
    "/v2/cudasharedmemory/{operation:path}": {
        "responses": {501: _error("CUDA shared memory is not implemented: use system shared memory")}
    },
}
_SETTING_REFUSED = _error("changing settings needs a loopback client or the management token")
_TRACE_SETTINGS = {
    "type": "object",
    "description": "trace_level (a list: OFF or TIMESTAMPS), trace_rate, trace_count, log_frequency, "
    "trace_mode",
    "additionalProperties": {"type": ["string", "array"], "items": {"type": "string"}},
}
_TRACE_UPDATE = {
    "type": "object",
    "additionalProperties": {"type": ["string", "array", "null"], "items": {"type": "string"}},
}
_LOG_SETTINGS = {
    "type": "object",
    "description": "log_file, log_info, log_warning, log_error, log_verbose_level, log_format",
    "additionalProperties": {"type": ["string", "boolean", "integer"]},
}


def _settings_route(body: dict[str, Any], update: dict[str, Any], what: str) -> dict[str, Any]:
    return {
        "responses": {
            200: _ok(body),
            400: _error(f"an unknown {what} or a value it does not allow (the message names both)"),
            401: _SETTING_REFUSED,
            403: _SETTING_REFUSED,
            413: _TOO_LARGE,
            501: _error(f"a {what} modelport does not implement (trace_file, TENSORS, log_file)"),
        },
        "openapi_extra": _json_body(update),
    }


ROUTE_DOCS |= {
    "/v2/trace/setting": _settings_route(_TRACE_SETTINGS, _TRACE_UPDATE, "trace setting"),
    f"{_MODEL}/trace/setting": _settings_route(_TRACE_SETTINGS, _TRACE_UPDATE, "trace setting"),
    "/v2/logging": _settings_route(_LOG_SETTINGS, _LOG_SETTINGS, "log setting"),
}
"""Per route path: the ``responses`` (and ``openapi_extra``) keyword arguments of ``add_api_route``."""

for _path, _docs in ROUTE_DOCS.items():
    _docs["openapi_extra"] = {**_docs.get("openapi_extra", {}), **_path_parameters(_path)}


def without_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without FastAPI's 422 answers and their schemas (the server never sends a 422), and
    without the 200 FastAPI adds to a route that never answers 200."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            # FastAPI's own 200 on a route that declared none (the shared-memory routes never succeed).
            if responses.get("200", {}).get("description") == "Successful Response":
                responses.pop("200")
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if "components" in document and not schemas:
        document["components"].pop("schemas", None)
    if "components" in document and not document["components"]:
        document.pop("components")
    return document
