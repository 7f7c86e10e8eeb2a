"""The image sets ``sketch2anime evaluate`` scores, each reported separately, and their targets at
the size the user sees.

* ``val``: the prepared dataset's validation split with its own (training-style) sketches, clean
  and rough: the main protocol.
* ``heldout-lines``: the same validation images, hints and seeds, but sketches drawn by
  ``heldout_lines.GradientLines``, a line style never used for training (clean sketches only).
* ``sketch-pairs``: real artist line art and its colour illustration from a folder with
  ``sketch/`` and ``color/`` matched by file stem (``--pairs``; clean only), resized to the
  dataset's size. Its images are read in place, never copied.

``DisplayTargets`` gives each set's true images at the display size (``--display-size``): from
the dataset's source images (dataset.json ``source`` + manifest ``source``, cropped as ``prepare``
cropped them), or the pair folder's colour files. Where no source at least that large exists,
display-size scores are skipped with the reason, never faked by upscaling the target.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..data.image_io import list_images, load_rgb, load_sketch, resize_square, rgb_to_tensor
from .heldout_lines import HELDOUT_STYLE, GradientLines
from .protocol import EvalItem, EvaluationProtocol

MAIN_SET = "val"
HELDOUT_SET = "heldout-lines"
PAIRS_SET = "sketch-pairs"


class DisplayTargets:
    """True images at a display size, loaded lazily and cached as uint8 (N, D, D, 3).

    ``loaders[i]()`` returns image i at full resolution (PIL RGB, any size, already cropped to the
    content the dataset image shows); it is centre-cropped and resized to ``size`` like ``prepare``."""

    def __init__(self, size: int, loaders: list[Callable[[], Image.Image]] | None, reason: str | None = None) -> None:
        self.size, self.loaders, self.reason = size, loaders, reason
        self._cache: np.ndarray | None = None

    @property
    def available(self) -> bool:
        if self.reason is None and self.loaders is not None and self._cache is None:
            self._load()
        return self.reason is None

    def _load(self) -> None:
        assert self.loaders is not None
        images = []
        for i, loader in enumerate(self.loaders):
            try:
                image = loader()
            except (OSError, ValueError) as exc:
                self.reason = f"source image {i} could not be read ({exc})"
                return
            if min(image.size) < self.size:
                self.reason = (f"source images are smaller than {self.size} px (e.g. {image.size[0]}x{image.size[1]}); "
                               "the true image at the display size does not exist")
                return
            images.append(np.asarray(resize_square(image, self.size), dtype=np.uint8))
        self._cache = np.stack(images)

    def tensor(self, indices: list[int] | range) -> torch.Tensor:
        """(B, 3, D, D) in [-1, 1]; ValueError if unavailable."""
        if not self.available or self._cache is None:
            raise ValueError(f"no display-size targets: {self.reason}")
        return torch.stack([rgb_to_tensor(self._cache[i]) for i in indices])

    def describe(self) -> dict[str, object]:
        return {"size": self.size, "available": self.available, "reason": self.reason}


@dataclass
class EvalSet:
    """One separately reported set: its protocol, display targets (or None: display scores off)."""

    name: str
    title: str
    protocol: EvaluationProtocol
    display: DisplayTargets | None
    note: str = ""

    @property
    def main(self) -> bool:
        return self.name == MAIN_SET

    def describe(self) -> dict[str, object]:
        p = self.protocol
        return {"name": self.name, "title": self.title, "note": self.note, "root": str(p.root), "n": len(p),
                "image_size": p.size, "clean_sketch": p.extractor, "conditions": list(p.config.conditions),
                "display": self.display.describe() if self.display is not None else None,
                "fingerprint": p.fingerprint() if not self.main else None}


def _source_loader(protocol: EvaluationProtocol, index: int) -> Callable[[], Image.Image]:
    info, record = protocol.info, protocol.records[index]

    def load() -> Image.Image:
        image = load_rgb(Path(info.source) / record.source)
        if info.layout == "side-by-side":  # colour left, sketch right, as prepare reads it
            image = image.crop((0, 0, image.size[0] // 2, image.size[1]))
        if record.face_box is not None:
            image = image.crop(tuple(record.face_box))
        return image

    return load


def dataset_display(protocol: EvaluationProtocol, size: int) -> DisplayTargets:
    """Display targets of a prepared dataset's evaluated records."""
    if size == protocol.size:  # the dataset's own images are the truth at their size
        return DisplayTargets(size, [lambda item=item: Image.fromarray(item.color) for item in protocol.items])
    info = protocol.info
    if info is None or not info.source or not Path(info.source).is_dir():
        where = info.source if info is not None and info.source else "not recorded"
        return DisplayTargets(size, None, f"the dataset's source folder is not available ({where})")
    return DisplayTargets(size, [_source_loader(protocol, i) for i in range(len(protocol))])


def heldout_set(protocol: EvaluationProtocol, display: DisplayTargets | None) -> EvalSet:
    """The main protocol's images re-sketched by the held-out extractor, clean only."""
    lines = GradientLines()
    items = [EvalItem(it.index, it.id, it.color, lines(it.color)) for it in protocol.items]
    config = replace(protocol.config, roughness=("none",), limit=None)
    derived = EvaluationProtocol.from_items(protocol.root, items, HELDOUT_STYLE, config)
    return EvalSet(HELDOUT_SET, "Held-out line style: gradient lines, never used in training", derived, display,
                   note="same validation images and hints as the main set; sketches by "
                        "evaluation.heldout_lines.GradientLines (morphological colour gradient, grey-level lines)")


def pairs_set(folder: str | Path, size: int, protocol_config, display_size: int | None) -> EvalSet:
    """Real line-art pairs from ``folder/sketch`` and ``folder/color`` (same file stem), at ``size``."""
    root = Path(folder)
    if not (root / "sketch").is_dir() or not (root / "color").is_dir():
        raise ValueError(f"--pairs {root}: expected the folders {root / 'sketch'} and {root / 'color'} "
                         "with the same file names")
    colours = {p.stem: p for p in list_images(root / "color")}
    sketches = {p.stem: p for p in list_images(root / "sketch")}
    ids = sorted(set(colours) & set(sketches))
    if not ids:
        raise ValueError(f"--pairs {root}: no file name appears in both sketch/ and color/")
    if protocol_config.limit is not None:
        ids = ids[:protocol_config.limit]
    items = [EvalItem(i, image_id, np.asarray(resize_square(load_rgb(colours[image_id]), size), dtype=np.uint8),
                      np.asarray(resize_square(load_sketch(sketches[image_id]), size), dtype=np.uint8))
             for i, image_id in enumerate(ids)]
    config = replace(protocol_config, roughness=("none",), limit=None)
    protocol = EvaluationProtocol.from_items(root, items, "real", config)
    display = None if not display_size else DisplayTargets(
        display_size, [lambda path=colours[image_id]: load_rgb(path) for image_id in ids])
    return EvalSet(PAIRS_SET, f"Real line-art pairs ({root.name})", protocol, display,
                   note=f"{len(ids)} pairs matched by file name in {root}, resized to {size} px; read in place")
