"""Line-style augmentation: make one extractor's sketch look like a pen, a pencil, a scan or a phone photo.

A model trained on three extractors still learns their exact look (line width, pure black on pure
white). Users draw with other tools. ``restyle`` changes the *look* of the lines, never where they
are (``rough.py`` changes where they are), with each effect drawn independently:

* width: lines one pixel wider (a fatter pen; thinning would erase 1 px lines);
* darkness: ink lighter than black (pencil, light pen pressure), paper slightly grey (a scan);
* blur: a Gaussian of sigma in ``blur_sigma`` (a soft pencil, a resized photo);
* binarise: hard threshold (a 1-bit brush, a thresholded scan);
* noise: Gaussian grain on the paper (scanner or camera noise).

Works on HxW uint8 (255 paper, 0 ink); a pure function of sketch, config and rng state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LineStyleConfig:
    """Probabilities of the effects and their ranges ``(low, high)``.

    ink_level: grey value the darkest ink is mapped to (0 = black). paper_level: value paper is
    mapped to (255 = white). blur_sigma in pixels. binarise_threshold: ink where the value is
    below it. noise_std: grain on the 0-255 scale.
    """

    width_probability: float = 0.3
    darkness_probability: float = 0.4
    ink_level: tuple[float, float] = (0.0, 140.0)
    paper_level: tuple[float, float] = (215.0, 255.0)
    blur_probability: float = 0.25
    blur_sigma: tuple[float, float] = (0.4, 1.0)
    binarise_probability: float = 0.15
    binarise_threshold: tuple[float, float] = (120.0, 230.0)
    noise_probability: float = 0.2
    noise_std: tuple[float, float] = (2.0, 10.0)

    def __post_init__(self) -> None:
        for name in ("width_probability", "darkness_probability", "blur_probability", "binarise_probability",
                     "noise_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"line_style.{name} must lie in [0, 1], got {getattr(self, name)}")
        for name, low, high in (("ink_level", 0, 255), ("paper_level", 0, 255), ("blur_sigma", 0, 10),
                                ("binarise_threshold", 0, 255), ("noise_std", 0, 128)):
            pair = getattr(self, name)
            if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
                raise ValueError(f"line_style.{name} must be a range (low, high) within [{low}, {high}], got {pair}")
        if self.ink_level[1] >= self.paper_level[0]:
            raise ValueError("line_style.ink_level must stay darker than line_style.paper_level")


def _uniform(rng: np.random.Generator, pair: tuple[float, float]) -> float:
    return float(rng.uniform(pair[0], pair[1]))


def restyle(sketch: np.ndarray, config: LineStyleConfig, rng: np.random.Generator) -> np.ndarray:
    """HxW uint8 sketch -> the same lines in another style (HxW uint8)."""
    if not isinstance(sketch, np.ndarray) or sketch.dtype != np.uint8 or sketch.ndim != 2:
        raise ValueError("restyle needs an HxW uint8 sketch (255 paper, 0 ink)")
    # Every draw happens whatever the outcome, so one effect's probability never shifts another's.
    draws = rng.random(5)
    ink, paper = _uniform(rng, config.ink_level), _uniform(rng, config.paper_level)
    sigma = _uniform(rng, config.blur_sigma)
    threshold = _uniform(rng, config.binarise_threshold)
    noise_std = _uniform(rng, config.noise_std)

    out = sketch
    if draws[0] < config.width_probability:
        out = cv2.erode(out, np.ones((2, 2), np.uint8))  # a min filter: dark ink grows
    values = out.astype(np.float32)
    if draws[3] < config.binarise_probability:
        values = np.where(values < threshold, 0.0, 255.0).astype(np.float32)
    if draws[2] < config.blur_probability:
        values = cv2.GaussianBlur(values, (0, 0), sigma)
    if draws[1] < config.darkness_probability:
        values = ink + values * ((paper - ink) / 255.0)
    if draws[4] < config.noise_probability:
        values = values + rng.normal(0.0, noise_std, size=values.shape).astype(np.float32)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
