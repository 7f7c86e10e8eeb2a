"""What ``sketch2anime evaluate`` scores: one interface over pipelines, baselines and floors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class Batch:
    """Inputs of one batch (CPU tensors): sketch (B,1,S,S), hint (B,4,h,w) or None, target (B,3,S,S)."""

    sketch: torch.Tensor
    hint: torch.Tensor | None
    target: torch.Tensor
    ids: list[str]


@dataclass
class EvalModel:
    """A model under test. ``run(batch, projection, seed) -> (B, 3, s, s)`` in [-1, 1] at the size it
    natively draws (any square side: a 128 px pipeline on a 64 px dataset returns 128 px). It is
    scored at the dataset's size (resized bilinearly, antialiased) and at the display size
    (bicubic), the same for every model and floor."""

    name: str
    source: str
    kind: str
    run: Any
    projections: tuple[float | None, ...] = (None,)
    uses_hints: bool = True
    label: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.source, "pipeline_type": self.kind, "label": self.label or self.kind,
                "projections": list(self.projections), "uses_hints": self.uses_hints, **self.info}


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, s, s) -> (B, C, size, size), bilinear with antialiasing, clamped to [-1, 1]."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(-1, 1)


def upscale_for_display(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, s, s) -> (B, 3, size, size) as a viewer shows it: bicubic up (antialiased area-like
    bicubic down if the image is larger), clamped to [-1, 1]."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x.float(), size=(size, size), mode="bicubic", align_corners=False,
                         antialias=x.shape[-1] > size).clamp(-1, 1)
