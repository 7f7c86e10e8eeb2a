"""Image geometry of a pipeline: any input size and aspect ratio <-> the model's square.

Inputs are padded to a square on their background (white paper for sketches, transparent for
hint layers), scaled to the model's size (long strips shrunk before padding), and results are
cropped back to the input's frame (``back_to_input``). ``translate`` moves a batch by whole
pixels (variations of pipelines without an autoencoder).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image


def square_box(width: int, height: int) -> tuple[int, int, int]:
    side = max(width, height)
    return side, (side - width) // 2, (side - height) // 2


def pad_to_square(image: Image.Image, fill: int | tuple[int, ...]) -> Image.Image:
    side, left, top = square_box(*image.size)
    if image.size == (side, side):
        return image
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, (left, top))
    return canvas


def fit_square(image: Image.Image, size: int, fill: int | tuple[int, ...],
                shrink: Callable[[Image.Image, tuple[int, int]], Image.Image] | None = None) -> Image.Image:
    """Pad ``image`` to a square on ``fill`` and scale it to ``size``. A long side over ``size`` is
    shrunk (with ``shrink``) *before* padding, so no step holds more than the input's own pixels or
    ``size``² (padding a 20000x400 strip first made a 400-MP canvas)."""
    width, height = image.size
    side = max(width, height)
    if side > size:
        scale = size / side
        image = (shrink or _resize)(image, (max(1, round(width * scale)), max(1, round(height * scale))))
    return _resize(pad_to_square(image, fill), (size, size))


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    shrinking = size[0] < image.size[0]
    return image.resize(size, Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC)


def shrink_sketch(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize an L sketch, thickening its ink first when shrinking by 2x or more.

    A 4 px pen line on a 512 px canvas is half a pixel at 64 px: a plain resize turns it into pale
    grey, which the models never saw in training (their lines are dark, 1-2 px). A min filter as
    wide as the shrink factor keeps every drawn line at least 1.5 px and dark at the model's size,
    whichever pixel grid it falls on.
    """
    factor = image.size[0] / size[0]
    kernel = 2 * int(factor / 2) + 1
    if kernel > 1:  # OpenCV's erosion is the same min filter, ~50x faster than PIL's on a 512 px canvas
        import cv2

        image = Image.fromarray(cv2.erode(np.asarray(image), np.ones((kernel, kernel), np.uint8)), "L")
    return _resize(image, size)


OUTPUT_SIZES = ("input", "model")


def back_to_input(image: Image.Image, width: int, height: int, output_size: str = "input",
                   max_side: int | None = None) -> Image.Image:
    """The model's square output -> the input's frame: at the input's size (``"input"``), or at the
    model's own resolution with the padding cropped off (``"model"``: the longer side is the model's
    size; a live preview then sends a few KB instead of an upscaled 512 px PNG). ``max_side`` caps
    the longer side of an ``"input"`` result (same framing, smaller)."""
    side, left, top = square_box(width, height)
    scale = image.size[0] / side
    if output_size == "model":
        box = (round(left * scale), round(top * scale), round((left + width) * scale), round((top + height) * scale))
        return image.crop((box[0], box[1], max(box[2], box[0] + 1), max(box[3], box[1] + 1)))
    out_w, out_h = width, height
    if max_side is not None and max(width, height) > max_side:
        shrink = max_side / max(width, height)
        out_w, out_h = max(1, round(width * shrink)), max(1, round(height * shrink))
    # Resample only the crop box: scaling the whole padded square first cost side² pixels.
    box = (left * scale, top * scale, (left + width) * scale, (top + height) * scale)
    upscaling = out_w >= box[2] - box[0]
    return image.resize((out_w, out_h), Image.Resampling.BICUBIC if upscaling else Image.Resampling.LANCZOS, box=box)


def translate(x: torch.Tensor, shift: tuple[int, int], fill: float | None) -> torch.Tensor:
    """Translate (N, C, H, W) by (dx, dy) pixels; uncovered pixels get ``fill`` (None: edge values)."""
    dx, dy = shift
    if dx == 0 and dy == 0:
        return x
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    if fill is None:
        padded = torch.nn.functional.pad(x, pad, mode="replicate")
    else:
        padded = torch.nn.functional.pad(x, pad, mode="constant", value=fill)
    h, w = x.shape[-2:]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + h, left:left + w]
