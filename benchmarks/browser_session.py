"""A real panel session for repo tools: ``sketch2anime serve`` on a free port plus headless Chromium.

Used by benchmarks/panel_latency.py and scripts/panel_screenshot.py. Debian's Chromium at
/usr/bin/chromium is driven through Playwright's Python package (no ``playwright install``).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def panel_page(model: str, timeout_s: float = 60.0, precision: str = "auto") -> Iterator[Any]:
    """Yield a Playwright page showing the panel of a freshly started server (``serve --precision``),
    after its first result."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sketch2anime.cli", "serve", "--model", model,
                               "--host", "127.0.0.1", "--port", str(port), "--precision", precision],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:  # the server is still loading the model
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the panel did not come up: {server.stderr.read().decode()[-2000:]}")
                    time.sleep(0.5)
            page.wait_for_function("() => Number(document.getElementById('result').dataset.generation) > 0",
                                   timeout=timeout_s * 1000)
            try:
                yield page
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


def drag(page: Any, points: list[tuple[float, float]], timeout_s: float = 60.0, steps: int = 4) -> None:
    """Draw through ``points`` (canvas pixels, 0..512) with the mouse and wait for the new result."""
    box = page.locator("#sketch-layer").bounding_box()
    scale = box["width"] / 512
    before = int(page.get_attribute("#result", "data-generation"))
    page.mouse.move(box["x"] + points[0][0] * scale, box["y"] + points[0][1] * scale)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=steps)
    page.mouse.up()
    page.wait_for_function("(n) => Number(document.getElementById('result').dataset.generation) > n"
                           " && document.getElementById('busy').hidden", arg=before, timeout=timeout_s * 1000)
