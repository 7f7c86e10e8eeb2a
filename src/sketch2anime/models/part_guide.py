"""Per-part guide (DeepFaceDrawing's component manifolds): eyes and mouth drawn by a part autoencoder.

One 512-d latent of a whole 128 px face decodes to a soft shadow: it cannot hold an eye's lines.
DeepFaceDrawing splits the face into components with their own autoencoders and latent manifolds;
here one small *part autoencoder* (32 px) encodes every part box of ``FACE_PARTS`` (the right eye
mirrored, so both eyes share one manifold), each part has its own bank of training latents, and
the K-nearest sum-to-one projection with strength t runs per part exactly as for the whole face
(``models/projection.py``). The decoded parts are pasted over the whole-face guide with feathered
edges, so at t = 1 a rough eye is replaced by a clean eye from the manifold of training eyes.

Boxes are fractions of the image side: the datasets' faces are detector crops whose eyes and mouth
sit in the same place to within a few percent (the mean ink of 1500 training sketches puts the
eyes at x 0.35 / 0.64, y 0.41 and the mouth at y 0.63), and the boxes leave that margin.

Shapes: sketches ``(N, 1, S, S)`` in [-1, 1] (paper +1, ink -1); part crops ``(N, 1, P, P)``
with ``P = part_size``; part latents ``{box name: (N, D)}``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from .latent_bank import LatentBank
from .projection import DEFAULT_REG, project

PART_SIZES = (32, 64)


@dataclass(frozen=True)
class PartBox:
    """A part's box: centre ``(cx, cy)`` and size ``(w, h)`` as fractions of the image side."""

    name: str
    cx: float
    cy: float
    w: float
    h: float
    mirror: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"part box name must be a plain word, got {self.name!r}")
        if not (0 < self.w <= 1 and 0 < self.h <= 1):
            raise ConfigError(f"part box {self.name}: w and h must be in (0, 1], got {self.w}, {self.h}")
        if self.cx - self.w / 2 < 0 or self.cx + self.w / 2 > 1 or self.cy - self.h / 2 < 0 or self.cy + self.h / 2 > 1:
            raise ConfigError(f"part box {self.name} leaves the image: centre ({self.cx}, {self.cy}), "
                              f"size ({self.w}, {self.h})")

    def pixels(self, side: int) -> tuple[int, int, int, int]:
        """``(x0, y0, width, height)`` in pixels of a ``side`` px image (at least 2 px each way)."""
        width, height = max(2, round(self.w * side)), max(2, round(self.h * side))
        x0 = min(max(0, round(self.cx * side - width / 2)), side - width)
        y0 = min(max(0, round(self.cy * side - height / 2)), side - height)
        return x0, y0, width, height


FACE_PARTS: tuple[PartBox, ...] = (
    PartBox("left_eye", 0.355, 0.42, 0.29, 0.22),
    PartBox("right_eye", 0.645, 0.42, 0.29, 0.22, mirror=True),
    PartBox("mouth", 0.5, 0.635, 0.26, 0.18),
)


@dataclass(frozen=True)
class PartLayout:
    """Where the parts are and how big the part autoencoder draws them."""

    boxes: tuple[PartBox, ...] = FACE_PARTS
    part_size: int = 32
    feather: float = 0.25  # fraction of each box's half-size over which a pasted part fades in

    def __post_init__(self) -> None:
        if not self.boxes:
            raise ConfigError("a part layout needs at least one box")
        names = [box.name for box in self.boxes]
        if len(set(names)) != len(names):
            raise ConfigError(f"part box names must be unique, got {names}")
        if self.part_size not in PART_SIZES:
            raise ConfigError(f"part_size must be one of {PART_SIZES}, got {self.part_size}")
        if not 0 <= self.feather <= 1:
            raise ConfigError(f"feather must be in [0, 1], got {self.feather}")

    @property
    def names(self) -> list[str]:
        return [box.name for box in self.boxes]

    def to_dict(self) -> dict:
        return {"part_size": self.part_size, "feather": self.feather,
                "boxes": [{"name": b.name, "cx": b.cx, "cy": b.cy, "w": b.w, "h": b.h, "mirror": b.mirror}
                          for b in self.boxes]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "PartLayout":
        try:
            boxes = tuple(PartBox(str(b["name"]), float(b["cx"]), float(b["cy"]), float(b["w"]), float(b["h"]),
                                  bool(b.get("mirror", False))) for b in data["boxes"])
            return cls(boxes, int(data["part_size"]), float(data.get("feather", 0.25)))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"a part layout needs boxes (name, cx, cy, w, h) and part_size: {exc}") from None


def crop_part(sketch: torch.Tensor, box: PartBox, part_size: int,
              shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``(N, 1, S, S)`` -> ``(N, 1, P, P)``: the box (moved by ``shift`` px, kept inside), resized, mirrored if set."""
    side = sketch.shape[-1]
    x0, y0, width, height = box.pixels(side)
    x0 = min(max(0, x0 + shift[0]), side - width)
    y0 = min(max(0, y0 + shift[1]), side - height)
    crop = sketch[..., y0:y0 + height, x0:x0 + width]
    # Area for shrinking keeps thin lines as grey instead of dropping them; bilinear for enlarging.
    mode = "area" if width >= part_size and height >= part_size else "bilinear"
    crop = F.interpolate(crop, size=(part_size, part_size), mode=mode,
                         **({"align_corners": False} if mode == "bilinear" else {}))
    return crop.flip(-1) if box.mirror else crop


def feather_mask(height: int, width: int, feather: float, device: torch.device | None = None) -> torch.Tensor:
    """``(height, width)`` weights: 1 in the middle, a linear ramp to ~0 over ``feather`` of each half-size."""
    def ramp(n: int) -> torch.Tensor:
        distance = torch.minimum(torch.arange(n, device=device) + 0.5, n - torch.arange(n, device=device) - 0.5)
        width_px = max(feather * n / 2, 1e-6)
        return (distance / width_px).clamp(0, 1)
    return ramp(height)[:, None] * ramp(width)[None, :]


def paste_part(canvas: torch.Tensor, part: torch.Tensor, box: PartBox, feather: float) -> torch.Tensor:
    """``canvas (N, 1, S, S)`` with ``part (N, 1, P, P)`` resized into ``box`` and blended in (a new tensor)."""
    side = canvas.shape[-1]
    x0, y0, width, height = box.pixels(side)
    if box.mirror:
        part = part.flip(-1)
    resized = F.interpolate(part, size=(height, width), mode="bilinear", align_corners=False).clamp(-1, 1)
    weight = feather_mask(height, width, feather, canvas.device).to(canvas.dtype)
    out = canvas.clone()
    region = out[..., y0:y0 + height, x0:x0 + width]
    out[..., y0:y0 + height, x0:x0 + width] = region * (1 - weight) + resized.to(canvas.dtype) * weight
    return out


class PartGuide(nn.Module):
    """The part autoencoder and the layout it serves (banks live beside it, not in the module).

    ``encode(sketch (N, 1, S, S)) -> {box: (N, D)}``; ``render(guide (N, 1, S, S), latents) ->
    (N, 1, S, S)``: the guide with every part's decoding pasted in.
    """

    def __init__(self, layout: PartLayout, autoencoder: nn.Module) -> None:
        super().__init__()
        if autoencoder.config.image_size != layout.part_size:
            raise ConfigError(f"the part autoencoder draws {autoencoder.config.image_size} px parts but the layout "
                              f"asks for {layout.part_size} px")
        self.layout = layout
        self.autoencoder = autoencoder

    def crops(self, sketch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {box.name: crop_part(sketch, box, self.layout.part_size) for box in self.layout.boxes}

    def encode(self, sketch: torch.Tensor) -> dict[str, torch.Tensor]:
        crops = self.crops(sketch)
        n = sketch.shape[0]
        # One batched pass over every part.
        z = self.autoencoder.encode(torch.cat(list(crops.values()))).float()
        return {name: z[i * n:(i + 1) * n] for i, name in enumerate(crops)}

    def render(self, guide: torch.Tensor, latents: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in self.layout.names if name not in latents]
        if missing:
            raise ValueError(f"part latents for {', '.join(missing)} are missing")
        n = guide.shape[0]
        decoded = self.autoencoder.decode_sketch(torch.cat([latents[name] for name in self.layout.names]))
        return self.paste(guide, {name: decoded[i * n:(i + 1) * n] for i, name in enumerate(self.layout.names)})

    def paste(self, guide: torch.Tensor, decoded: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``guide (N, 1, S, S)`` with each part's decoding ``(N, 1, P, P)`` pasted, feathered, into its box."""
        out = guide
        for box in self.layout.boxes:
            out = paste_part(out, decoded[box.name].to(guide.dtype), box, self.layout.feather)
        return out


def project_parts(latents: Mapping[str, torch.Tensor], banks: Mapping[str, LatentBank], k: int,
                  strength: float | torch.Tensor, reg: float | None = None,
                  exclude: Sequence[Collection[int]] | None = None) -> dict[str, torch.Tensor]:
    """Each part's latents projected onto its own bank (``models.projection.project``)."""
    out = {}
    for name, z in latents.items():
        if name not in banks:
            raise ValueError(f"no latent bank for part {name!r}")
        out[name] = project(z.cpu(), banks[name], k=k, strength=strength,
                            reg=DEFAULT_REG if reg is None else reg, exclude=exclude).to(z.device, z.dtype)
    return out


def guide_with_parts(parts: PartGuide, banks: Mapping[str, LatentBank], sketch: torch.Tensor,
                     guide: torch.Tensor, strength: float | torch.Tensor, k: int, reg: float | None = None,
                     exclude: Sequence[Collection[int]] | None = None) -> torch.Tensor:
    """The whole-face ``guide (N, 1, S, S)`` with the parts of ``sketch (N, 1, S, S)`` pasted in,
    each projected onto its bank with ``strength`` (one number, or one per sample). Training and
    inference both draw the guide through this function."""
    latents = parts.encode(sketch)
    if bool(torch.as_tensor(strength).gt(0).any()):
        latents = project_parts(latents, banks, k, strength, reg, exclude)
    return parts.render(guide, latents)
