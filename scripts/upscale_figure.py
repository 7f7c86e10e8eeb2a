"""Render the README's upscaling figure: browser-scaled result | anime upscaler | upscaler + the user's lines.

    sketch2anime weights upscaler          # once
    python scripts/upscale_figure.py --out docs/images/upscale.png

From the shipped example (``examples/sketches/face.png`` with ``examples/hints/face.png``): the
model's native result scaled to ``--side`` by bicubic, as a browser shows it; the same result
enlarged by the installed anime upscalers (``upscale`` = side / model size: 4 = animevideov3, 8 =
animevideov3 then waifu2x); and that with the user's own lines multiplied over it (``lines=1``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from sketch2anime import Sketch2AnimePipeline

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--sketch", type=Path, default=REPO / "examples" / "sketches" / "face.png")
    parser.add_argument("--hint", type=Path, default=REPO / "examples" / "hints" / "face.png")
    parser.add_argument("--side", type=int, default=512, help="side of each panel")
    parser.add_argument("--out", type=Path, default=Path("docs/images/upscale.png"))
    args = parser.parse_args(argv)

    pipe = Sketch2AnimePipeline.from_pretrained(args.model, device="cpu")
    factor = args.side // pipe.image_size
    if factor not in (2, 4, 8):
        raise SystemExit(f"--side {args.side} must be 2, 4 or 8 times the model's {pipe.image_size} px")
    native = pipe(args.sketch, hint=args.hint, output_size="model")
    panels = [
        (f"{pipe.image_size} px result, bicubic", native.resize((args.side, args.side), Image.Resampling.BICUBIC)),
        (f"--upscale {factor}", pipe(args.sketch, hint=args.hint, output_size="model", upscale=factor)),
        (f"--upscale {factor} --lines", pipe(args.sketch, hint=args.hint, output_size="model", upscale=factor,
                                             lines=1.0)),
    ]
    label_h = 22
    sheet = Image.new("RGB", (3 * args.side, args.side + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, picture) in enumerate(panels):
        sheet.paste(picture.convert("RGB").resize((args.side, args.side)), (i * args.side, label_h))
        draw.text((i * args.side + 6, 4), label, fill=(0, 0, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}: {' | '.join(label for label, _ in panels)} (model {args.model})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
