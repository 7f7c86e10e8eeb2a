"""The README's "flat colours" picture: the model's result beside the same result flattened.

    python scripts/flatten_figure.py --model default --out docs/images/flatten.png

Rows: the showcase's synthetic novice faces (``showcase.novice_face``, seeds 0..``--count``-1) and
line art of the MIT-licensed sprites (``showcase.sprite_line_art``), nothing picked from the outputs.
Columns: sketch | result without hints | flattened (``generate --flatten``) | sketch with the
showcase's hint layer | result with hints | flattened. Results at the panel's default projection.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from showcase import cell, novice_face, overlay, row_hint, sprite_line_art  # noqa: E402

from sketch2anime.inference import Sketch2AnimePipeline  # noqa: E402

SPRITES = Path(__file__).resolve().parents[1] / "tests" / "assets" / "sprites"


def figure_rows(pipe: Sketch2AnimePipeline, sketches: list[Image.Image], projection: float,
                strength: float) -> list[list[Image.Image]]:
    rows = []
    for i, sketch in enumerate(sketches):
        hint = row_hint(sketch, i)
        row = [sketch.convert("RGB")]
        for layer in (None, hint):
            if layer is not None:
                row.append(overlay(sketch, layer))
            row.append(pipe(sketch, layer, projection=projection, seed=0))
            row.append(pipe(sketch, layer, projection=projection, seed=0, flatten=strength))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--count", type=int, default=4, help="novice faces")
    parser.add_argument("--sprites", type=int, default=2, help="sprite line-art rows")
    parser.add_argument("--projection", type=float, default=0.5)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("docs/images/flatten.png"))
    args = parser.parse_args(argv)
    pipe = Sketch2AnimePipeline.from_pretrained(args.model, device="cpu")
    sketches = [novice_face(seed) for seed in range(args.count)]
    sketches += [sprite_line_art(path) for path in sorted(SPRITES.glob("*.png"))[:args.sprites]]
    rows = figure_rows(pipe, sketches, args.projection, args.strength)
    grid = np.concatenate([np.concatenate([np.asarray(cell(image)) for image in row], axis=1) for row in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
