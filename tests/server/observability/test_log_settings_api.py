"""Triton's logging extension on the real server: ``/v2/logging`` and gRPC ``LogSettings`` change the levels
and the format of the server's log while it runs, and refuse what they do not allow, naming the key.

Changing the settings is a management operation (a loopback client, or the management token when one is
configured); reading them is open.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.errors import InvalidInput
from modelport.server.observability.log_settings import LogSettings
from modelport.server.observability.logging_setup import make_formatter
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import http_ones

MODEL = "identity"
DEFAULTS = {
    "log_file": "",
    "log_info": True,
    "log_warning": True,
    "log_error": True,
    "log_verbose_level": 0,
    "log_format": "default",
}


def _repository(root: Path) -> Path:
    write_model(root, MODEL, identity_model("FP32", (-1, 4)))
    return root


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with start_server(_repository(tmp_path_factory.mktemp("logged")), "--access-log") as process:
        yield process


def _wait_for_line(server: ServerProcess, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.logs().splitlines():
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {needle!r}:\n{server.logs()[-3000:]}")


def test_levels_and_format_change_live_over_rest_and_grpc(logged: ServerProcess) -> None:
    rest = httpclient.InferenceServerClient(logged.http_url)
    rpc = grpcclient.InferenceServerClient(logged.grpc_url)
    try:
        assert rest.get_log_settings() == DEFAULTS
        rest.infer(MODEL, http_ones(1), request_id="seen-text-1")
        assert _wait_for_line(logged, "request_id=seen-text-1").split(" ")[1] == "INFO"
        # REST: INFO off; the access lines (INFO) stop.
        assert rest.update_log_settings({"log_info": False}) == {**DEFAULTS, "log_info": False}
        rest.infer(MODEL, http_ones(1), request_id="hidden-1")
        # gRPC: INFO on again, in JSON.
        changed = rpc.update_log_settings({"log_info": True, "log_format": "json"}, as_json=True)
        assert changed["settings"]["log_format"] == {"string_param": "json"}
        assert changed["settings"]["log_info"] == {"bool_param": True}
        rest.infer(MODEL, http_ones(1), request_id="seen-json-1")
        record = json.loads(_wait_for_line(logged, '"request_id":"seen-json-1"'))
        assert (record["level"], record["logger"]) == ("INFO", "modelport.access")
        # Lines are written in order: the one of the request made while INFO was off would be before it.
        assert "hidden-1" not in logged.logs()
        assert rpc.get_log_settings(as_json=True)["settings"]["log_verbose_level"] == {"uint32_param": 0}
        # Back to text lines with an ISO 8601 timestamp.
        rest.update_log_settings({"log_format": "ISO8601", "log_verbose_level": 1})
        rest.infer(MODEL, http_ones(1), request_id="seen-text-2")
        line = _wait_for_line(logged, "request_id=seen-text-2")
        assert line[:4].isdigit() and line[10] == "T" and " INFO modelport.access: " in line
        assert rest.get_log_settings()["log_verbose_level"] == 1
        rest.update_log_settings({"log_format": "default", "log_verbose_level": 0})
    finally:
        rest.close()
        rpc.close()


@pytest.mark.parametrize(
    ("settings", "status", "named"),
    [
        ({"log_infos": True}, "400", ["log_infos", "log_info, log_warning"]),
        ({"log_format": "xml"}, "400", ["log_format", "default, ISO8601, json"]),
        ({"log_file": "/tmp/server.log"}, "501", ["log_file", "stderr"]),
    ],
)
def test_bad_log_settings_are_refused_naming_the_key(
    logged: ServerProcess, settings: dict[str, object], status: str, named: list[str]
) -> None:
    rest = httpclient.InferenceServerClient(logged.http_url)
    rpc = grpcclient.InferenceServerClient(logged.grpc_url)
    grpc_status = {"400": "StatusCode.INVALID_ARGUMENT", "501": "StatusCode.UNIMPLEMENTED"}[status]
    try:
        before = rest.get_log_settings()
        with pytest.raises(InferenceServerException) as rest_error:
            rest.update_log_settings(settings)
        with pytest.raises(InferenceServerException) as grpc_error:
            rpc.update_log_settings(settings)
        assert rest.get_log_settings() == before
    finally:
        rest.close()
        rpc.close()
    assert (rest_error.value.status(), grpc_error.value.status()) == (status, grpc_status)
    for words in named:
        assert words in rest_error.value.message(), rest_error.value.message()
        assert words in str(grpc_error.value.message()), grpc_error.value.message()


def test_values_of_the_wrong_type_are_refused(logged: ServerProcess) -> None:
    with grpc.insecure_channel(logged.grpc_url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
        request = pb.LogSettingsRequest()
        request.settings["log_info"].uint32_param = 1
        with pytest.raises(grpc.RpcError) as caught:
            stub.LogSettings(request, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "log_info: expected true or false" in str(caught.value.details())
    with httpx.Client(base_url=f"http://{logged.http_url}", timeout=10) as client:
        answer = client.post("/v2/logging", json={"log_info": "yes"})
        assert answer.status_code == 400 and "log_info: expected true or false" in answer.json()["error"]
        answer = client.post("/v2/logging", json={"log_verbose_level": -1})
        assert answer.status_code == 400 and "log_verbose_level" in answer.json()["error"]
        answer = client.post("/v2/logging", json={"log_info": None})
        assert answer.status_code == 400 and "log_info" in answer.json()["error"]


def test_with_a_management_token_changing_settings_needs_it(tmp_path: Path) -> None:
    token = "s3cret-token"
    with start_server(_repository(tmp_path), "--management-token", token) as process:
        with httpx.Client(base_url=f"http://{process.http_url}", timeout=10) as client:
            for path, body in (
                ("/v2/logging", {"log_info": False}),
                ("/v2/trace/setting", {"trace_rate": "5"}),
            ):
                assert client.get(path).status_code == 200  # reading is open
                refused = client.post(path, json=body)
                assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["error"]
                allowed = client.post(path, json=body, headers={"authorization": f"Bearer {token}"})
                assert allowed.status_code == 200, allowed.text
        rpc = grpcclient.InferenceServerClient(process.grpc_url)
        try:
            with pytest.raises(InferenceServerException) as refused_rpc:
                rpc.update_log_settings({"log_info": True})
            assert refused_rpc.value.status() == "StatusCode.UNAUTHENTICATED"
            rpc.update_log_settings({"log_info": True}, headers={"authorization": f"Bearer {token}"})
            assert rpc.get_log_settings(as_json=True)["settings"]["log_info"] == {"bool_param": True}
        finally:
            rpc.close()


def test_levels_are_switched_independently_in_process() -> None:
    """Warning off with info on (Triton's switches are not a threshold), and verbose = DEBUG records."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter("text"))
    root.handlers = [handler]
    try:
        settings = LogSettings(level="info", log_format="text")
        settings.update({"log_warning": False})
        log = logging.getLogger("modelport.test_levels")
        log.info("an info line")
        log.warning("a warning line")
        log.error("an error line")
        log.debug("a debug line")
        settings.update({"log_verbose_level": 2, "log_warning": True, "log_error": False})
        log.debug("a verbose line")
        log.critical("a critical line")  # counts as error: off
        text = stream.getvalue()
        assert "an info line" in text and "an error line" in text and "a verbose line" in text
        assert "a warning line" not in text and "a debug line" not in text and "a critical line" not in text
        with pytest.raises(InvalidInput, match="log_verbose_level"):
            settings.update({"log_verbose_level": True})
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]
