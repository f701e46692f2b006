"""What the real server logs by default, and the access log's flag and sampling rate.

By default: no access log (a busy server would write tens of MB a minute) and one line per event (the
REST, metrics and management listeners are three uvicorn servers, whose own start and stop lines would
come three times). With ``--access-log --access-log-sample F``: about F of the successful requests and
every failed one.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import ServerExited, start_server
from tests.helpers.tensors import http_ones
from tests.helpers.waiting import wait_for

MODEL = "identity"
_ACCESS = "modelport.access:"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    write_model(root, MODEL, identity_model("FP32", (-1, 4)))
    return root


def _access_lines(logs: str) -> list[str]:
    return [line for line in logs.splitlines() if _ACCESS in line]


def test_by_default_no_access_log_and_one_line_per_event(repository: Path) -> None:
    with start_server(repository) as server:
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            for _ in range(5):
                client.infer(MODEL, http_ones(1))
            with pytest.raises(InferenceServerException):
                client.infer("no-such-model", http_ones(1))
        finally:
            client.close()
        assert httpx.get(f"http://{server.metrics_url}/metrics", timeout=10).status_code == 200
        assert server.stop() == 0
        logs = server.logs()
    assert _access_lines(logs) == [], logs
    for event in ("modelport ready in", "shutting down: finishing in-flight requests", "stopped"):
        assert sum(event in line for line in logs.splitlines()) == 1, f"{event!r}:\n{logs}"
    # uvicorn's own lifecycle lines, once per listener, would repeat the server's.
    for repeated in ("Started server process", "Shutting down", "Finished server process"):
        assert repeated not in logs, logs


def test_the_access_log_samples_successes_and_keeps_every_failure(repository: Path) -> None:
    successes, failures, sample = 400, 12, 0.25
    with start_server(repository, "--access-log", "--access-log-sample", str(sample)) as server:
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            for index in range(successes):
                client.infer(MODEL, http_ones(1), request_id=f"ok-{index}")
            for index in range(failures):
                with pytest.raises(InferenceServerException):
                    client.infer(MODEL, http_ones(1, "INT32"), request_id=f"bad-{index}")
        finally:
            client.close()
        # The last failure's line is written by the log thread shortly after its answer.
        last = f"request_id=bad-{failures - 1} "
        wait_for(lambda: last in server.logs(), "the last failure's access line", timeout=10)
        lines = _access_lines(server.logs())
    failed = [line for line in lines if "request_id=bad-" in line]
    logged = [line for line in lines if "request_id=ok-" in line]
    assert len(failed) == failures, lines
    # Binomial(400, 0.25): mean 100, standard deviation ~8.7; these bounds are more than 5 deviations out.
    assert 55 <= len(logged) <= 145, f"{len(logged)} of {successes} successes logged at sample {sample}"


def test_the_sampling_rate_is_a_fraction(repository: Path) -> None:
    refused = pytest.raises(ServerExited, match=r"access.log.sample")
    with refused, start_server(repository, "--access-log", "--access-log-sample", "1.5"):
        pass
