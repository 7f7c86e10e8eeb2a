"""Write the small ``examples/`` folder that the README's commands use.

    python scripts/make_examples.py [--out examples]

Everything is synthetic or MIT-licensed (no dataset image): ``sketches/face.png`` is a novice face
drawn by ``scripts/showcase.py``'s wobbly pen; ``sketches/sprite.png`` is XDoG line art of a Ren'Py
sprite from tests/assets/sprites (MIT); ``hints/face.png`` is an RGBA hint layer (blue hair, background
dabs) and ``hints/face_on_white.png`` the same hints painted on white paper without alpha (the rule
for such layers: white = no hint).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from showcase import hint_layer, novice_face  # noqa: E402  (a sibling script, not a package)

HAIR, BACKGROUND = (48, 96, 224), (240, 200, 120)


def sprite_line_art(size: int = 256) -> Image.Image:
    """XDoG lines of the MIT sprite's head and shoulders on white, ``size`` square."""
    from sketch2anime.data.extractors import make_extractor

    sprite = Image.open(ROOT / "tests/assets/sprites/lucy_happy.png").convert("RGBA")
    width = sprite.width
    crop = sprite.crop((0, 0, width, width))  # the top square: head and shoulders
    paper = Image.new("RGBA", crop.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(paper, crop).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    lines = make_extractor("xdog")(np.asarray(rgb), np.random.default_rng(0))
    return Image.fromarray(np.asarray(lines, dtype=np.uint8), "L")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    (args.out / "sketches").mkdir(parents=True, exist_ok=True)
    (args.out / "hints").mkdir(parents=True, exist_ok=True)
    novice_face(seed=1).save(args.out / "sketches/face.png", optimize=True)
    sprite_line_art().save(args.out / "sketches/sprite.png", optimize=True)
    hints = hint_layer(512, HAIR, BACKGROUND)
    hints.save(args.out / "hints/face.png", optimize=True)
    on_white = Image.alpha_composite(Image.new("RGBA", hints.size, (255, 255, 255, 255)), hints).convert("RGB")
    on_white.save(args.out / "hints/face_on_white.png", optimize=True)
    for path in sorted(args.out.rglob("*.png")):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
