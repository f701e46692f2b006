"""The console's routes through the real server with httpx: pages, assets, the live series, model files,
the offline API docs and the management API's CORS rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.http as httpclient

from tests.helpers.server_process import ServerProcess
from tests.helpers.waiting import wait_for
from tests.server.console.conftest import LABELS, REPORT, TOKEN, VOCABULARY

_ASSETS = ("console.js", "try_it.js", "chart.js", "console.css")


def _get(server: ServerProcess, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"http://{server.http_url}{path}", **kwargs)  # type: ignore[arg-type]


def test_a_browser_is_sent_to_the_console_and_an_api_client_is_not(server: ServerProcess) -> None:
    browser = _get(server, "/", headers={"accept": "text/html,application/xhtml+xml"})
    assert browser.status_code == 307 and browser.headers["location"] == "/console"
    client = _get(server, "/")
    assert client.status_code == 404 and "error" in client.json()


def test_pages_are_local_small_and_under_a_content_security_policy(server: ServerProcess) -> None:
    page = _get(server, "/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert f"http://127.0.0.1:{server.ports['management_port']}" in policy  # the page may call management
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {f"/console/assets/{name}" for name in _ASSETS} <= set(referenced)
    total = len(page.content)
    for name in _ASSETS:
        asset = _get(server, f"/console/assets/{name}")
        assert asset.status_code == 200, name
        assert "content-security-policy" in asset.headers
        text = asset.text.replace('"http://www.w3.org/2000/svg"', "")  # SVG's namespace name, not a fetch
        assert not re.search(r"https?://", text), f"{name} refers to another site"
        assert "innerHTML" not in asset.text, f"{name} writes HTML from strings"
        total += len(asset.content)
    assert total < 200_000
    assert _get(server, "/console/assets/../app.py").status_code == 404
    assert _get(server, "/console/assets/missing.js").status_code == 404


def test_model_files_are_the_two_names_only(server: ServerProcess, console_repository: Path) -> None:
    assert _get(server, "/console/api/models/classifier/files/labels.txt").json() == {"labels": LABELS}
    assert _get(server, "/console/api/models/tokens/files/vocabulary.json").json() == VOCABULARY
    missing = _get(server, "/console/api/models/classifier/files/vocabulary.json")
    assert missing.status_code == 404 and "vocabulary.json" in missing.json()["error"]
    refused = _get(server, "/console/api/models/classifier/files/config.yaml")
    assert refused.status_code == 400 and "labels.txt" in refused.json()["error"]
    bad_name = _get(server, "/console/api/models/.hidden/files/labels.txt")
    assert bad_name.status_code == 400 and "model name" in bad_name.json()["error"]
    outside = console_repository.parent / "secret.txt"
    outside.write_text("not for the console")
    link = console_repository / "tokens" / "labels.txt"
    link.symlink_to(outside)
    try:
        escaped = _get(server, "/console/api/models/tokens/files/labels.txt")
        assert escaped.status_code == 400 and "outside" in escaped.json()["error"]
    finally:
        link.unlink()


def test_reports_beside_a_version(server: ServerProcess) -> None:
    assert _get(server, "/console/api/models/classifier/versions/1/reports").json() == {
        "conversion.json": REPORT
    }
    assert _get(server, "/console/api/models/tokens/versions/1/reports").json() == {}
    assert _get(server, "/console/api/models/tokens/versions/x/reports").status_code == 400


def test_the_live_series_follow_traffic(server: ServerProcess) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    features = httpclient.InferInput("features", [1, 16], "FP32")
    features.set_data_from_numpy(np.ones((1, 16), dtype=np.float32))

    def classifier() -> dict[str, Any]:
        """The classifier's entry (an empty one until the sampler's first tick after its load)."""
        live = _get(server, "/console/api/live").json()
        return next((v for v in live["versions"] if v["model"] == "classifier"), {"samples": {"rate": []}})

    def busy() -> bool:
        for _ in range(20):
            client.infer("classifier", [features])
        rates: list[float] = classifier()["samples"]["rate"]
        return bool(rates) and rates[-1] > 0

    try:
        wait_for(busy, "a sample with requests in it", timeout=20)
    finally:
        client.close()
    entry = classifier()
    samples = entry["samples"]
    assert samples["p50_ms"][-1] is not None and 0 < samples["p50_ms"][-1] < 10_000
    assert samples["p99_ms"][-1] >= samples["p50_ms"][-1]
    assert entry["workers"] and entry["queue_capacity"]
    server_info = _get(server, "/console/api/server").json()
    assert server_info["interval_s"] == 2.0 and server_info["window_s"] == 600.0
    assert server_info["management"] == {"port": server.ports["management_port"], "token_required": False}
    assert _get(server, "/console/api/live?since=soon").status_code == 400


def test_api_docs_render_from_local_assets(server: ServerProcess) -> None:
    for page in ("/docs", "/redoc"):
        html = _get(server, page)
        assert html.status_code == 200
        urls = re.findall(r'(?:src|href|url)\s*[=:]\s*["\']([^"\']+)["\']', html.text)
        assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
        for url in urls:
            assert _get(server, url).status_code == 200, url


def test_management_cors_lets_only_the_loopback_console_in_without_a_token(server: ServerProcess) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"http://{server.management_url}/models/classifier",
            headers={
                "origin": origin,
                "access-control-request-method": "PUT",
                "access-control-request-headers": "authorization",
            },
        )

    console = f"http://127.0.0.1:{server.ports['http_port']}"
    allowed = preflight(console)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == console
    assert preflight("http://evil.example").headers.get("access-control-allow-origin") is None
    assert preflight(f"http://evil.example:{server.ports['http_port']}").status_code == 400


def test_with_a_token_any_page_may_ask_but_the_token_still_decides(token_server: ServerProcess) -> None:
    url = f"http://{token_server.management_url}/models"
    origin = {"origin": "http://elsewhere.example"}
    refused = httpx.get(url, headers=origin)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
    answered = httpx.get(url, headers={**origin, "authorization": f"Bearer {TOKEN}"})
    assert answered.status_code == 200
    info = httpx.get(f"http://{token_server.http_url}/console/api/server").json()
    assert info["management"]["token_required"] is True
