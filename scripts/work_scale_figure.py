"""The README's work-scale figure: full-length sprite line art coloured at the model's size and at 2x.

    python scripts/work_scale_figure.py --model default --out docs/images/work_scale.png

Rows: the MIT-licensed Ren'Py sprites in tests/assets/sprites, whole, centred on a 512 px page and
turned into line art by the detail extractor (no hints, seed 0, t = 0.5). Columns: the line art |
the result at the model's size, enlarged to 256 px as the panel shows it | the same weights run at
twice the size (``pipe.at_scale(2)``). Nothing is picked from the outputs: every sprite is shown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sketch2anime.data.extractors import make_extractor
from sketch2anime.inference import Sketch2AnimePipeline

SPRITES = Path(__file__).resolve().parents[1] / "tests" / "assets" / "sprites"
CELL = 256


def full_length_line_art(path: Path, side: int = 512) -> Image.Image:
    """A whole transparent sprite scaled to fit a white ``side`` px page, as line art (L)."""
    sprite = Image.open(path).convert("RGBA")
    sprite = sprite.crop(sprite.getbbox())
    scale = side / max(sprite.size)
    sprite = sprite.resize((round(sprite.width * scale), round(sprite.height * scale)), Image.Resampling.LANCZOS)
    page = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    page.alpha_composite(sprite, ((side - sprite.width) // 2, (side - sprite.height) // 2))
    return Image.fromarray(make_extractor("detail")(np.asarray(page.convert("RGB"))), "L")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=Path("docs/images/work_scale.png"))
    args = parser.parse_args()
    pipe = Sketch2AnimePipeline.from_pretrained(args.model, device="cpu")
    twice = pipe.at_scale(2)
    sprites = sorted(SPRITES.glob("*.png"))
    header = 20
    sheet = Image.new("RGB", (3 * CELL, header + len(sprites) * CELL), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(("full-length line art (sprite)", f"at {pipe.image_size} px, enlarged",
                                 f"at {twice.image_size} px (work scale 2)")):
        draw.text((col * CELL + 4, 4), title, fill=(0, 0, 0))
    for row, path in enumerate(sprites):
        sketch = full_length_line_art(path)
        pictures = [sketch.convert("RGB"), pipe(sketch, seed=0, output_size="model"),
                    twice(sketch, seed=0, output_size="model")]
        for col, picture in enumerate(pictures):
            sheet.paste(picture.resize((CELL, CELL), Image.Resampling.BICUBIC), (col * CELL, header + row * CELL))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
