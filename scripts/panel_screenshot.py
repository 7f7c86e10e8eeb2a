"""Screenshot the drawing panel as a new user would use it: draw a face, add a hair hint.

    python scripts/panel_screenshot.py --model default --out docs/images/panel.png

Starts ``sketch2anime serve`` (a real uvicorn server on 127.0.0.1), drives Debian's Chromium with
Playwright's mouse (pointer events, exactly as a person drawing), draws a face in a few strokes,
screenshots after each stroke's result, paints a hair-colour hint, and saves the final screenshot.
Prints the mean colour of the result under the hint before and after it, so the claim "the hint
steered the colour" can be checked from the output.
"""

from __future__ import annotations

import argparse
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 24) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(start, end, n)]


FACE_STROKES: list[list[tuple[float, float]]] = [
    [(106, 230), (126, 340), (256, 430), (386, 340), (406, 230)],  # cheeks and chin
    arc(256, 230, 175, 150, 180, 360),  # top of the hair
    [(81, 235), (120, 250), (140, 175), (178, 250), (198, 170), (236, 250), (256, 165), (276, 250), (314, 170),
     (334, 250), (372, 175), (392, 250), (431, 235)],  # fringe
    arc(186, 300, 34, 40, 0, 360), arc(326, 300, 34, 40, 0, 360),  # eyes
    arc(186, 308, 12, 16, 0, 360), arc(326, 308, 12, 16, 0, 360),  # irises
    [(81, 235), (70, 480)], [(431, 235), (442, 480)],  # long hair
    [(226, 392), (256, 400), (286, 392)],  # mouth
]
HAIR_HINT = [(150, 150), (256, 100), (362, 150)]


def mean_colour(page, points: list[tuple[float, float]]) -> list[float]:
    return page.evaluate("""(pts) => { const c = document.getElementById('result').getContext('2d');
        const s = [0, 0, 0]; for (const [x, y] of pts) { const d = c.getImageData(x, y, 1, 1).data;
        for (let i = 0; i < 3; i++) s[i] += d[i] / pts.length; } return s; }""",
                         [[round(x * 512 / 512), round(y)] for x, y in points])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--hair", default="#3060e0", help="hair hint colour (HEX)")
    parser.add_argument("--out", type=Path, default=Path("docs/images/panel.png"))
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sketch2anime.cli", "serve", "--model", args.model,
                               "--host", "127.0.0.1", "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}/"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            for _ in range(120):
                try:
                    page.goto(url)
                    break
                except Exception:  # the server is still loading the model
                    time.sleep(0.5)
            else:
                raise SystemExit(f"the panel did not come up at {url}")
            page.wait_for_function("() => Number(document.getElementById('result').dataset.generation) > 0",
                                   timeout=30000)
            box = page.locator("#sketch-layer").bounding_box()
            scale = box["width"] / 512

            def drag(points: list[tuple[float, float]]) -> None:
                before = int(page.get_attribute("#result", "data-generation"))
                page.mouse.move(box["x"] + points[0][0] * scale, box["y"] + points[0][1] * scale)
                page.mouse.down()
                for x, y in points[1:]:
                    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=4)
                page.mouse.up()
                page.wait_for_function(
                    "(n) => Number(document.getElementById('result').dataset.generation) > n"
                    " && document.getElementById('busy').hidden", arg=before, timeout=30000)

            for stroke in FACE_STROKES:
                drag(stroke)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out.with_name(args.out.stem + "_no_hint.png")))
            before = mean_colour(page, HAIR_HINT)
            page.click("button[data-tool=hint]")
            page.fill("#hint-hex", args.hair)
            page.press("#hint-hex", "Enter")
            drag(HAIR_HINT)
            after = mean_colour(page, HAIR_HINT)
            page.screenshot(path=str(args.out))
            browser.close()
        print(f"wrote {args.out}; result colour under the hair hint: before {[round(v) for v in before]}, "
              f"after {[round(v) for v in after]} (hint {args.hair})")
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
