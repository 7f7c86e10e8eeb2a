"""``PairedSketchDataset``: the torch Dataset over a folder made by ``sketch2anime prepare``.

Each item is a dict::

    image         (3, S, S) float32 in [-1, 1]   colour image
    sketch        (1, S, S) float32 in [-1, 1]   clean sketch (paper +1, ink -1), one of the image's
                                                 extractors chosen at random
    rough_sketch  (1, S, S)                      roughened copy (``roughen``) with probability
                                                 ``rough_probability``, else the clean sketch;
                                                 then restyled (``line_style.restyle``: width,
                                                 darkness, blur, binarising, noise) with
                                                 probability ``line_style_probability``
    hint          (4, S/d, S/d)                  simulated colour hints (``hint_to_tensor``)
    index         int, id  str

Randomness: every item draws from generators seeded by ``(seed, epoch, index)`` (call
``set_epoch`` at the start of each epoch), so a run is reproducible whatever the number of
DataLoader workers, and workers never repeat each other. With ``fixed=True`` (evaluation) the
randomness depends on ``(seed, index)`` only: every epoch and every model sees the same inputs.
With DataLoader ``persistent_workers=True`` the workers keep their own copy of the dataset, so
``set_epoch`` does not reach them; leave that option off (the default) to get per-epoch variety.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from ..hint_format import hint_to_tensor
from .cutout import add_backdrop_hints, random_cut_out
from .figure import HALF_BODY_HEADS, check_details, check_head_scales, random_figure
from .hints import HintConfig, simulate_hints
from .image_io import rgb_to_tensor, sketch_to_tensor
from .manifest import DatasetInfo, ManifestRecord, read_dataset_info, read_manifest
from .line_style import LineStyleConfig, restyle
from .rough import RoughSketchConfig, roughen
from .zoom import random_zoom_out

SPLITS = ("train", "val", "all")
_STREAM_TAG = 0x5A2A  # keeps these streams apart from other users of the same seed


@dataclass(frozen=True)
class DatasetConfig:
    """Which part of a prepared dataset to serve and how to augment it.

    root: the prepared folder. split: "train", "val" or "all". extractors: sketch kinds to draw
    from (empty = all the dataset has). rough_probability: share of items whose ``rough_sketch`` is
    roughened. line_style_probability: share whose ``rough_sketch`` is restyled. flip: random
    horizontal flips. zoom_out_probability / zoom_out_scale: share of items shrunk by a factor in
    that range onto white paper (``zoom.py``), picture and clean sketch alike. cutout_probability:
    share of items cut to a random outlined silhouette on white paper (``cutout.py``), after the
    zoom-out, so the model learns that paper outside a figure's outline stays paper;
    cutout_backdrop_probability: share of those whose outside is a flat colour asked for by hint
    dabs instead. figure_probability: share of items drawn as the head of a flat-coloured,
    outlined half-body figure on paper (``figure.py``; its backdrop share is
    cutout_backdrop_probability too); those are not cut out as well. figure_head_scale: the range
    of the figure's head size as a share of the page (0.35-0.6 half-body; from 0.2 whole figures).
    figure_details: up to this many inked folds per clothing part, and half as many marks (0 = plain).
    in_memory: decode every PNG once at start (15k 64 px images take ~300 MB). fixed: evaluation
    mode (randomness from (seed, index) only). limit: use only the first N images of the split (by id).
    """

    root: str = ""
    split: str = "train"
    extractors: tuple[str, ...] = ()
    rough: RoughSketchConfig = field(default_factory=RoughSketchConfig)
    rough_probability: float = 0.5
    line_style: LineStyleConfig = field(default_factory=LineStyleConfig)
    line_style_probability: float = 0.0
    hints: HintConfig = field(default_factory=HintConfig)
    flip: bool = True
    zoom_out_probability: float = 0.0
    zoom_out_scale: tuple[float, float] = (0.45, 0.9)
    cutout_probability: float = 0.0
    cutout_backdrop_probability: float = 0.0
    figure_probability: float = 0.0
    figure_head_scale: tuple[float, float] = HALF_BODY_HEADS
    figure_details: int = 0
    seed: int = 0
    in_memory: bool = True
    fixed: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if not 0.0 <= self.rough_probability <= 1.0:
            raise ValueError(f"rough_probability must lie in [0, 1], got {self.rough_probability}")
        if not 0.0 <= self.line_style_probability <= 1.0:
            raise ValueError(f"line_style_probability must lie in [0, 1], got {self.line_style_probability}")
        if not 0.0 <= self.zoom_out_probability <= 1.0:
            raise ValueError(f"zoom_out_probability must lie in [0, 1], got {self.zoom_out_probability}")
        for name in ("cutout_probability", "cutout_backdrop_probability", "figure_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        low, high = self.zoom_out_scale
        if not 0.1 <= low <= high <= 1.0:
            raise ValueError(f"zoom_out_scale must be [low, high] with 0.1 <= low <= high <= 1, "
                             f"got {self.zoom_out_scale}")
        check_head_scales(self.figure_head_scale, "figure_head_scale")
        check_details(self.figure_details, "figure_details")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")


def _read_color(path: Path, size: int) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if array is None:
        raise ValueError(f"cannot read {path}; re-run `sketch2anime prepare` to repair the dataset")
    if array.shape[:2] != (size, size):
        raise ValueError(f"{path} is {array.shape[1]}x{array.shape[0]}, expected {size}x{size}")
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def _read_sketch(path: Path, size: int) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if array is None:
        raise ValueError(f"cannot read {path}; re-run `sketch2anime prepare` to repair the dataset")
    if array.shape != (size, size):
        raise ValueError(f"{path} is {array.shape[1]}x{array.shape[0]}, expected {size}x{size}")
    return array


class PairedSketchDataset(Dataset):
    """Colour images with their clean and rough sketches and simulated hints (see module docstring)."""

    def __init__(self, config: DatasetConfig) -> None:
        if not config.root:
            raise ValueError("DatasetConfig.root is empty: give the folder made by `sketch2anime prepare`")
        self.config = config
        self.root = Path(config.root)
        self.info: DatasetInfo = read_dataset_info(self.root)
        self.image_size = self.info.size
        if self.image_size < config.hints.downscale:
            raise ValueError(f"hint downscale {config.hints.downscale} is larger than the image size {self.image_size}")
        self.hint_size = self.image_size // config.hints.downscale
        available = tuple(self.info.extractors)
        unknown = [e for e in config.extractors if e not in available]
        if unknown:
            raise ValueError(f"{self.root} has no {unknown[0]!r} sketches; it has: {', '.join(available) or 'none'}")
        self.extractors: tuple[str, ...] = tuple(config.extractors) or available
        records = read_manifest(self.root)
        if config.split != "all":
            records = [r for r in records if r.split == config.split]
        records = sorted((r for r in records if any(r.sketch_path(e) for e in self.extractors)), key=lambda r: r.id)
        if config.limit is not None:
            records = records[:config.limit]
        if not records:
            raise ValueError(f"the {config.split} split of {self.root} is empty (val_fraction "
                             f"{self.info.val_fraction}, sketches {', '.join(self.extractors)})")
        self.records: list[ManifestRecord] = records
        # Per image: which of self.extractors it has (all of them, for datasets made by prepare).
        self._choices = [tuple(k for k, e in enumerate(self.extractors) if r.sketch_path(e)) for r in records]
        self.epoch = 0
        self._colors: np.ndarray | None = None
        self._sketches: np.ndarray | None = None
        if config.in_memory:
            self._load_all()

    def _load_all(self) -> None:
        n, s = len(self.records), self.image_size
        colors = np.empty((n, s, s, 3), dtype=np.uint8)
        sketches = np.full((n, len(self.extractors), s, s), 255, dtype=np.uint8)
        for i, record in enumerate(self.records):
            colors[i] = _read_color(self.root / record.color, s)
            for k in self._choices[i]:
                sketches[i, k] = _read_sketch(self.root / record.sketch_path(self.extractors[k]), s)  # type: ignore[operator]
        self._colors, self._sketches = colors, sketches

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of this epoch (ignored when ``fixed``)."""
        self.epoch = int(epoch)

    def color(self, index: int) -> np.ndarray:
        """HxWx3 uint8 colour image ``index``."""
        if self._colors is not None:
            return self._colors[index]
        return _read_color(self.root / self.records[index].color, self.image_size)

    def clean_sketch(self, index: int, extractor: str) -> np.ndarray:
        """HxW uint8 sketch of image ``index`` made by ``extractor``."""
        k = self.extractors.index(extractor)
        if k not in self._choices[index]:
            raise ValueError(f"image {self.records[index].id} has no {extractor} sketch")
        if self._sketches is not None:
            return self._sketches[index, k]
        path = self.records[index].sketch_path(extractor)
        return _read_sketch(self.root / path, self.image_size)  # type: ignore[operator]

    def generators(self, index: int) -> list[np.random.Generator]:
        """Independent generators (extractor choice, flip, rough, hint, style, zoom, cut-out, figure) for item ``index``."""
        cfg = self.config
        key = [_STREAM_TAG, cfg.seed, index] if cfg.fixed else [_STREAM_TAG + 1, cfg.seed, self.epoch, index]
        # Children are indexed, so adding a stream later leaves the first ones unchanged.
        return [np.random.default_rng(child) for child in np.random.SeedSequence(key).spawn(8)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index = int(index) % len(self)
        cfg = self.config
        rng_choice, rng_flip, rng_rough, rng_hint, rng_style, rng_zoom, rng_cutout, rng_figure = self.generators(index)
        choices = self._choices[index]
        extractor = self.extractors[choices[int(rng_choice.integers(len(choices)))]]
        color = self.color(index)
        sketch = self.clean_sketch(index, extractor)
        if cfg.flip and rng_flip.random() < 0.5:
            color, sketch = color[:, ::-1], sketch[:, ::-1]
        color, sketch = np.ascontiguousarray(color), np.ascontiguousarray(sketch)
        if cfg.zoom_out_probability > 0 and rng_zoom.random() < cfg.zoom_out_probability:
            color, sketch = random_zoom_out(color, sketch, cfg.zoom_out_scale, rng_zoom)
        outside, backdrop = None, None
        backdrop_rng = rng_cutout
        if cfg.figure_probability > 0 and rng_figure.random() < cfg.figure_probability:
            color, sketch, outside, backdrop = random_figure(color, sketch, rng_figure,
                                                             cfg.cutout_backdrop_probability, cfg.figure_head_scale,
                                                             cfg.figure_details)
            backdrop_rng = rng_figure
        elif cfg.cutout_probability > 0 and rng_cutout.random() < cfg.cutout_probability:
            color, sketch, outside, backdrop = random_cut_out(color, sketch, rng_cutout,
                                                              cfg.cutout_backdrop_probability)
        rough = roughen(sketch, cfg.rough, rng_rough) if rng_rough.random() < cfg.rough_probability else sketch
        if cfg.line_style_probability > 0 and rng_style.random() < cfg.line_style_probability:
            rough = restyle(rough, cfg.line_style, rng_style)
        hint_rgb, mask = simulate_hints(color, cfg.hints, rng_hint)
        if backdrop is not None:
            hint_rgb, mask = add_backdrop_hints(hint_rgb, mask, outside, backdrop, backdrop_rng)
        return {
            "image": rgb_to_tensor(color),
            "sketch": sketch_to_tensor(sketch),
            "rough_sketch": sketch_to_tensor(rough),
            "hint": hint_to_tensor(hint_rgb, mask),
            "index": index,
            "id": self.records[index].id,
            "extractor": extractor,
        }

