"""Colour schemes of training images, for Seed and Variations of a deterministic generator.

A sketch says nothing about colour: without hints the generator paints the colours it finds most
likely, and a fixed seed or another candidate would give the same picture. Variations here are
colour schemes borrowed from the training images whose *sketches* are nearest to the user's (the
projection's own neighbours, so their layout matches): a few round dabs of that image's colours,
taken at the same places, become extra hints wherever the user has not hinted.

Files (beside the latent bank of a pipeline folder)::

    palettes.safetensors   {"thumbnails": (M, S, S, 3) uint8}   each training image at S px (16)
    palettes.json          {"format_version": 1, "ids": [M image ids], "size": S}

``palette_hints(hint (N, 4, h, h), thumbnails (N, S, S, 3) uint8, generator, count, radius)``
returns the hint with the dabs added; pixels the user hinted (and a margin around them) are never
changed. Hint tensors are RGB in [-1, 1], 0 off-mask, mask in channel 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import CheckpointError, atomic_save_tensors, atomic_write_text, read_json, read_tensors

PALETTE_STEM = "palettes"
PALETTE_FORMAT_VERSION = 1
THUMBNAIL_SIZE = 16


class PaletteBank:
    """Small colour thumbnails ``(M, S, S, 3)`` uint8 of training images, one id each."""

    def __init__(self, thumbnails: torch.Tensor, ids: list[str]) -> None:
        if thumbnails.dtype != torch.uint8 or thumbnails.dim() != 4 or thumbnails.shape[-1] != 3 \
                or thumbnails.shape[1] != thumbnails.shape[2]:
            raise ValueError(f"thumbnails must be an (M, S, S, 3) uint8 tensor, got {thumbnails.dtype} "
                             f"{tuple(thumbnails.shape)}")
        if len(ids) != thumbnails.shape[0] or len(set(ids)) != len(ids):
            raise ValueError("palette ids must be unique, one per thumbnail")
        self.thumbnails = thumbnails.contiguous()
        self.ids = [str(i) for i in ids]
        self._row = {image_id: row for row, image_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def rows_for(self, image_ids: list[str]) -> list[int | None]:
        return [self._row.get(i) for i in image_ids]

    @classmethod
    def from_images(cls, images: list[np.ndarray], ids: list[str], size: int = THUMBNAIL_SIZE) -> "PaletteBank":
        """HxWx3 uint8 images -> thumbnails by area averaging (the colours of regions, not of pixels)."""
        import cv2

        thumbs = [cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA) for image in images]
        return cls(torch.from_numpy(np.stack(thumbs)) if thumbs else torch.zeros(0, size, size, 3, dtype=torch.uint8), ids)

    def save(self, path_stem: str | Path) -> None:
        stem = Path(path_stem)
        atomic_save_tensors(stem.with_name(stem.name + ".safetensors"), {"thumbnails": self.thumbnails})
        atomic_write_text(stem.with_name(stem.name + ".json"), json.dumps(
            {"format_version": PALETTE_FORMAT_VERSION, "size": int(self.thumbnails.shape[1]), "ids": self.ids}))

    @classmethod
    def load(cls, path_stem: str | Path) -> "PaletteBank":
        stem = Path(path_stem)
        meta = read_json(stem.with_name(stem.name + ".json"))
        if not isinstance(meta, dict) or meta.get("format_version") != PALETTE_FORMAT_VERSION:
            raise CheckpointError(f"{stem}.json is not a version-{PALETTE_FORMAT_VERSION} palette file")
        thumbnails = read_tensors(stem.with_name(stem.name + ".safetensors")).get("thumbnails")
        ids = meta.get("ids")
        if thumbnails is None or not isinstance(ids, list):
            raise CheckpointError(f"{stem}: palette thumbnails or ids missing")
        try:
            return cls(thumbnails, ids)
        except ValueError as exc:
            raise CheckpointError(f"{stem}: {exc}") from None


def palette_hints(hint: torch.Tensor, thumbnails: torch.Tensor, generator: torch.Generator, count: int = 8,
                  radius: float = 1.5, margin: float = 3.0) -> torch.Tensor:
    """Add ``count`` round dabs of each thumbnail's colours to ``hint`` where the user gave none.

    hint ``(N, 4, h, h)``; thumbnails ``(N, S, S, 3)`` uint8; dab centres are drawn from
    ``generator`` among pixels farther than ``margin`` (hint px) from any user hint.
    """
    if hint.dim() != 4 or hint.shape[1] != 4 or thumbnails.dim() != 4 or thumbnails.shape[0] != hint.shape[0]:
        raise ValueError(f"need hint (N, 4, h, h) and thumbnails (N, S, S, 3), got {tuple(hint.shape)} and "
                         f"{tuple(thumbnails.shape)}")
    n, _, h, w = hint.shape
    colours = thumbnails.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    colours = F.interpolate(colours, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)
    user = hint[:, 3:4] > 0
    reach = int(np.ceil(margin))
    near_user = F.max_pool2d(user.float(), 2 * reach + 1, stride=1, padding=reach) > 0 if reach else user
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    out = hint.clone()
    for i in range(n):
        free = (~near_user[i, 0]).nonzero()
        if len(free) == 0:
            continue
        picks = free[torch.randperm(len(free), generator=generator)[:count]]
        dabs = torch.zeros(h, w, dtype=torch.bool)
        for y, x in picks.tolist():
            dabs |= (yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2
        dabs &= ~user[i, 0]
        out[i, :3] = torch.where(dabs, colours[i], out[i, :3])
        out[i, 3] = torch.where(dabs, torch.ones_like(out[i, 3]), out[i, 3])
    return out
