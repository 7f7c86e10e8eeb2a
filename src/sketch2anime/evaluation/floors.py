"""Trivial outputs every model is scored against, on exactly the same inputs.

A score means little on its own: a soft mean face can reach a respectable SSIM while ignoring the
sketch. ``sketch2anime evaluate`` therefore adds three pseudo-models to every run (``--no-floors``
drops them), and every table shows them next to the models:

* ``floor-sketch``: the input sketch itself as a grey RGB picture (what "doing nothing" scores);
* ``floor-mean``: the mean colour image of the dataset's **training** split, the same picture for
  every input (what a mean-face model scores; its input sensitivity is exactly 0);
* ``ref-colour16``: a reference, not a floor: it **cheats** by reading the target. The target
  area-averaged to 16x16, upscaled back bilinearly and multiplied by the sketch mapped to [0, 1]
  (ink darkens it). It shows what "right colours in the right places under the given lines" scores
  with no detail at all; a good model should approach it.

All three ignore hints, so they also give the hint-ΔE00 a model must beat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

FLOOR_SKETCH = "floor-sketch"
FLOOR_MEAN = "floor-mean"
REF_COLOUR16 = "ref-colour16"
FLOOR_NAMES = (FLOOR_SKETCH, FLOOR_MEAN, REF_COLOUR16)
FLOOR_LABELS = {
    FLOOR_SKETCH: "floor: the input sketch as output",
    FLOOR_MEAN: "floor: mean training image (same for every input)",
    REF_COLOUR16: "reference: true colours at 16 px x sketch lines (reads the target)",
}
COLOUR_REFERENCE_SIZE = 16


def sketch_as_output(sketch: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) sketch in [-1, 1] -> (B, 3, S, S) grey RGB picture of it."""
    return sketch.float().expand(-1, 3, -1, -1).clone()


def colour16_times_lines(target: torch.Tensor, sketch: torch.Tensor, size: int = COLOUR_REFERENCE_SIZE) -> torch.Tensor:
    """(B, 3, S, S) target and (B, 1, S, S) sketch in [-1, 1] -> (B, 3, S, S) in [-1, 1].

    The target area-averaged to ``size`` x ``size`` and upscaled bilinearly keeps only the colour
    layout; multiplying by the sketch in [0, 1] (paper 1, ink 0) draws the lines into it."""
    s = target.shape[-1]
    if sketch.shape[-1] != s:
        raise ValueError(f"sketch side {sketch.shape[-1]} differs from the target's {s}")
    small = F.interpolate(target.float(), size=(min(size, s), min(size, s)), mode="area")
    colours = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    out01 = (colours + 1) / 2 * (sketch.float() + 1) / 2
    return (out01 * 2 - 1).clamp(-1, 1)


def mean_image(color_paths: list[Path], size: int) -> torch.Tensor:
    """(3, size, size) mean in [-1, 1] of the colour images (resized to ``size`` if they differ)."""
    from ..data.image_io import load_rgb, resize_square

    if not color_paths:
        raise ValueError("the mean-image floor needs the dataset's training colour images (it has no train split); "
                         "run with --no-floors or prepare the dataset with a validation fraction below 1")
    total = np.zeros((size, size, 3), dtype=np.float64)
    for path in color_paths:
        image = load_rgb(path)
        if image.size != (size, size):
            image = resize_square(image, size)
        total += np.asarray(image, dtype=np.float64)
    mean = total / len(color_paths)
    return torch.from_numpy(mean).permute(2, 0, 1).float().div(127.5).sub(1.0)


def floor_models(train_color_paths: list[Path], size: int) -> list[Any]:
    """The three pseudo-models as ``EvalModel``s (outputs at the batch's size).

    The mean image is computed once at ``size`` (the main dataset's) and resized for other sets."""
    from .evaluate import EvalModel

    mean = mean_image(train_color_paths, size)

    def run_mean(batch: Any, projection: float | None, seed: int) -> torch.Tensor:
        s = batch.target.shape[-1]
        picture = mean if s == size else F.interpolate(mean[None], size=(s, s), mode="bilinear",
                                                       align_corners=False, antialias=True)[0]
        return picture.expand(batch.target.shape[0], -1, -1, -1).clone()

    common = {"uses_hints": False, "projections": (None,)}
    return [
        EvalModel(name=FLOOR_SKETCH, source=FLOOR_SKETCH, kind="floor", label=FLOOR_LABELS[FLOOR_SKETCH],
                  run=lambda batch, p, s: sketch_as_output(batch.sketch), **common),
        EvalModel(name=FLOOR_MEAN, source=FLOOR_MEAN, kind="floor", label=FLOOR_LABELS[FLOOR_MEAN], run=run_mean,
                  info={"training_images": len(train_color_paths)}, **common),
        EvalModel(name=REF_COLOUR16, source=REF_COLOUR16, kind="reference", label=FLOOR_LABELS[REF_COLOUR16],
                  run=lambda batch, p, s: colour16_times_lines(batch.target, batch.sketch), **common),
    ]
