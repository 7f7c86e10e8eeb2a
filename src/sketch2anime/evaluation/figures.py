"""Figures of ``sketch2anime evaluate``, drawn with Pillow (no matplotlib dependency): the image grid
(a labelled table of tiles) and the training-curve plots (simple line charts of ``metrics.jsonl``
values against the training step, raw values faint, a moving average on top, in the spirit of
GANime's Figure 7). ``report.py`` re-exports these names.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..checkpoint import atomic_write_bytes
from ..data.image_io import tensor_to_uint8
from ..hint_format import hint_to_display

MIN_TILE = 128
PAD = 4
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
PLOT_SKIP_KEYS = {"step", "time", "epoch"}


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> list[str]:
    """Greedy word wrap; over-long words are cut by characters."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
            continue
        while draw.textlength(word, font=font) > width and len(word) > 1:
            cut = max(1, int(len(word) * width / draw.textlength(word, font=font)) - 1)
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines or [""]


def _line_height(draw: ImageDraw.ImageDraw, font: Any) -> int:
    box = draw.textbbox((0, 0), "Ag", font=font)
    return int(box[3] - box[1]) + 3


# ---------------------------------------------------------------------------------------------
# image grid

def hint_picture(hint: torch.Tensor, sketch: torch.Tensor) -> torch.Tensor:
    """(R, 4, h, w) hints over their (R, 1, S, S) sketches, faint -> (R, 3, S, S) in [-1, 1]."""
    faint = 0.5 + 0.5 * sketch.float()  # ink shows mid-grey, paper white
    return hint_to_display(hint, sketch.shape[-1], background=faint)


def render_grid(sections: list[dict[str, Any]]) -> Image.Image:
    """One labelled table per section, stacked vertically.

    Each section: ``title``, ``sketch`` (R,1,S,S), ``hint`` (R,4,h,w), ``target`` (R,3,S,S) and
    ``columns``: list of (label, outputs (R,3,S,S)). Columns: sketch | hint | outputs... | target.
    Tensors in [-1, 1]; tiles are upscaled (nearest) to at least 128 px.
    """
    if not sections:
        raise ValueError("render_grid needs at least one section")
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _line_height(probe, font)
    size = int(sections[0]["sketch"].shape[-1])
    tile = size * max(1, math.ceil(MIN_TILE / size))
    blocks = []
    for section in sections:
        sketch = section["sketch"].float()
        columns = [("sketch", sketch.expand(-1, 3, -1, -1)), ("hint", hint_picture(section["hint"], sketch))]
        columns += [(label, images.float()) for label, images in section["columns"]]
        columns.append(("target", section["target"].float()))
        rows = sketch.shape[0]
        labels = [_wrap(probe, label, tile - 2, font) for label, _ in columns]
        header = PAD + line_h * (1 + max(len(lines) for lines in labels)) + PAD
        width = PAD + len(columns) * (tile + PAD)
        height = header + rows * (tile + PAD)
        block = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(block)
        draw.text((PAD, PAD), section.get("title", ""), fill=TEXT, font=font)
        for c, ((_, images), lines) in enumerate(zip(columns, labels)):
            left = PAD + c * (tile + PAD)
            for k, text in enumerate(lines):
                draw.text((left + 1, PAD + line_h * (1 + k)), text, fill=TEXT, font=font)
            for r in range(rows):
                picture = tensor_to_uint8(images[r].clamp(-1, 1))
                block.paste(Image.fromarray(picture).resize((tile, tile), Image.Resampling.NEAREST),
                            (left, header + r * (tile + PAD)))
        blocks.append(block)
    canvas = Image.new("RGB", (max(b.width for b in blocks), sum(b.height for b in blocks) + PAD * len(blocks)), BACKGROUND)
    top = 0
    for block in blocks:
        canvas.paste(block, (0, top))
        top += block.height + PAD
    return canvas


# ---------------------------------------------------------------------------------------------
# training curves

def read_training_log(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Series ``name -> [(step, value)]`` from ``run_dir/metrics.jsonl`` and any eval log
    (``eval.jsonl`` or ``eval/metrics.jsonl``, prefixed ``eval/``). Torn or odd lines are skipped."""
    sources = [(run_dir / "metrics.jsonl", ""), (run_dir / "eval.jsonl", "eval/"), (run_dir / "eval" / "metrics.jsonl", "eval/")]
    series: dict[str, list[tuple[float, float]]] = {}
    for path, prefix in sources:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
                step = float(record["step"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            if not isinstance(record, dict):
                continue
            for key, value in record.items():
                if key in PLOT_SKIP_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if math.isfinite(value):
                    series.setdefault(prefix + key, []).append((step, float(value)))
    return {k: sorted(v) for k, v in series.items()}


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or values.size < 3:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def _panel(name: str, points: list[tuple[float, float]], width: int = 360, height: int = 220) -> Image.Image:
    font = _font()
    panel = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(panel)
    line_h = _line_height(draw, font)
    left, right, top, bottom = 52, width - 10, line_h + 8, height - line_h - 8
    draw.text((left, 3), name, fill=TEXT, font=font)
    draw.rectangle([left, top, right, bottom], outline=(150, 150, 150))
    steps = np.array([p[0] for p in points])
    values = np.array([p[1] for p in points])
    x0, x1 = float(steps.min()), float(steps.max())
    y0, y1 = float(values.min()), float(values.max())
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - abs(y0) * 0.05 - 1e-6, y1 + abs(y1) * 0.05 + 1e-6

    def xy(s: np.ndarray, v: np.ndarray) -> list[tuple[float, float]]:
        xs = left + (s - x0) / (x1 - x0) * (right - left)
        ys = bottom - (v - y0) / (y1 - y0) * (bottom - top)
        return list(zip(xs.tolist(), ys.tolist()))

    smooth = _moving_average(values, max(1, len(values) // 20))
    if len(points) == 1:
        (px, py), = xy(steps, values)
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(30, 90, 200))
    else:
        draw.line(xy(steps, values), fill=(170, 195, 235), width=1)
        draw.line(xy(steps, smooth), fill=(30, 90, 200), width=2)
    draw.text((2, top), _fmt(y1), fill=TEXT, font=font)
    draw.text((2, bottom - line_h), _fmt(y0), fill=TEXT, font=font)
    draw.text((left, bottom + 3), _fmt(x0), fill=TEXT, font=font)
    label = f"step {_fmt(x1)}"
    draw.text((right - draw.textlength(label, font=font), bottom + 3), label, fill=TEXT, font=font)
    return panel


def plot_series(title: str, series: dict[str, list[tuple[float, float]]], columns: int = 3) -> Image.Image:
    """A titled figure with one panel per series (losses/metrics against step)."""
    if not series:
        raise ValueError(f"no numeric values to plot for {title}")
    panels = [_panel(name, points) for name, points in series.items()]
    rows = math.ceil(len(panels) / columns)
    pw, ph = panels[0].size
    font = _font()
    title_h = 24
    figure = Image.new("RGB", (min(columns, len(panels)) * pw, title_h + rows * ph), BACKGROUND)
    ImageDraw.Draw(figure).text((8, 6), title, fill=TEXT, font=font)
    for i, panel in enumerate(panels):
        figure.paste(panel, ((i % columns) * pw, title_h + (i // columns) * ph))
    return figure


def plot_training_logs(run_dirs: list[Path], out_dir: Path) -> list[Path]:
    """One PNG per run folder (``out_dir/<run>.png``); runs without a usable log are skipped."""
    written = []
    names: set[str] = set()
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        series = read_training_log(run_dir)
        if not series:
            continue
        name = run_dir.name if run_dir.name != "model" else run_dir.parent.name
        base, i = name or "run", 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.add(name)
        buffer = io.BytesIO()
        plot_series(f"{run_dir}: training curves", series).save(buffer, format="PNG")
        path = Path(out_dir) / f"{name}.png"
        atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    return written
