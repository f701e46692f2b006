"""Failure counters exist at 0 for every served model version, before anything fails.

Without the series, a dashboard panel shows "no data" and an alert on ``increase(...) > 0`` needs an
``absent()`` beside it. Read from the real server's ``/metrics`` with prometheus_client's parser.
"""

from __future__ import annotations

import tritonclient.http as httpclient

from tests.helpers.scrape import scrape
from tests.helpers.server_process import ServerProcess

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
