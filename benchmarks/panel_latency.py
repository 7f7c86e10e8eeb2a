"""The drawing panel's update time as a user gets it: a real server, a real browser, mouse strokes.

    python benchmarks/panel_latency.py [--model default] [--strokes 30]

Starts ``sketch2anime serve`` (uvicorn on 127.0.0.1) and Debian's headless Chromium through
Playwright, draws ``--strokes`` strokes with the mouse (one result per stroke), and reads what the
page itself measured for each update: from the moment it starts encoding the layers to the moment
the new result is drawn (PNG encoding of the 512 px sketch and hint layers, upload, the server's
whole request, decoding, drawing; ``data-update-ms``), and the model call inside the server
(``elapsed_ms``). The page's 150 ms debounce after a stroke is a deliberate wait and not counted.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

from benchmarks.browser_session import CHROMIUM, drag, panel_page
from benchmarks.hardware import describe_hardware
from benchmarks.report import command_line, markdown_table, section_text, write_section
from benchmarks.timing import Summary, format_ms, summarise

SECTION = "panel_latency"
TARGET_MS = 100.0


def stroke_points(index: int) -> list[tuple[float, float]]:
    """A varied, face-sized stroke in canvas pixels (0..512): arcs around the centre."""
    radius = 80 + (index * 37) % 150
    start = (index * 53) % 360
    return [(256 + radius * math.cos(math.radians(a)), 256 + 0.9 * radius * math.sin(math.radians(a)))
            for a in range(start, start + 100, 10)]


def measure(model: str, strokes: int, hint_every: int, timeout_s: float) -> dict[str, list[float]]:
    """Per update: ``update`` (page-measured, ms) and ``model`` (server-side model call, ms)."""
    samples: dict[str, list[float]] = {"update": [], "model": []}
    with panel_page(model, timeout_s) as page:
        for index in range(strokes):
            hint = hint_every and index % hint_every == hint_every - 1
            page.click("button[data-tool=hint]" if hint else "button[data-tool=pen]")
            drag(page, stroke_points(index), timeout_s, steps=2)
            samples["update"].append(float(page.get_attribute("#result", "data-update-ms")))
            samples["model"].append(float(page.get_attribute("#result", "data-model-ms")))
    return samples


def latency_table(samples: dict[str, list[float]]) -> tuple[str, Summary]:
    labels = {"update": "whole update, as the page measures it (encode 512 px sketch + 128 px hint PNG, upload, server, decode, draw)",
              "model": "model call inside the server (prepare + generate + 64 px output)"}
    rows, summaries = [], {}
    for key, label in labels.items():
        summary = summarise([v / 1000.0 for v in samples[key]])
        summaries[key] = summary
        rows.append([label, summary.count, *summary.ms(), format_ms(summary.mean)])
    return markdown_table(["what", "updates", "p50 ms", "p95 ms", "mean ms"], rows), summaries["update"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="pipeline folder or 'default'")
    parser.add_argument("--strokes", type=int, default=30, help="strokes drawn (one update each)")
    parser.add_argument("--hint-every", type=int, default=4, help="every N-th stroke is a hint stroke (0: none)")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    args = parser.parse_args(argv)
    if args.strokes < 1:
        parser.error("--strokes must be >= 1")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")

    hardware = describe_hardware([2])
    samples = measure(args.model, args.strokes, args.hint_every, args.timeout_s)
    table, update = latency_table(samples)
    met = "MET" if update.p95 * 1000 < TARGET_MS else "NOT MET"
    verdict = (f"Panel target < {TARGET_MS:.0f} ms per update on a 2-core CPU, whole update in the browser: "
               f"**{met}** (p95 {update.p95 * 1000:.1f} ms, p50 {update.p50 * 1000:.1f} ms, model {args.model}).")
    print(table)
    print()
    print(verdict)
    if not args.no_write:
        notes = ["server and headless Chromium run on the same machine and share its cores",
                 "the server answers at the model's resolution (`output_size=model`); the page scales the "
                 "result up on its canvas",
                 f"{args.strokes} strokes, every {args.hint_every}-th a hint stroke; the 150 ms debounce is not counted"]
        section = section_text(SECTION, "Panel update latency (real browser)", hardware,
                               command_line(None if argv is None else [__file__, *argv]), table + "\n\n" + verdict, notes)
        print(f"wrote {write_section(Path(args.doc), SECTION, section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
