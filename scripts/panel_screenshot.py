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
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.browser_session import drag, panel_page  # noqa: E402


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
    with panel_page(args.model, timeout_s=60) as page:
        for stroke in FACE_STROKES:
            drag(page, stroke)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out.with_name(args.out.stem + "_no_hint.png")))
        before = mean_colour(page, HAIR_HINT)
        page.click("button[data-tool=hint]")
        page.fill("#hint-hex", args.hair)
        page.press("#hint-hex", "Enter")
        drag(page, HAIR_HINT)
        after = mean_colour(page, HAIR_HINT)
        page.screenshot(path=str(args.out))
    print(f"wrote {args.out}; result colour under the hair hint: before {[round(v) for v in before]}, "
          f"after {[round(v) for v in after]} (hint {args.hair})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
