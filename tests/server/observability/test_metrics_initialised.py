"""Failure counters exist at 0 for every served model version, before anything fails.

Without the series, a dashboard panel shows "no data" and an alert on ``increase(...) > 0`` needs an
``absent()`` beside it. Read from the real server's ``/metrics`` with prometheus_client's parser.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import tritonclient.http as httpclient

from tests.helpers.scrape import scrape
from tests.helpers.server_process import ServerProcess, start_server

# Failure counters of a model version: the series must be there, at 0, for a version that never failed.
FAILURE_COUNTERS = ("modelport_model_load_failures_total", "modelport_worker_restarts_total")


def test_failure_counters_exist_at_zero_for_every_served_version(server: ServerProcess) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        index = client.get_model_repository_index()
        served = {(row["name"], row["version"]) for row in index if row["state"] == "READY"}
    finally:
        client.close()
    assert served
    metrics = scrape(server.metrics_url)
    for name in FAILURE_COUNTERS:
        present = {
            (sample.labels["model"], sample.labels["version"]): sample.value
            for sample in metrics.samples
            if sample.name == name
        }
        missing = served - set(present)
        assert not missing, f"{name} has no series for {sorted(missing)}"
        assert all(present[version] == 0 for version in served), f"{name}: {present}"


def test_request_failure_outcomes_exist_at_zero_for_every_served_version(serving_repository: Path) -> None:
    failures = ("invalid_input", "queue_full", "timeout", "server_error")
    with start_server(serving_repository) as server:  # its own: the shared server has seen failures
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            index = client.get_model_repository_index()
            served = {(row["name"], row["version"]) for row in index if row["state"] == "READY"}
            expected = {(m, v, p, o) for m, v in served for p in ("http", "grpc") for o in failures}
            before = _request_counts(server)
            missing = expected - set(before)
            assert not missing, f"modelport_requests_total has no series for {sorted(missing)[:5]}"
            assert all(before[key] == 0 for key in expected), before
            # The zero series is the one that counts: one bad request moves it to 1.
            model, version = sorted(served)[0]
            response = httpx.post(
                f"http://{server.http_url}/v2/models/{model}/versions/{version}/infer", content=b"{not json"
            )
            assert response.status_code == 400
            after = _request_counts(server)
            assert after[(model, version, "http", "invalid_input")] == 1
            assert after[(model, version, "grpc", "invalid_input")] == 0
        finally:
            client.close()


def _request_counts(server: ServerProcess) -> dict[tuple[str, str, str, str], float]:
    return {
        (s.labels["model"], s.labels["version"], s.labels["protocol"], s.labels["outcome"]): s.value
        for s in scrape(server.metrics_url).samples
        if s.name == "modelport_requests_total"
    }
