"""``sketch2anime contact-sheet``: a PNG grid to eyeball a prepared dataset.

One row per randomly picked image; columns: colour | one per sketch kind in the dataset (detail,
xdog, hed, real, ...) | rough (``roughen`` of the first sketch) | hint (simulated hint colours on
light grey, upscaled). Small datasets are magnified (nearest neighbour) so cells are at least
``MIN_CELL`` pixels and the column labels fit.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .dataset import _read_color, _read_sketch
from .hints import HintConfig, simulate_hints
from .manifest import read_dataset_info, read_manifest
from .rough import RoughSketchConfig, roughen

MIN_CELL = 128
PAD = 4
HEADER = 18
HINT_BACKGROUND = 224


def sheet_geometry(image_size: int, columns: int, rows: int) -> tuple[int, int, int]:
    """(cell side, sheet width, sheet height) in pixels."""
    cell = image_size * max(1, math.ceil(MIN_CELL / image_size))
    return cell, PAD + columns * (cell + PAD), HEADER + PAD + rows * (cell + PAD)


def render_contact_sheet(dataset_dir: str | Path, out_png: str | Path, rows: int = 6, seed: int = 0,
                         rough: RoughSketchConfig | None = None, hints: HintConfig | None = None) -> Path:
    """Render ``rows`` random images of the prepared dataset ``dataset_dir`` to ``out_png``.

    The same ``seed`` picks the same images and the same rough sketches and hints.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    root = Path(dataset_dir)
    info = read_dataset_info(root)
    records = sorted(read_manifest(root), key=lambda r: r.id)
    if not records:
        raise ValueError(f"{root} has no images")
    rough = rough or RoughSketchConfig()
    hints = hints or HintConfig()
    kinds = list(info.extractors)
    labels = ["colour", *kinds, "rough", "hint"]
    size = info.size
    cell, width, height = sheet_geometry(size, len(labels), min(rows, len(records)))
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(records), size=min(rows, len(records)), replace=False))

    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for c, label in enumerate(labels):
        draw.text((PAD + c * (cell + PAD) + 2, 3), label, fill=(0, 0, 0), font=font)

    def paste(image: Image.Image, row: int, column: int) -> None:
        if image.size != (cell, cell):
            image = image.resize((cell, cell), Image.Resampling.NEAREST)
        sheet.paste(image.convert("RGB"), (PAD + column * (cell + PAD), HEADER + PAD + row * (cell + PAD)))

    for row, i in enumerate(picked):
        record = records[int(i)]
        color = _read_color(root / record.color, size)
        paste(Image.fromarray(color), row, 0)
        first_sketch = None
        for k, kind in enumerate(kinds):
            path = record.sketch_path(kind)
            if path is None or not (root / path).is_file():
                continue  # left blank: this image lacks that sketch
            sketch = _read_sketch(root / path, size)
            first_sketch = sketch if first_sketch is None else first_sketch
            paste(Image.fromarray(sketch), row, 1 + k)
        if first_sketch is not None:
            paste(Image.fromarray(roughen(first_sketch, rough, rng)), row, 1 + len(kinds))
        hint_rgb, mask = simulate_hints(color, hints, rng)
        canvas = np.full(hint_rgb.shape, HINT_BACKGROUND, dtype=np.uint8)
        canvas[mask] = hint_rgb[mask]
        paste(Image.fromarray(canvas), row, 2 + len(kinds))

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png
