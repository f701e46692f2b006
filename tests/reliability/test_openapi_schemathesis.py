"""schemathesis against the real server's OpenAPI document (``/openapi.json`` on the REST port).

Every operation is called with cases generated from the document, valid and invalid ones; each answer must be
a status the document lists for that operation, carry the body and headers it declares, and never be a 5xx
(apart from the 501/503/504 the document declares). Methods a path does not serve must answer 405 with an
``Allow`` header. Derandomized, so CI runs the same cases every time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelport.server.names import is_model_name
from modelport.server.protocols.rest_openapi import MODEL_NAME_PATTERN
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.config import SchemathesisConfig

from tests.helpers.onnx_models import add_sub_model, identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

# Statuses the document declares that are not server faults: the feature is not implemented, the model or
# server is not ready, a deadline passed.
_DECLARED_5XX = ("501", "503", "504")
_EXAMPLES = 25  # per operation and mode: 17 operations x 2 modes x 25 = 850 requests, about 20 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("openapi-repo")
    write_model(root, "identity", identity_model("FP32", (-1, 4)), config={"max_batch_size": 8})
    write_model(root, "simple", add_sub_model("INT32", (-1, 16)), config={"max_batch_size": 8})
    with start_server(root, "--model-control", "explicit", "--load-model", "*") as handle:
        yield handle


@pytest.fixture(scope="module")
def api_schema(server: ServerProcess) -> BaseSchema:
    config = SchemathesisConfig()
    config.projects.default.checks.not_a_server_error.expected_statuses = [
        str(code) for code in range(200, 500)
    ] + list(_DECLARED_5XX)
    # Schema-valid data naming an unknown model answers 400, as the protocol (Triton's) and the document say,
    # where schemathesis would expect a 404; shared memory and load/unload without explicit mode answer 501.
    config.projects.default.checks.positive_data_acceptance.expected_statuses = [
        "2XX",
        "400",
        "401",
        "403",
        "404",
        "501",
        "503",
    ]
    return schemathesis.openapi.from_url(f"http://{server.http_url}/openapi.json", config=config)


_MODEL = "/v2/models/{model_name}"
_VERSION = "/v2/models/{model_name}/versions/{model_version}"
OPERATIONS = [
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models"),
    ("GET", "/v2/models/stats"),
    *(
        ("GET", f"{base}{tail}")
        for base in (_MODEL, _VERSION)
        for tail in ("", "/ready", "/config", "/stats")
    ),
    ("POST", f"{_MODEL}/infer"),
    ("POST", f"{_VERSION}/infer"),
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/{model_name}/load"),
    ("POST", "/v2/repository/models/{model_name}/unload"),
    ("GET", "/v2/systemsharedmemory/status"),
    ("GET", "/v2/systemsharedmemory/region/{region_name}/status"),
    ("POST", "/v2/systemsharedmemory/region/{region_name}/register"),
    ("POST", "/v2/systemsharedmemory/unregister"),
    ("POST", "/v2/systemsharedmemory/region/{region_name}/unregister"),
    *((method, "/v2/cudasharedmemory/{operation}") for method in ("GET", "POST")),
    *(
        (method, path)
        for path in ("/v2/trace/setting", f"{_MODEL}/trace/setting", "/v2/logging")
        for method in ("GET", "POST")
    ),
]
# Routes that answer 501 whatever is sent: schemathesis finds no case the document refuses.
_NO_BODY = ("cudasharedmemory",)
# Routes that read no body and no model name: nothing for a negative case to change.
_NO_NEGATIVE = (*_NO_BODY, "systemsharedmemory/status", "/unregister")


# schemathesis' own pytest integration (from_fixture) does not run under this pytest (it reads a private
# attribute pytest 9 removed), so each operation's cases come from its hypothesis strategy.
# Negative cases (data the document refuses) where schemathesis can make them: a body or a model name.
# (Of a GET with a version in its path, or a route that answers 501, it finds none it can send;
# tests/reliability/test_traversal.py sends the bad versions.)
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or (
        not any(part in path for part in _NO_NEGATIVE)
        and (method == "POST" or ("{model_name}" in path and "{model_version}" not in path))
    )
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_operation_answers_as_documented(
    api_schema: BaseSchema, server: ServerProcess, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Case[Any]) -> None:
        case.call_and_validate(timeout=30)

    answers_as_documented()
    assert server.process.poll() is None, "the server died"


def test_the_operations_tested_are_the_documents(server: ServerProcess) -> None:
    document = httpx.get(f"http://{server.http_url}/openapi.json", timeout=10).json()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == set(OPERATIONS)


def test_the_document_lists_only_statuses_the_server_sends(server: ServerProcess) -> None:
    document = httpx.get(f"http://{server.http_url}/openapi.json", timeout=10).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert "422" not in statuses, f"{method} {path}: the server never sends 422"
            if any(part in path for part in _NO_BODY):  # not implemented: Triton's clients get a clear 501
                assert statuses - {"400"} == {"501"}, f"{method} {path}"
            else:
                assert "200" in statuses, f"{method} {path}"
    infer = document["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert {"200", "400", "413", "503"} <= set(infer["responses"])
    assert {"application/json", "application/octet-stream"} <= set(infer["requestBody"]["content"])
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v2/health/ready", {"GET"}),
        ("POST", "/v2/models/identity", {"GET"}),
        ("GET", "/v2/models/identity/infer", {"POST"}),
        ("PUT", "/v2/repository/index", {"POST"}),
    ],
)
def test_a_method_a_path_does_not_serve_answers_405_with_allow(
    server: ServerProcess, method: str, path: str, allowed: set[str]
) -> None:
    response = httpx.request(method, f"http://{server.http_url}{path}", timeout=10)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
    assert "error" in response.json()


@given(name=st.text(max_size=140) | st.from_regex(MODEL_NAME_PATTERN))
@settings(max_examples=2000, derandomize=True, database=None, deadline=None)
def test_the_documented_name_pattern_is_the_servers_name_rule(name: str) -> None:
    assert (re.fullmatch(MODEL_NAME_PATTERN, name) is not None) == is_model_name(name)
