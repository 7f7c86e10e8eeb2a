"""The fixed evaluation protocol: which images, which sketches, which hints, for every model alike.

* Images: every record of the prepared dataset's **validation** split, sorted by id (the order of
  ``PairedSketchDataset``); ``limit`` keeps the first N, for quick runs only.
* Clean sketch: the record's first sketch, i.e. the artist's own sketch ("real") for paired data,
  else the first extractor given to ``prepare`` (``detail`` by default). One deterministic choice,
  recorded in metrics.json.
* Hints, per hint level: ``none`` (empty), ``sparse`` (1-3 strokes), ``dense`` (8-15 strokes),
  simulated by ``data.hints.simulate_hints`` with no empty samples.
* Rough sketches, per roughness level (``medium``, ``heavy``, ``light``): ``data.rough.roughen``
  with the preset of that name applied to the clean sketch.

Every random draw uses its own generator seeded by ``(seed, what, image id)`` (SHA-256 of the
three), so an image's hint and rough sketch do not depend on evaluation order, batch size,
``limit``, other images in the split, or the model being scored. The hint of a level is the same
under every sketch condition, so a rough-vs-clean difference measures the sketch change alone.
``fingerprint()`` hashes all of it; two runs (and two models) with equal fingerprints saw
exactly the same inputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import to_dict
from ..data.hints import HintConfig, simulate_hints
from ..hint_format import hint_to_tensor
from ..data.image_io import load_rgb, load_sketch, rgb_to_tensor, sketch_to_tensor
from ..data.manifest import ManifestRecord, read_dataset_info, read_manifest
from ..data.rough import ROUGH_PRESETS, RoughSketchConfig, roughen

VAL_SPLIT = "val"
HINT_LEVELS = ("none", "sparse", "dense")
ROUGHNESS_LEVELS = ("none", *ROUGH_PRESETS)  # "none" = the clean sketch
DEFAULT_ROUGHNESS = ("none", "medium", "heavy")
STROKES = {"sparse": (1, 3), "dense": (8, 15)}


def condition_name(roughness: str) -> str:
    """Sketch condition label used in reports: "clean" or "rough-<level>"."""
    return "clean" if roughness == "none" else f"rough-{roughness}"


@dataclass(frozen=True)
class ProtocolConfig:
    """seed: protocol seed. hint_levels / roughness: which of HINT_LEVELS / ROUGHNESS_LEVELS to
    build ("none" roughness, the clean sketch, is always included). hint_downscale: hint grid =
    image size // this (the architecture's default 4). limit: first N validation images only."""

    seed: int = 0
    hint_levels: tuple[str, ...] = HINT_LEVELS
    roughness: tuple[str, ...] = DEFAULT_ROUGHNESS
    hint_downscale: int = 4
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.hint_levels:
            raise ValueError("name at least one hint level (none, sparse, dense)")
        for level in self.hint_levels:
            if level not in HINT_LEVELS:
                raise ValueError(f"unknown hint level {level!r}; choose from {', '.join(HINT_LEVELS)}")
        for level in self.roughness:
            if level not in ROUGHNESS_LEVELS:
                raise ValueError(f"unknown roughness {level!r}; choose from {', '.join(ROUGHNESS_LEVELS)}")
        if len(set(self.hint_levels)) != len(self.hint_levels) or len(set(self.roughness)) != len(self.roughness):
            raise ValueError("hint levels and roughness levels must not repeat")
        if self.hint_downscale < 1:
            raise ValueError(f"hint_downscale must be >= 1, got {self.hint_downscale}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")

    @property
    def conditions(self) -> tuple[str, ...]:
        """Roughness levels in evaluation order, clean first."""
        return ("none",) + tuple(r for r in self.roughness if r != "none")


def hint_config(level: str, downscale: int) -> HintConfig | None:
    """The HintConfig of a hint level (None for "none")."""
    if level == "none":
        return None
    if level not in STROKES:
        raise ValueError(f"unknown hint level {level!r}")
    return HintConfig(downscale=downscale, stroke_count=STROKES[level], empty_probability=0.0)


def item_rng(seed: int, purpose: str, image_id: str) -> np.random.Generator:
    """A generator that depends only on (seed, purpose, image id)."""
    digest = hashlib.sha256(f"sketch2anime-eval:{seed}:{purpose}:{image_id}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


@dataclass(frozen=True)
class EvalItem:
    """One validation image: colour (H, W, 3) uint8 and clean sketch (H, W) uint8."""

    index: int
    id: str
    color: np.ndarray
    sketch: np.ndarray


class EvaluationProtocol:
    """The validation images of a prepared dataset with their seeded hints and rough sketches.

    Hints and sketches are built lazily per level and cached (uint8 numpy), so a 750-image split
    at 256 px stays a few hundred MB at most.
    """

    def __init__(self, data_dir: str | Path, config: ProtocolConfig = ProtocolConfig()) -> None:
        self.root = Path(data_dir)
        self.config = config
        self.info = read_dataset_info(self.root)
        self.size = int(self.info.size)
        if self.size // config.hint_downscale < 1:
            raise ValueError(f"hint_downscale {config.hint_downscale} is larger than the image size {self.size}")
        records = read_manifest(self.root)
        self.train_records = [r for r in records if r.split == "train"]
        val = sorted((r for r in records if r.split == VAL_SPLIT), key=lambda r: r.id)
        if not val:
            raise ValueError(f"{self.root} has no validation images (split {VAL_SPLIT!r}); prepare it with "
                             f"--val-fraction above 0 (e.g. 0.05)")
        self.val_total = len(val)
        if config.limit is not None:
            val = val[:config.limit]
        self.records: list[ManifestRecord] = val
        extractors = [r.sketches[0].extractor for r in val if r.sketches]
        if len(extractors) != len(val):
            raise ValueError(f"{self.root}: some validation records have no sketch; re-run `sketch2anime prepare`")
        self.extractor = extractors[0]
        self.items = [self._load(i, r) for i, r in enumerate(val)]
        self._hints: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._sketches: dict[str, np.ndarray] = {"none": np.stack([it.sketch for it in self.items])}

    @classmethod
    def from_items(cls, root: str | Path, items: list[EvalItem], extractor: str,
                   config: ProtocolConfig = ProtocolConfig()) -> EvaluationProtocol:
        """A protocol over given items (another line style, a folder of real pairs): same seeding of
        hints and rough sketches per image id, no training split. ``config.limit`` is not applied."""
        if not items:
            raise ValueError(f"{root}: no images to evaluate")
        size = int(items[0].color.shape[0])
        for item in items:
            if item.color.shape != (size, size, 3) or item.sketch.shape != (size, size):
                raise ValueError(f"{root}: image {item.id} is not {size}x{size} like the first one")
        self = cls.__new__(cls)
        self.root, self.config, self.info, self.size = Path(root), config, None, size
        if size // config.hint_downscale < 1:
            raise ValueError(f"hint_downscale {config.hint_downscale} is larger than the image size {size}")
        self.train_records, self.records = [], []
        self.val_total, self.extractor, self.items = len(items), extractor, list(items)
        self._hints = {}
        self._sketches = {"none": np.stack([it.sketch for it in self.items])}
        return self

    # -----------------------------------------------------------------------------------------
    def _load(self, index: int, record: ManifestRecord) -> EvalItem:
        path = record.sketch_path(self.extractor)
        if path is None:
            raise ValueError(f"{self.root}: image {record.id} has no {self.extractor!r} sketch, unlike the first "
                             f"validation image; the dataset mixes extractors - prepare it again")
        color = np.asarray(load_rgb(self.root / record.color), dtype=np.uint8)
        sketch = np.asarray(load_sketch(self.root / path), dtype=np.uint8)
        if color.shape[:2] != (self.size, self.size) or sketch.shape != (self.size, self.size):
            raise ValueError(f"{self.root}: image {record.id} is not {self.size}x{self.size} as dataset.json says")
        return EvalItem(index, record.id, color, sketch)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    @property
    def hint_size(self) -> int:
        return self.size // self.config.hint_downscale

    def hints(self, level: str) -> tuple[np.ndarray, np.ndarray]:
        """(colours (N, h, w, 3) uint8, masks (N, h, w) bool) of a hint level for all items."""
        if level not in self._hints:
            cfg = hint_config(level, self.config.hint_downscale)
            h = self.hint_size
            colours = np.zeros((len(self.items), h, h, 3), dtype=np.uint8)
            masks = np.zeros((len(self.items), h, h), dtype=bool)
            if cfg is not None:
                for i, item in enumerate(self.items):
                    colours[i], masks[i] = simulate_hints(item.color, cfg, item_rng(self.config.seed, f"hint-{level}", item.id))
            self._hints[level] = (colours, masks)
        return self._hints[level]

    def sketches(self, roughness: str) -> np.ndarray:
        """Sketches (N, H, W) uint8 of a roughness level ("none" = clean)."""
        if roughness not in self._sketches:
            if roughness not in ROUGHNESS_LEVELS:
                raise ValueError(f"unknown roughness {roughness!r}")
            cfg = RoughSketchConfig.preset(roughness)  # type: ignore[arg-type]
            self._sketches[roughness] = np.stack([
                roughen(item.sketch, cfg, item_rng(self.config.seed, f"rough-{roughness}", item.id))
                for item in self.items])
        return self._sketches[roughness]

    # -----------------------------------------------------------------------------------------
    # tensors for a batch of item indices

    def target_tensor(self, indices: range | list[int]) -> torch.Tensor:
        """(B, 3, S, S) real colour images in [-1, 1]."""
        return torch.stack([rgb_to_tensor(self.items[i].color) for i in indices])

    def sketch_tensor(self, roughness: str, indices: range | list[int]) -> torch.Tensor:
        """(B, 1, S, S) sketches in [-1, 1] (paper +1)."""
        sketches = self.sketches(roughness)
        return torch.stack([sketch_to_tensor(sketches[i]) for i in indices])

    def hint_tensor(self, level: str, indices: range | list[int]) -> torch.Tensor:
        """(B, 4, h, w) hints (RGB in [-1, 1] zero off-mask + mask)."""
        colours, masks = self.hints(level)
        return torch.stack([hint_to_tensor(colours[i], masks[i]) for i in indices])

    # -----------------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """SHA-256 over ids, targets, every built sketch condition and hint level."""
        digest = hashlib.sha256()
        digest.update(f"{self.size}:{self.extractor}:{self.config.seed}".encode())
        for item in self.items:
            digest.update(item.id.encode())
            digest.update(item.color.tobytes())
        for roughness in self.config.conditions:
            digest.update(roughness.encode())
            digest.update(self.sketches(roughness).tobytes())
        for level in self.config.hint_levels:
            colours, masks = self.hints(level)
            digest.update(level.encode())
            digest.update(colours.tobytes())
            digest.update(masks.tobytes())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description for metrics.json."""
        hint_levels = {}
        for level in self.config.hint_levels:
            cfg = hint_config(level, self.config.hint_downscale)
            _, masks = self.hints(level)
            hint_levels[level] = {
                "config": to_dict(cfg) if cfg is not None else None,
                "mean_coverage": float(masks.mean()) if masks.size else 0.0,
            }
        roughness = {r: (to_dict(RoughSketchConfig.preset(r)) if r != "none" else None)  # type: ignore[arg-type]
                     for r in self.config.conditions}
        return {
            "seed": self.config.seed,
            "seeding": "numpy Generator per (seed, purpose, image id) via SHA-256",
            "split": VAL_SPLIT,
            "n_val_total": self.val_total,
            "n_evaluated": len(self.items),
            "limit": self.config.limit,
            "clean_sketch_extractor": self.extractor,
            "image_size": self.size,
            "hint_size": self.hint_size,
            "hint_levels": hint_levels,
            "roughness": roughness,
            "fingerprint": self.fingerprint(),
        }

    def training_color_paths(self) -> list[Path]:
        """Colour image paths of the training split (style images for the NST baseline)."""
        return [self.root / r.color for r in self.train_records]

