"""Render the README's "sketch -> result" picture from a trained pipeline.

    python scripts/showcase.py --model default --out docs/images/showcase.png

Rows (all inputs drawn or extracted here, nothing hand-picked from the outputs):
  * novice face sketches drawn with a wobbly synthetic pen on a 512 px canvas, as the panel sends them;
  * line art of the MIT-licensed Ren'Py sprites in tests/assets/sprites (head-and-shoulders crop,
    the detail extractor), clean and made rough with the package's rough-sketch simulation;
  * sketches of held-out validation faces of a prepared dataset (``--data``, off by default: the
    committed figure must not show dataset images) and real line art (``--pairs``), if given.
Columns: input sketch | guide at t = 0 | result at t = 0 | guide at t = 1 | result at t = 1 | hint
layer | result with the hint at t = ``--projection``. The guide is the autoencoder's decoding of
the (projected) latent: the "professional" sketch the result follows where the input is rough.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sketch2anime.data.rough import RoughSketchConfig, roughen
from sketch2anime.inference import Sketch2AnimePipeline

CELL = 160
HAIR_COLOURS = [(40, 90, 220), (230, 90, 150), (250, 210, 60), (120, 60, 30), (60, 180, 90), (200, 30, 40)]
BACKGROUND_COLOURS = [(250, 230, 200), (200, 230, 250), (230, 250, 210)]


def wobbly_line(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], rng: np.random.Generator,
                width: int = 7, wobble: float = 3.0) -> None:
    """A pen stroke through ``points`` with a shaky hand: resampled and displaced smoothly."""
    pts = np.asarray(points, dtype=np.float64)
    dense = []
    for a, b in zip(pts[:-1], pts[1:]):
        n = max(2, int(np.hypot(*(b - a)) / 6))
        dense.extend(a + (b - a) * t for t in np.linspace(0, 1, n, endpoint=False))
    dense.append(pts[-1])
    dense = np.asarray(dense)
    noise = np.cumsum(rng.normal(0, wobble * 0.35, dense.shape), axis=0)
    noise -= np.linspace(0, 1, len(dense))[:, None] * noise[-1]  # end where the stroke was meant to end
    draw.line([tuple(p) for p in dense + noise], fill=0, width=width, joint="curve")


def ellipse_points(cx: float, cy: float, rx: float, ry: float, start: float = 0, end: float = 360,
                   n: int = 40) -> list[tuple[float, float]]:
    angles = np.radians(np.linspace(start, end, n))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


HAIR_STYLES = ("long", "bob", "twin tails", "spiky")


def novice_face(seed: int, size: int = 512) -> Image.Image:
    """A face as someone who cannot draw would do it: outline, hair, two eyes, nose, mouth.

    The seed picks the hair style (long, bob, twin tails, spiky, in turn), the fringe, the eye size
    and the mouth, so different seeds are different characters, not one drawing with another wobble.
    """
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    s = size / 512
    j = lambda v, spread=12: v + rng.uniform(-spread, spread)  # noqa: E731 - per-drawing variation
    style = HAIR_STYLES[seed % len(HAIR_STYLES)]
    cx, top, chin = j(256), j(120), j(430)
    half_width = j(135, 15)
    wobbly_line(draw, [(cx - (half_width + 15) * s, 230 * s), (cx - half_width * s, 340 * s), (cx, chin * s),
                       (cx + half_width * s, 340 * s), (cx + (half_width + 15) * s, 230 * s)], rng)  # cheeks, chin
    wobbly_line(draw, ellipse_points(cx, 230 * s, 175 * s, (230 - top + 40) * s, 180, 360), rng)  # hair cap
    teeth = int(rng.integers(4, 8))
    fringe, depth = [(cx - 175 * s, 235 * s)], j(250, 20)
    for k in range(1, teeth + 1):
        x = cx - 175 * s + k * (350 / teeth) * s
        tip = (x - 0.4 * (350 / teeth) * s, j(depth) * s) if style != "spiky" else (x - 0.5 * (350 / teeth) * s, j(depth + 25) * s)
        fringe += [tip, (x, j(170) * s)]
    wobbly_line(draw, fringe, rng, width=6)
    for side in (-1, 1):
        outer = cx + side * 175 * s
        if style == "long":
            wobbly_line(draw, [(outer, 235 * s), (outer + side * 15 * s, j(480) * s)], rng, width=6)
        elif style == "bob":
            wobbly_line(draw, [(outer, 235 * s), (outer + side * 8 * s, 350 * s), (outer + side * 40 * s, j(370) * s)],
                        rng, width=6)
        elif style == "twin tails":
            tail_x = outer + side * 45 * s
            wobbly_line(draw, [(outer, 200 * s), (tail_x + side * 30 * s, 260 * s), (tail_x + side * 20 * s, 400 * s),
                               (tail_x, j(470) * s), (outer + side * 5 * s, 330 * s)], rng, width=6)
        else:  # spiky: short, pointed locks over the ears
            wobbly_line(draw, [(outer, 235 * s), (outer + side * 35 * s, 260 * s), (outer + side * 5 * s, 290 * s),
                               (outer + side * 25 * s, 320 * s), (outer - side * 5 * s, 330 * s)], rng, width=6)
    eye_rx, eye_ry, eye_y = j(34, 8), j(40, 10), j(300, 8)
    for side in (-1, 1):
        ex = cx + side * j(70, 6) * s
        wobbly_line(draw, ellipse_points(ex, eye_y * s, eye_rx * s, eye_ry * s), rng, width=6)  # eye
        wobbly_line(draw, ellipse_points(ex, (eye_y + 8) * s, eye_rx * 0.4 * s, eye_ry * 0.42 * s), rng, width=9)  # iris
        wobbly_line(draw, [(ex - 40 * s, (eye_y - eye_ry - 15) * s), (ex + 35 * s, j(eye_y - eye_ry - 20) * s)], rng,
                    width=6)  # brow
    wobbly_line(draw, [(cx, 345 * s), (cx - 6 * s, 360 * s)], rng, width=5)  # nose
    if rng.random() < 0.5:
        wobbly_line(draw, [(cx - 30 * s, 392 * s), (cx, 400 * s), (cx + 30 * s, 392 * s)], rng, width=6)  # smile
    else:
        wobbly_line(draw, [(cx - 22 * s, 388 * s), (cx + 22 * s, 388 * s), (cx, 410 * s), (cx - 22 * s, 388 * s)], rng,
                    width=6)  # open mouth
    return image


def hint_layer(size: int, hair: tuple[int, int, int], background: tuple[int, int, int]) -> Image.Image:
    """RGBA layer: a hair stroke across the top of the head, background dabs in the top corners."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    s = size / 512
    draw.line([(150 * s, 150 * s), (256 * s, 105 * s), (360 * s, 150 * s)], fill=hair + (255,), width=int(40 * s))
    for x in (30, 482):
        draw.ellipse([(x - 22) * s, 8 * s, (x + 22) * s, 52 * s], fill=background + (255,))
    return layer


def validation_sketches(data: Path, count: int, extractor: str) -> list[Image.Image]:
    records = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    val = [r for r in records if r.get("split") == "val"][:count]
    return [Image.open(data / "sketch" / extractor / f"{r['id']}.png").convert("L") for r in val]


def row_hint(sketch: Image.Image, row: int) -> Image.Image:
    """The figures' hint layer for row ``row``: hair and background colours taken in turn."""
    return hint_layer(sketch.width, HAIR_COLOURS[row % len(HAIR_COLOURS)],
                      BACKGROUND_COLOURS[row % len(BACKGROUND_COLOURS)])


def sprite_line_art(path: Path) -> Image.Image:
    """Head-and-shoulders square of a transparent sprite on white, as line art (detail extractor)."""
    from sketch2anime.data.extractors import make_extractor

    sprite = Image.open(path).convert("RGBA")
    left, top, right, _ = sprite.getbbox()
    side = right - left
    crop = sprite.crop((left, top, right, top + side))
    white = Image.new("RGBA", crop.size, (255, 255, 255, 255))
    rgb = np.asarray(Image.alpha_composite(white, crop).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS))
    return Image.fromarray(make_extractor("detail")(rgb), "L")


def overlay(sketch: Image.Image, hint: Image.Image) -> Image.Image:
    base = sketch.convert("RGBA").resize(hint.size)
    return Image.alpha_composite(base, hint).convert("RGB")


def cell(image: Image.Image) -> Image.Image:
    return image.convert("RGB").resize((CELL, CELL), Image.Resampling.NEAREST if image.width < CELL else
                                       Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", type=Path, default=None, help="prepared dataset (val split; not for committed figures)")
    parser.add_argument("--extractor", default="xdog")
    parser.add_argument("--sprites", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "assets" / "sprites")
    parser.add_argument("--pairs", type=Path, default=None, help="folder with sketch/ of real line art")
    parser.add_argument("--novice", type=int, default=4)
    parser.add_argument("--val", type=int, default=2)
    parser.add_argument("--projection", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/images/showcase.png"))
    args = parser.parse_args(argv)

    pipe = Sketch2AnimePipeline.from_pretrained(args.model, device="cpu")
    rows: list[tuple[str, Image.Image]] = [(f"novice {i}", novice_face(args.seed + i)) for i in range(args.novice)]
    rough = RoughSketchConfig.preset("heavy")
    if args.sprites is not None and args.sprites.is_dir():
        for i, path in enumerate(sorted(args.sprites.glob("*.png"))[:2]):
            sketch = sprite_line_art(path)
            rows.append((f"{path.stem} clean", sketch))
            rng = np.random.default_rng(args.seed + i)
            rows.append((f"{path.stem} rough", Image.fromarray(roughen(np.asarray(sketch), rough, rng))))
    if args.val and args.data is not None and (args.data / "manifest.jsonl").is_file():
        for i, sketch in enumerate(validation_sketches(args.data, args.val, args.extractor)):
            rows.append((f"val {i} clean", sketch))
            rng = np.random.default_rng(args.seed + i)
            rows.append((f"val {i} rough", Image.fromarray(roughen(np.asarray(sketch), rough, rng))))
    if args.pairs is not None:
        for path in sorted((args.pairs / "sketch").iterdir())[:3]:
            rows.append((path.name, Image.open(path).convert("L")))

    blank = Image.new("L", (CELL, CELL), 255)
    sheet = Image.new("RGB", (7 * CELL, len(rows) * CELL), "white")
    for r, (_, sketch) in enumerate(rows):
        hint = row_hint(sketch, r)
        at0, guide0 = pipe(sketch, None, projection=0.0, seed=args.seed, return_projected=True)
        at1, guide1 = pipe(sketch, None, projection=1.0, seed=args.seed, return_projected=True)
        hinted = pipe(sketch, hint, projection=args.projection, seed=args.seed)
        columns = [sketch, guide0 or blank, at0, guide1 or blank, at1, overlay(sketch, hint), hinted]
        for c, picture in enumerate(columns):
            sheet.paste(cell(picture), (c * CELL, r * CELL))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}: {len(rows)} rows (sketch | guide t=0 | result t=0 | guide t=1 | result t=1 | hint | "
          f"result with hint at t={args.projection}), model {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
