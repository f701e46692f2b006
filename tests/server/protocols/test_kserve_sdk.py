"""The server through KServe's own Python SDK (``InferenceRESTClient``, protocol v2), and the KServe routes
its README section tells users to curl.

KServe's SDK reads a body from the health routes (``{"live": true}``, ``{"ready": true}``); an empty 200 made
it raise ``JSONDecodeError``. Triton's clients read only the status, so both keep working. ``GET /v2/models``
is KServe's model list, ``{"models": [...]}``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.helpers.kserve_sdk import kserve_python
from tests.helpers.server_process import ServerProcess
from tests.server.conftest import VERSIONED

PROBE = Path(__file__).resolve().parents[2] / "helpers" / "kserve_probe.py"


@pytest.mark.timeout(900)
def test_kserve_sdk_checks_health_and_infers(server: ServerProcess) -> None:
    python = kserve_python()
    result = subprocess.run(
        [str(python), str(PROBE), f"http://{server.http_url}", "simple"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert answers["live"] is True and answers["ready"] is True and answers["model_ready"] is True
    assert answers["outputs"]["OUTPUT0"] == answers["expected_output0"]


def test_health_bodies_are_kserves_and_tritonclient_still_reads_them(server: ServerProcess) -> None:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=10) as rest:
        for path, body in (("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True})):
            answer = rest.get(path)
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/json"
            assert answer.json() == body
        assert rest.get("/v2/models/simple/ready").json() == {"name": "simple", "ready": True}
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("simple")
    finally:
        client.close()


def test_model_list_names_every_model_that_serves(server: ServerProcess) -> None:
    answer = httpx.get(f"http://{server.http_url}/v2/models", timeout=10)
    assert answer.status_code == 200
    models = answer.json()["models"]
    assert models == sorted(models)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        index = client.get_model_repository_index(as_json=True)["models"]
    finally:
        client.close()
    ready = {entry["name"] for entry in index if entry.get("state") == "READY"}
    assert set(models) == ready
    assert {"simple", VERSIONED} <= set(models)
