"""The Grafana dashboard (deploy/grafana/modelport.json) queries only metrics the real server exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.scrape import scrape
from tests.helpers.server_process import ServerProcess

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "modelport.json"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
)
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are neither functions nor keywords,
    once strings, label matchers, ranges and grouping clauses are removed."""
    text = _RANGE.sub("", _MATCHERS.sub("", _STRING.sub('""', expr)))
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable's metric."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = _LABEL_VALUES.match(query)
            assert match, f"variable {variable['name']}: expected label_values(METRIC, label), got {query}"
            yield f"variable {variable['name']}", match.group(1)


def test_metric_name_extraction_finds_names_and_skips_functions() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, model) (rate(a_seconds_bucket{model=~"$m", x="y z"}[5m])))'
        " / ignoring(outcome) group_left sum without (b) (b_total offset 5m) + on(c) c_gauge and bool 1e3"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c_gauge"}


@pytest.fixture(scope="module")
def exported(server: ServerProcess) -> set[str]:
    """Every sample name the shared server can export (conftest's ``server``)."""
    return scrape(server.metrics_url).exported_names()


def test_every_dashboard_metric_is_exported_by_the_server(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used: dict[str, set[str]] = {}
    for where, expr in dashboard_queries(dashboard):
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    unknown = {name: sorted(places) for name, places in used.items() if name not in exported}
    assert not unknown, f"the dashboard queries metrics the server does not export: {unknown}"
    # The panels the issue asks for are there (the extraction above is not vacuous).
    assert {
        "modelport_requests_total",
        "modelport_request_duration_seconds_bucket",
        "modelport_queue_depth",
        "modelport_batch_size_bucket",
        "modelport_workers",
        "modelport_worker_restarts_total",
    } <= set(used)


def test_dashboard_latency_panels_use_histogram_quantile() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    quantiles = {
        float(q)
        for _, expr in dashboard_queries(dashboard)
        for q in re.findall(r"histogram_quantile\(\s*([0-9.]+)\s*,\s*sum by \(le[^)]*\) \(rate\(", expr)
    }
    assert {0.5, 0.99} <= quantiles
    assert all(
        p.get("datasource", {}).get("uid") == "${datasource}" for p in dashboard["panels"] if "targets" in p
    )
