"""``modelport serve`` options: a ``--config`` YAML file, ``MODELPORT_*`` variables, and their precedence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import start_server


def _body_of(size: int) -> bytes:
    header = orjson.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    )
    return header + b" " * (size - len(header))


def test_config_file_and_environment(tmp_path: Path) -> None:
    write_model(tmp_path / "repo", "m", identity_model("FP32", (-1, 4)))
    settings = tmp_path / "serve.yaml"
    settings.write_text("http-max-body-bytes: 4096\nmodel_control: poll\npoll_interval: 60\n")
    environment = {
        "MODELPORT_CONFIG": str(settings),
        "MODELPORT_MODEL_CONTROL": "explicit",
        "MODELPORT_LOAD_MODELS": "m",
    }
    with start_server(tmp_path / "repo", env=environment) as server:
        url = f"http://{server.http_url}/v2/models/m/infer"
        assert httpx.post(url, content=_body_of(4096)).status_code == 200  # trailing spaces are valid JSON
        too_big = httpx.post(url, content=_body_of(4097))
        assert too_big.status_code == 413
        assert "limit of 4096 bytes" in too_big.json()["error"]
        # The environment (explicit) beats the file (poll): the load endpoint is allowed.
        assert httpx.post(f"http://{server.http_url}/v2/repository/models/m/load").status_code == 200


def test_command_line_beats_environment(tmp_path: Path) -> None:
    write_model(tmp_path, "m", identity_model("FP32", (-1, 4)))
    with start_server(
        tmp_path, "--http-max-body-bytes", "2048", env={"MODELPORT_HTTP_MAX_BODY_BYTES": "8192"}
    ) as server:
        response = httpx.post(f"http://{server.http_url}/v2/models/m/infer", content=_body_of(4000))
        assert response.status_code == 413


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "modelport.server", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_bad_options_exit_2_naming_the_problem(tmp_path: Path) -> None:
    settings = tmp_path / "serve.yaml"
    settings.write_text("http_port: 8000\nhttp_prot: 9000\n")
    result = _serve("--config", str(settings))
    assert result.returncode == 2
    assert f"{settings}: unknown key 'http_prot'" in result.stderr
    result = _serve("--http-port", "70000", "--repository", str(tmp_path))
    assert result.returncode == 2
    assert "http_port: 70000 is not a port number" in result.stderr
    result = _serve("--model-control", "sometimes")
    assert result.returncode == 2
    assert "'sometimes' is not one of" in result.stderr


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    write_model(tmp_path, "m", identity_model())
    with start_server(tmp_path) as server:
        port = server.http_url.rsplit(":", 1)[1]
        result = _serve("--repository", str(tmp_path), "--host", "127.0.0.1", "--http-port", port)
        assert result.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_grpc_port_in_use_exits_1_naming_it_without_a_traceback(tmp_path: Path) -> None:
    write_model(tmp_path, "m", identity_model())
    with start_server(tmp_path) as server:
        port = server.grpc_url.rsplit(":", 1)[1]
        result = _serve("--repository", str(tmp_path), "--host", "127.0.0.1", "--http-port", "0",
                        "--metrics-port", "0", "--management-port", "0", "--grpc-port", port)  # fmt: skip
        assert result.returncode == 1
        assert f"cannot bind the gRPC listener to 127.0.0.1:{port}" in result.stderr
        assert "Traceback" not in result.stderr
