"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020).

With ~3,000 training faces, every fine-tuning round shows each picture to D several times; a
discriminator that memorises the real pictures stops telling the generator what looks real (the
hinge loss of runs 16-18 kept falling while FID levelled off). DiffAugment applies the same kind of
random transform to real and generated pictures right before D, differentiably, so the generator's
gradient passes through it and D never sees an unaugmented picture to memorise. Measured (run 19,
README): D's loss stayed high as intended, but FID moved by less than one point, so the plateau
was not D memorising; the option stays for runs on more varied data.

D here is conditional: it judges (picture, sketch, hint) together. A shift therefore moves all
three by the same amount, in whole hint cells, so a hint dot stays over the pixels it asks for;
cutout blanks a square of the picture only (the conditions say what should be there, which is
exactly what D must check elsewhere). Colour transforms are left out: they would change a picture's
colours but not its hint's, and D would learn to ignore hint agreement.

Shapes: image (N, 3, S, S), sketch (N, 1, S, S) or None, hint (N, 4, h, h) or None with S % h == 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import ConfigError

POLICIES = ("translation", "cutout")
PAPER = 1.0  # a sketch's paper in [-1, 1]; a shift brings in blank paper, not ink


@dataclass(frozen=True)
class DAugmentConfig:
    """policy: transforms among ``POLICIES`` (empty = off). translation: the largest shift as a
    fraction of the side (DiffAugment's 1/8). cutout: the side of the blanked square as a fraction
    of the picture's side (DiffAugment's 1/2)."""

    policy: tuple[str, ...] = ()
    translation: float = 0.125
    cutout: float = 0.5

    def __post_init__(self) -> None:
        unknown = [p for p in self.policy if p not in POLICIES]
        if unknown:
            raise ConfigError(f"train.d_augment.policy: unknown transform(s) {unknown}; choose from {list(POLICIES)}")
        if len(set(self.policy)) != len(self.policy):
            raise ConfigError(f"train.d_augment.policy lists a transform twice: {list(self.policy)}")
        if not 0.0 <= self.translation <= 0.5:
            raise ConfigError(f"train.d_augment.translation must lie in [0, 0.5], got {self.translation}")
        if not 0.0 < self.cutout < 1.0:
            raise ConfigError(f"train.d_augment.cutout must lie in (0, 1), got {self.cutout}")

    @property
    def enabled(self) -> bool:
        return bool(self.policy)


@dataclass(frozen=True)
class DAugmentDraw:
    """One draw of the random parameters for N pictures, so that real and fake (feature matching)
    can get the same transform. shifts: (N, 2) in hint cells (dy, dx); boxes: (N, 4) cutout squares
    (top, left, height, width) in pixels, or None where the policy has no such transform."""

    shifts: torch.Tensor | None
    boxes: torch.Tensor | None


def draw(config: DAugmentConfig, n: int, size: int, cell: int, generator: torch.Generator) -> DAugmentDraw:
    """Random parameters for ``n`` pictures of side ``size`` whose hint cells are ``cell`` pixels."""
    shifts = boxes = None
    if "translation" in config.policy:
        reach = int(config.translation * size) // cell  # whole cells, so hints stay on their pixels
        shifts = torch.randint(-reach, reach + 1, (n, 2), generator=generator)
    if "cutout" in config.policy:
        side = max(1, int(config.cutout * size + 0.5))
        corners = torch.randint(0, size - side + 1, (n, 2), generator=generator)
        boxes = torch.cat([corners, torch.full((n, 2), side, dtype=torch.long)], dim=1)
    return DAugmentDraw(shifts, boxes)


def _shift(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """(C, H, W) moved by (dy, dx) pixels, the uncovered border filled with ``fill``."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x[None], (abs(dx), abs(dx), abs(dy), abs(dy)), value=fill)[0]
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + h, left:left + w]


def _shift_batch(x: torch.Tensor, shifts: torch.Tensor, scale: int, fill: float) -> torch.Tensor:
    return torch.stack([_shift(x[i], int(dy) * scale, int(dx) * scale, fill)
                        for i, (dy, dx) in enumerate(shifts.tolist())])


def apply(params: DAugmentDraw, image: torch.Tensor, sketch: torch.Tensor | None,
          hint: torch.Tensor | None, cell: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The drawn transforms on (image, sketch, hint); differentiable in ``image``."""
    for drawn in (params.shifts, params.boxes):
        if drawn is not None and drawn.shape[0] != image.shape[0]:
            raise ValueError(f"the augmentation was drawn for {drawn.shape[0]} pictures, got {image.shape[0]}")
    if params.shifts is not None:
        image = _shift_batch(image, params.shifts, cell, 0.0)
        if sketch is not None:
            sketch = _shift_batch(sketch, params.shifts, cell, PAPER)
        if hint is not None:
            hint = _shift_batch(hint, params.shifts, 1, 0.0)  # 0 everywhere is "no hint"
    if params.boxes is not None:
        size = image.shape[-1]
        rows = torch.arange(size, device=image.device)
        boxes = params.boxes.to(image.device)
        top, left, height, width = (boxes[:, i, None] for i in range(4))
        inside_y = (rows[None] >= top) & (rows[None] < top + height)  # (N, S)
        inside_x = (rows[None] >= left) & (rows[None] < left + width)
        keep = ~(inside_y[:, :, None] & inside_x[:, None, :])  # (N, S, S)
        image = image * keep[:, None].to(image.dtype)
    return image, sketch, hint


def augment(config: DAugmentConfig, image: torch.Tensor, sketch: torch.Tensor | None, hint: torch.Tensor | None,
            cell: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Draw and apply in one go (each picture its own transform); the identity when the policy is empty."""
    if not config.enabled:
        return image, sketch, hint
    return apply(draw(config, image.shape[0], image.shape[-1], cell, generator), image, sketch, hint, cell)
