"""Models side by side with the trivial outputs, on drawings no model was trained on.

    python scripts/side_by_side.py --model default --model ~/s2a-runs/pix2pix128-repro/model \
        --data ~/s2a-runs/data/faces128 --out docs/images/side_by_side.png

Judge a model by its pictures next to what doing nothing gives. Rows: the showcase's synthetic
novice faces (``showcase.novice_face``, seeds 0..``--novice``-1) and line art of the MIT-licensed
sprites (``showcase.sprite_line_art``), each with the showcase's hint layer; nothing is picked
from the outputs. Columns: the sketch with its hints | the sketch as output (``floor-sketch``) |
the mean training picture (``floor-mean``, only with ``--data``: an average of the whole training
split, no single dataset picture) | one column per ``--model`` at ``--projection``, seed 0. The
column order is printed. Pipelines without a projection (Pix2Pix) ignore ``--projection``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from showcase import CELL, cell, novice_face, overlay, row_hint, sprite_line_art  # noqa: E402

from sketch2anime.data.image_io import tensor_to_uint8  # noqa: E402
from sketch2anime.evaluation.floors import mean_image  # noqa: E402
from sketch2anime.evaluation.protocol import EvaluationProtocol  # noqa: E402
from sketch2anime.inference import Sketch2AnimePipeline  # noqa: E402

SPRITES = Path(__file__).resolve().parents[1] / "tests" / "assets" / "sprites"


def drawings(novice: int, sprites: int, sprite_folder: Path = SPRITES) -> list[tuple[Image.Image, Image.Image]]:
    """``(sketch L, hint layer RGBA)`` pairs: novice faces first, then sprite line art."""
    if novice < 0 or sprites < 0:
        raise ValueError(f"--novice and --sprites must be 0 or more, got {novice} and {sprites}")
    sketches = [novice_face(seed) for seed in range(novice)]
    paths = sorted(sprite_folder.glob("*.png"))[:sprites]
    if len(paths) < sprites:
        raise ValueError(f"asked for {sprites} sprites, {sprite_folder} has {len(paths)}")
    sketches += [sprite_line_art(path) for path in paths]
    if not sketches:
        raise ValueError("no drawings: give --novice or --sprites above 0")
    return [(sketch, row_hint(sketch, i)) for i, sketch in enumerate(sketches)]


def mean_picture(data: Path, size: int) -> Image.Image:
    """The ``floor-mean`` picture: the mean of the dataset's training colour images at ``size``."""
    paths = EvaluationProtocol(data).training_color_paths()
    mean = mean_image(paths, size)
    return Image.fromarray(tensor_to_uint8(mean))


def figure_rows(pipes: list[Sketch2AnimePipeline], pairs: list[tuple[Image.Image, Image.Image]],
                mean: Image.Image | None, projection: float) -> list[list[Image.Image]]:
    rows = []
    for sketch, hint in pairs:
        row = [overlay(sketch, hint), sketch.convert("RGB")]
        if mean is not None:
            row.append(mean)
        row += [pipe(sketch, hint, projection=projection, seed=0) for pipe in pipes]
        rows.append(row)
    return rows


def column_names(models: list[str], with_mean: bool) -> list[str]:
    return ["sketch with hints", "floor: the sketch as output"] + (["floor: the mean training picture"] if with_mean
                                                                     else []) + [f"model {m}" for m in models]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="a pipeline folder or 'default' (repeat for more columns)")
    parser.add_argument("--data", type=Path, default=None, help="prepared dataset for the mean-picture column")
    parser.add_argument("--novice", type=int, default=4, help="novice face rows")
    parser.add_argument("--sprites", type=int, default=4, help="sprite line-art rows")
    parser.add_argument("--projection", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("docs/images/side_by_side.png"))
    args = parser.parse_args(argv)
    models = args.model or ["default"]
    try:
        pairs = drawings(args.novice, args.sprites)
        pipes = [Sketch2AnimePipeline.from_pretrained(model, device="cpu") for model in models]
        mean = mean_picture(args.data, pipes[0].image_size) if args.data is not None else None
        rows = figure_rows(pipes, pairs, mean, args.projection)
    except (ValueError, FileNotFoundError) as error:
        print(f"side_by_side: {error}", file=sys.stderr)
        return 2
    grid = np.concatenate([np.concatenate([np.asarray(cell(image)) for image in row], axis=1) for row in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out, optimize=True)
    print(f"wrote {args.out}: {len(rows)} rows of {CELL} px cells; columns: " + " | ".join(column_names(models, mean is not None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
