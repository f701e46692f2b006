"""The console in a real browser: headless Debian chromium driven by Playwright against the real server.

One server and one page walk through what an operator does: the model list, a failed model's reason, a
version's details and reports, the live chart moving under traffic, a try-it round trip checked against a
direct infer, text through the vocabulary, and scaling through the management API. Screenshots are kept
under build/console/ (gitignored) as test artefacts.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from playwright.sync_api import Browser, FilePayload, Page

from examples.console_screenshot import CHROMIUM, chromium, send_traffic, try_it
from tests.helpers.server_process import ServerProcess
from tests.server.console.conftest import LABELS, TOKEN

ARTEFACTS = Path(__file__).resolve().parents[3] / "build" / "console"
pytestmark = pytest.mark.timeout(120)


def _csp_violation(text: str, problems: list[str]) -> None:
    if "Content Security Policy" in text:
        problems.append(text)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: make test installs Debian's chromium (tests/system_packages.sh)"
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def page(server: ServerProcess, browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    problems: list[str] = []
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    opened.on("console", lambda message: _csp_violation(message.text, problems))
    opened.goto(f"http://{server.http_url}/", wait_until="load")  # a browser's Accept: redirected
    opened.wait_for_selector('#models tr[data-model="broken"]')
    yield opened, problems
    opened.close()


def test_the_console_as_an_operator_uses_it(server: ServerProcess, page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    assert tab.url.endswith("/console")
    listed = tab.eval_on_selector_all("#models tbody tr", "rows => rows.map(r => r.dataset.model)")
    assert sorted(set(listed)) == ["broken", "classifier", "picture", "tokens"]

    # The failed model's reason is the server's own.
    index = httpx.post(f"http://{server.http_url}/v2/repository/index", json={}).json()
    reason = next(row["reason"] for row in index if row["name"] == "broken")
    assert reason and tab.inner_text('#models tr[data-model="broken"] .reason') == reason
    tab.click('#models tr[data-model="broken"] button.model')
    tab.wait_for_selector("#details .failure")
    assert tab.inner_text("#details .failure .reason") == reason
    tab.screenshot(path=str(ARTEFACTS / "failed-model.png"))

    # A version: signature, provider, report tables (model strings shown as text, never as markup).
    tab.click('#models tr[data-model="classifier"] button.model')
    tab.wait_for_selector(".version .try-it")
    assert "features" in tab.inner_text(".version table.signature")
    assert "execution provider: cpu" in tab.inner_text(".version .provider")
    report = tab.locator('details[data-report="conversion.json"]')
    report.locator("summary").click()
    assert "<img src=x" in report.inner_text() and report.locator("img").count() == 0
    assert report.locator("table.report-table tr").count() == 3  # the parity table: header + 2 rows
    assert tab.evaluate("window.pwned") is None

    # The live request-rate chart moves under traffic.
    rate_chart = tab.locator(".version figure svg.chart").first
    stop = threading.Event()
    sender = threading.Thread(target=send_traffic, args=(server.http_url, "classifier", 20.0, stop))
    sender.start()
    try:
        tab.wait_for_function(
            "() => Number(document.querySelector('.version svg.chart').dataset.last) > 0", timeout=15_000
        )
        points = int(rate_chart.get_attribute("data-points") or 0)
        tab.wait_for_function(
            f"() => Number(document.querySelector('.version svg.chart').dataset.points) > {points}",
            timeout=10_000,
        )
    finally:
        stop.set()
        sender.join()
    assert rate_chart.locator("polyline").count() >= 1
    assert int(tab.inner_text(".version table.workers tbody tr td:last-child")) > 0  # batches served

    # Try it: the browser's answer is the server's answer to the same tensor.
    try_it(tab, "classifier")
    sent = json.loads(tab.input_value('.try-it textarea[data-input="features"]'))
    shown = json.loads(tab.inner_text('.try-result pre[data-output="probabilities"]'))
    features = httpclient.InferInput("features", [1, 16], "FP32")
    features.set_data_from_numpy(np.asarray(sent, dtype=np.float32).reshape(1, 16))
    with httpclient.InferenceServerClient(server.http_url) as client:
        direct = client.infer("classifier", [features]).as_numpy("probabilities")
    assert direct is not None
    np.testing.assert_allclose(np.asarray(shown, dtype=np.float32), direct.ravel(), rtol=1e-6)
    assert tab.inner_text(".try-result table.labels tr.top td.label") == LABELS[int(direct.argmax())]
    tab.screenshot(path=str(ARTEFACTS / "console.png"), full_page=True)
    assert problems == []


def test_text_goes_through_the_vocabulary(page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    tab.click('#models tr[data-model="tokens"] button.model')
    tab.wait_for_selector('.version[data-version="1"] .try-it .text-input')
    tab.fill(".try-it .text-input", "The CAT sat, on the mat!")
    tab.click(".try-it .encode")
    expected = [2, 3, 4, 1, 2, 1]  # the, cat, sat, [UNK], the, [UNK]: as examples/vocabulary.py encodes it
    assert json.loads(tab.input_value('.try-it textarea[data-input="INPUT0"]')) == expected
    tab.click(".try-it .send")
    tab.wait_for_selector('.try-result pre[data-output="OUTPUT0"]')
    assert json.loads(tab.inner_text('.try-result pre[data-output="OUTPUT0"]')) == expected
    assert problems == []


def _png(width: int, height: int, white_columns: int) -> bytes:
    """An RGB PNG, white in its first ``white_columns`` columns and black elsewhere."""
    row = b"\x00" + b"".join(b"\xff\xff\xff" if x < white_columns else b"\x00\x00\x00" for x in range(width))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def test_an_image_is_resized_in_the_browser_and_sent(page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    tab.click('#models tr[data-model="picture"] button.model')
    tab.wait_for_selector(".version .try-it .image-file")
    tab.set_input_files(
        ".try-it .image-file",
        files=[FilePayload(name="half.png", mimeType="image/png", buffer=_png(32, 32, 16))],
    )
    box = '.try-it textarea[data-input="INPUT0"]'
    tab.wait_for_function(f"() => JSON.parse(document.querySelector('{box}').value)[0] > 0.5")
    pixels = np.asarray(json.loads(tab.input_value(box)), dtype=np.float32).reshape(8, 8)
    assert (pixels[:, 0] > 0.9).all() and (pixels[:, 7] < 0.1).all()  # 32x32 -> 8x8, white left half
    tab.click(".try-it .send")
    tab.wait_for_selector('.try-result pre[data-output="OUTPUT0"]')
    echoed = np.asarray(
        json.loads(tab.inner_text('.try-result pre[data-output="OUTPUT0"]')), dtype=np.float32
    )
    np.testing.assert_array_equal(echoed.reshape(8, 8), pixels)
    assert problems == []


def test_management_actions_appear_once_connected_and_scale(
    server: ServerProcess, page: tuple[Page, list[str]]
) -> None:
    tab, problems = page
    tab.click('#models tr[data-model="classifier"] button.model')
    tab.wait_for_selector(".version .try-it")
    assert tab.locator(".management-actions button").count() == 0
    tab.click("#management-connect")  # this server has no token: loopback only, as the page is
    tab.wait_for_selector(".management-actions button")
    tab.fill(".management-actions .min-workers", "2")
    tab.fill(".management-actions .max-workers", "2")
    tab.click(".management-actions button >> text=Scale")
    tab.wait_for_function("() => document.querySelectorAll('.version table.workers tbody tr').length === 2")
    described = httpx.get(f"http://{server.management_url}/models/classifier").json()
    assert len(described[0]["workers"]) == 2
    tab.screenshot(path=str(ARTEFACTS / "scaled.png"), full_page=True)
    assert problems == []


def test_with_a_token_actions_appear_only_once_the_token_is_given(
    token_server: ServerProcess, browser: Browser
) -> None:
    tab = browser.new_page()
    tab.goto(f"http://{token_server.http_url}/console")
    tab.wait_for_selector('#models tr[data-model="classifier"]')
    tab.click('#models tr[data-model="classifier"] button.model')
    tab.wait_for_selector(".version .try-it")
    tab.click("#management-connect")
    tab.wait_for_function("() => document.getElementById('management-status').textContent.includes('token')")
    assert tab.locator(".management-actions button").count() == 0
    tab.fill("#management-token", TOKEN)
    tab.click("#management-connect")
    tab.wait_for_selector(".management-actions button >> text=Unload")
    tab.click(".management-actions button >> text=Unload")
    tab.wait_for_function(
        "() => !document.querySelector('#models tr[data-model=\"classifier\"] .state')"
        ".textContent.includes('READY')"
    )
    index = httpx.post(f"http://{token_server.http_url}/v2/repository/index", json={}).json()
    assert [row["state"] for row in index if row["name"] == "classifier"] != ["READY"]
    tab.close()
