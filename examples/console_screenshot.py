"""A screenshot of the operator console of a running server, with some traffic on one model.

Start the server first (``make serve`` serves ``models/`` on :8000), then::

    python -m examples.console_screenshot --out docs/images/console.png

It drives Debian's ``chromium`` headless through Playwright (``executable_path``: no browser is downloaded),
sends requests to ``--model`` for a few sampling intervals so the live charts have lines, opens the model in
the console, fills its try-it form with random values, sends it, and saves the page as a PNG.
:func:`chromium` is the same launch the console's browser test uses.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from playwright.sync_api import Browser, Page, sync_playwright

__all__ = ["CHROMIUM", "chromium", "send_traffic", "try_it"]

CHROMIUM = "/usr/bin/chromium"
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian chromium under Playwright, closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def send_traffic(url: str, model: str, seconds: float, stop: threading.Event | None = None) -> int:
    """Infer ``model`` at ``url`` (host:port) with random inputs from its metadata for ``seconds`` (or until
    ``stop``); the number of requests sent."""
    sent, deadline = 0, time.monotonic() + seconds
    rng = np.random.default_rng(0)
    with httpclient.InferenceServerClient(url) as client:
        metadata = client.get_model_metadata(model)
        inputs = []
        for spec in metadata["inputs"]:
            shape = [1 if int(d) < 0 else int(d) for d in spec["shape"]]
            tensor = httpclient.InferInput(spec["name"], shape, spec["datatype"])
            tensor.set_data_from_numpy(rng.random(shape).astype(np.float32))
            inputs.append(tensor)
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            client.infer(model, inputs)
            sent += 1
    return sent


def try_it(page: Page, model: str) -> None:
    """Open ``model`` in the console, fill its try-it form with random values and send it; returns once the
    answer is shown."""
    page.click(f'#models tr[data-model="{model}"] button.model')
    page.wait_for_selector(".version .try-it")
    page.click(".try-it .fill-random")
    page.click(".try-it .send")
    page.wait_for_selector(".try-result .output-data")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="127.0.0.1:8000", help="the server's HTTP host:port")
    parser.add_argument("--model", default="digits", help="the model to send traffic to and try")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to send traffic first")
    parser.add_argument("--out", type=Path, default=Path("build/console.png"), help="the PNG to write")
    args = parser.parse_args(argv)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://{args.url}/console")
        page.wait_for_selector("#models tbody tr")
        send_traffic(args.url, args.model, args.seconds)
        try_it(page, args.model)
        page.wait_for_timeout(2500)  # one more sample on the charts
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
