"""The drawing panel's update time as a user gets it: a real server, a real browser, mouse strokes.

    python benchmarks/panel_latency.py [--model default] [--strokes 30] [--flatten] [--work-scale 2]

Starts ``sketch2anime serve`` (uvicorn on 127.0.0.1) and Debian's headless Chromium through
Playwright, draws ``--strokes`` strokes with the mouse (one result per stroke), and reads what the
page itself measured for each update (``data-*-ms`` on the result canvas): the whole update from the
moment it starts building the upload to the moment the new result is drawn, and its parts: encode
(the sketch as an uncompressed PGM at 4x the model's resolution, the hint layer as a 128 px PNG when
it changed), upload + HTTP
(the request minus the server's own time), server (the whole route) and the model call inside it,
decode (``createImageBitmap``) and draw. Pen-up to pixels adds the page's short wait after a stroke
(the debounce), reported on its own row.

Consistency while drawing: after each update the result is read back at the model's resolution and
compared with the previous one (mean absolute difference per channel, 0-255, and the share of pixels
that moved by more than 32). The reference for "a different face" is the panel's own variations of
the final drawing (candidate 1 against candidates 2-4).

``--flatten`` ticks the panel's Flat colours first (the server flattens each result, ``flatten.py``,
counted in the server row but not in the model row) and writes its own section. ``--work-scale 2``
ticks Large line art (the model run at twice its size, ``work_scale.py``), also in its own section.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

import numpy as np

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


PARTS = ("update", "encode", "transport", "server", "model", "decode", "draw", "pen_up")
# The result canvas read back at the model's resolution (what the server sent, before scaling up).
READ_RESULT = """(side) => {
  const small = document.createElement('canvas');
  small.width = small.height = side;
  const ctx = small.getContext('2d');
  ctx.drawImage(document.getElementById('result'), 0, 0, side, side);
  return Array.from(ctx.getImageData(0, 0, side, side).data);
}"""


def default_model_field(field: str) -> str:
    """Page script answering one field of the server's default model (``/api/models``)."""
    return ("async () => { const b = await (await fetch('/api/models')).json(); "
            f"return b.models.find((m) => m.name === b.default).{field}; }}")


MODEL_SIZE = default_model_field("image_size")
RUNNING_PRECISION = default_model_field("precision")


def rgb(values: list[int], side: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(side, side, 4)[..., :3]


def change(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean absolute difference 0-255, share of pixels whose largest channel change is > 32)."""
    diff = np.abs(a - b)
    return float(diff.mean()), float((diff.max(axis=-1) > 32).mean())


def measure(model: str, strokes: int, hint_every: int, timeout_s: float,
            flatten: bool = False, work_scale: int = 1,
            precision: str = "auto") -> tuple[dict[str, list[float]], dict[str, list], str]:
    """Per update: each part in ms (``PARTS``); consistency: change against the previous update,
    split by the kind of stroke, and the variations reference; and the precision the server's model runs in."""
    samples: dict[str, list[float]] = {key: [] for key in PARTS}
    consistency: dict[str, list] = {"pen": [], "hint": [], "repeat": [], "variations": []}
    with panel_page(model, timeout_s, precision) as page:
        side = int(page.evaluate(MODEL_SIZE))
        running = str(page.evaluate(RUNNING_PRECISION))
        for switch, wanted in (("#flatten", flatten), ("#work-scale", work_scale == 2)):
            if not wanted:
                continue
            if not page.is_visible(switch):
                raise SystemExit(f"the panel offers no {switch} switch for {model} (work scale: guided models only)")
            before = int(page.get_attribute("#result", "data-generation"))
            page.check(switch)
            page.wait_for_function("(n) => Number(document.getElementById('result').dataset.generation) > n"
                                   " && document.getElementById('busy').hidden", arg=before, timeout=timeout_s * 1000)
        previous = rgb(page.evaluate(READ_RESULT, side), side)
        for index in range(strokes):
            hint = hint_every and index % hint_every == hint_every - 1
            page.click("button[data-tool=hint]" if hint else "button[data-tool=pen]")
            drag(page, stroke_points(index), timeout_s, steps=2)
            data = page.evaluate("() => ({...document.getElementById('result').dataset})")
            request, server = float(data["requestMs"]), float(data["serverMs"])
            for key, value in (("update", data["updateMs"]), ("encode", data["encodeMs"]),
                               ("transport", request - server), ("server", server), ("model", data["modelMs"]),
                               ("decode", data["decodeMs"]), ("draw", data["drawMs"]), ("pen_up", data["penUpMs"])):
                samples[key].append(float(value))
            current = rgb(page.evaluate(READ_RESULT, side), side)
            if index > 0:  # the first stroke replaces the empty-canvas result
                consistency["hint" if hint else "pen"].append(change(previous, current))
            previous = current
        # The same drawing once more (the seed field's change event, same value): any change is noise.
        before = int(page.get_attribute("#result", "data-generation"))
        page.evaluate("() => document.getElementById('seed').dispatchEvent(new Event('change'))")
        page.wait_for_function("(n) => Number(document.getElementById('result').dataset.generation) > n"
                               " && document.getElementById('busy').hidden", arg=before, timeout=timeout_s * 1000)
        consistency["repeat"].append(change(previous, rgb(page.evaluate(READ_RESULT, side), side)))
        page.click("#variations-button")
        page.wait_for_selector("#variations img:nth-child(4)", timeout=timeout_s * 1000)
        urls = page.evaluate("() => Array.from(document.querySelectorAll('#variations img')).map((i) => i.src)")
        candidates = [np.asarray(_decode(url).resize((side, side)), dtype=np.float32) for url in urls]
        consistency["variations"] = [change(candidates[0], other) for other in candidates[1:]]
    return samples, consistency, running


def _decode(url: str):
    import base64
    import io

    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def latency_table(samples: dict[str, list[float]]) -> tuple[str, Summary, Summary]:
    labels = {"update": "**whole update**, as the page measures it (encode, upload, server, decode, draw)",
              "encode": "encode: sketch as an uncompressed PGM at 4x the model's size, hint layer as a 128 px PNG when it changed",
              "transport": "upload + HTTP: the request minus the server's own time",
              "server": "server: the whole route (multipart fields, checks, model call, PNG + JSON reply)",
              "model": "model call inside the server (decode, prepare, generate at the model's size)",
              "decode": "decode the result PNG (createImageBitmap)",
              "draw": "draw it scaled up on the 512 px canvas",
              "pen_up": "pen-up to pixels (adds the 20 ms wait after a stroke and any update still running)"}
    rows, summaries = [], {}
    for key, label in labels.items():
        summary = summarise([v / 1000.0 for v in samples[key]])
        summaries[key] = summary
        rows.append([label, summary.count, *summary.ms(), format_ms(summary.mean)])
    table = markdown_table(["what", "updates", "p50 ms", "p95 ms", "mean ms"], rows)
    return table, summaries["update"], summaries["pen_up"]


def consistency_table(consistency: dict[str, list]) -> str:
    labels = {"pen": "consecutive updates, after a pen stroke (same seed)",
              "hint": "consecutive updates, after a hint stroke (same seed)",
              "repeat": "the final drawing sent again (same seed)",
              "variations": "reference: variation 1 against variations 2-4 of the final drawing"}
    rows = []
    for key, label in labels.items():
        values = np.asarray(consistency[key], dtype=float).reshape(-1, 2)
        if len(values) == 0:
            continue
        rows.append([label, len(values), f"{np.median(values[:, 0]):.1f}", f"{np.percentile(values[:, 0], 95):.1f}",
                     f"{100 * np.median(values[:, 1]):.1f}", f"{100 * np.percentile(values[:, 1], 95):.1f}"])
    return markdown_table(["pair", "pairs", "mean |Δ| p50", "mean |Δ| p95", "% pixels Δ>32 p50",
                           "% pixels Δ>32 p95"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="pipeline folder or 'default'")
    parser.add_argument("--strokes", type=int, default=30, help="strokes drawn (one update each)")
    parser.add_argument("--hint-every", type=int, default=4, help="every N-th stroke is a hint stroke (0: none)")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--flatten", action="store_true", help="with the panel's Flat colours ticked")
    parser.add_argument("--work-scale", type=int, choices=[1, 2], default=1,
                        help="2: with the panel's Large line art ticked (the model at twice its size)")
    parser.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"],
                        help="serve --precision (default auto, as the panel starts)")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    args = parser.parse_args(argv)
    if args.strokes < 1:
        parser.error("--strokes must be >= 1")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")

    hardware = describe_hardware([2])
    samples, consistency, running = measure(args.model, args.strokes, args.hint_every, args.timeout_s,
                                            args.flatten, args.work_scale, args.precision)
    table, update, pen_up = latency_table(samples)
    met = "MET" if update.p95 * 1000 < TARGET_MS else "NOT MET"
    verdict = (f"Panel target < {TARGET_MS:.0f} ms per update on a 2-core CPU, whole update in the browser: "
               f"**{met}** (p95 {update.p95 * 1000:.1f} ms, p50 {update.p50 * 1000:.1f} ms, "
               f"model {args.model} in {running}"
               f"{', Flat colours' if args.flatten else ''}{', Large line art (2x)' if args.work_scale == 2 else ''}); "
               f"pen-up to pixels p95 {pen_up.p95 * 1000:.1f} ms.")
    steady = consistency_table(consistency)
    print(table, verdict, "", steady, sep="\n")
    if not args.no_write:
        notes = ["server and headless Chromium run on the same machine and share its cores",
                 "the server answers at the model's resolution (`output_size=model`); the page scales the "
                 "result up on its canvas",
                 f"{args.strokes} strokes, every {args.hint_every}-th a hint stroke; the page waits 20 ms after a "
                 "stroke (150 ms after slider or seed changes) before it sends, counted only in the pen-up row",
                 "consistency: results read back at the model's resolution; mean |Δ| is per channel on 0-255"]
        body = (table + "\n\n" + verdict + "\n\n### Consistency while drawing\n\n" + steady
                + "\n\nThe seed stays fixed until the user presses ↻ Random, so each update changes only "
                  "what the new stroke changes; the variations row shows what a jump to another face looks like.")
        name, title = (SECTION, "Panel update latency (real browser)")
        if args.flatten:
            name, title = name + "_flat", title.replace("latency", "latency with Flat colours")
        if args.work_scale == 2:
            name, title = name + "_work2", title.replace("latency", "latency with Large line art (2x)")
        section = section_text(name, title, hardware,
                               command_line(None if argv is None else [__file__, *argv]), body, notes)
        print(f"wrote {write_section(Path(args.doc), name, section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
