"""Sketch autoencoder: a 1-channel sketch <-> a deterministic ``latent_dim`` vector.

The latent space is what the projection step (``models/projection.py``) works in: a user's
rough sketch is encoded, moved towards the manifold of training latents, and decoded back to a
clean sketch that conditions the generator.

Encoder: stem conv at full size, then a stride-2 conv + conv3x3 per halving down to 4x4, then a
linear layer to the latent. Decoder: linear to a 4x4 map, nearest upsampling + two conv3x3 per
doubling, and a final conv to one channel of ink *logits* (``sigmoid(logit)`` = P(ink)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from .blocks import (
    IMAGE_SIZES,
    NORM_KINDS,
    ConvNormAct,
    NormKind,
    check_image_batch,
    level_channels,
    pyramid_resolutions,
)

# 32 px: the part autoencoder of models/part_guide.py (an eye or a mouth).
AUTOENCODER_SIZES: tuple[int, ...] = (32, *IMAGE_SIZES)


@dataclass(frozen=True)
class AutoencoderConfig:
    image_size: int = 64
    latent_dim: int = 512
    base_channels: int = 32
    max_channels: int = 256
    norm: NormKind = "group"

    def __post_init__(self) -> None:
        if self.image_size not in AUTOENCODER_SIZES:
            raise ConfigError(f"autoencoder image_size must be one of {AUTOENCODER_SIZES}, got {self.image_size}")
        if self.latent_dim < 1:
            raise ConfigError(f"autoencoder latent_dim must be positive, got {self.latent_dim}")
        if self.base_channels < 1 or self.max_channels < self.base_channels:
            raise ConfigError(
                f"autoencoder needs 1 <= base_channels <= max_channels, got {self.base_channels} and {self.max_channels}"
            )
        if self.norm not in NORM_KINDS:
            raise ConfigError(f"autoencoder norm must be one of {NORM_KINDS}, got {self.norm!r}")


class SketchAutoencoder(nn.Module):
    """``encode(sketch (N,1,S,S) in [-1,1]) -> z (N, latent_dim)``; ``decode(z) -> logits (N,1,S,S)``."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        size, norm = config.image_size, config.norm
        resolutions = pyramid_resolutions(size)  # [4, 8, ..., S]
        ch = {r: level_channels(r, size, config.base_channels, config.max_channels) for r in resolutions}

        # Encoder: S -> 4.
        enc: list[nn.Module] = [ConvNormAct(1, ch[size], "none", kernel=3)]
        for r in reversed(resolutions[1:]):
            enc.append(ConvNormAct(ch[r], ch[r // 2], norm, kernel=4, stride=2))
            enc.append(ConvNormAct(ch[r // 2], ch[r // 2], norm, kernel=3))
        self.encoder = nn.Sequential(*enc)
        self.to_latent = nn.Linear(ch[4] * 16, config.latent_dim)

        # Decoder: 4 -> S.
        self.from_latent = nn.Linear(config.latent_dim, ch[4] * 16)
        self._start_channels = ch[4]
        dec: list[nn.Module] = [ConvNormAct(ch[4], ch[4], norm, kernel=3)]
        for r in resolutions[1:]:
            dec.append(nn.Upsample(scale_factor=2, mode="nearest"))
            dec.append(ConvNormAct(ch[r // 2], ch[r], norm, kernel=3))
            dec.append(ConvNormAct(ch[r], ch[r], norm, kernel=3))
        self.decoder = nn.Sequential(*dec)
        self.to_logits = nn.Conv2d(ch[size], 1, 3, padding=1)

    def encode(self, sketch: torch.Tensor) -> torch.Tensor:
        """``(N, 1, S, S)`` sketch in [-1, 1] (paper = +1) -> ``(N, latent_dim)`` latent."""
        check_image_batch(sketch, 1, self.config.image_size, "sketch")
        features = self.encoder(sketch)
        return self.to_latent(features.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, latent_dim)`` -> ``(N, 1, S, S)`` ink logits."""
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"latent must have shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        x = F.leaky_relu(self.from_latent(z), 0.2).view(z.shape[0], self._start_channels, 4, 4)
        return self.to_logits(self.decoder(x))

    def decode_sketch(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, latent_dim)`` -> ``(N, 1, S, S)`` sketch in [-1, 1] (paper = +1, ink = -1)."""
        return logits_to_sketch(self.decode(z))

    def forward(self, sketch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 1, S, S)`` -> ``(z (N, latent_dim), logits (N, 1, S, S))``."""
        z = self.encode(sketch)
        return z, self.decode(z)


def logits_to_sketch(logits: torch.Tensor) -> torch.Tensor:
    """Ink logits -> sketch in [-1, 1]: P(ink) = 1 maps to -1 (ink), 0 to +1 (paper)."""
    return 1.0 - 2.0 * torch.sigmoid(logits)


def sketch_reconstruction_loss(
    logits: torch.Tensor,
    target_sketch: torch.Tensor,
    dice_weight: float = 1.0,
    max_pos_weight: float = 50.0,
) -> torch.Tensor:
    """Ink-balanced BCE + soft Dice on ink; a scalar.

    ``logits`` ``(N, 1, S, S)`` ink logits; ``target_sketch`` ``(N, 1, S, S)`` in [-1, 1], ink where
    ``target < 0``. Lines cover a few percent of a page, so plain BCE is minimised by a blank page;
    weighting ink pixels by ``paper/ink`` (per batch, capped at ``max_pos_weight``) balances the two
    classes, and the Dice term scores the ink overlap directly, which a blank output gets 0 of
    (averaged over the samples that have ink).
    """
    if logits.shape != target_sketch.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target_sketch.shape)} must have the same shape")
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"expected (N, 1, S, S) tensors, got {tuple(logits.shape)}")
    ink = (target_sketch < 0).to(logits.dtype)
    n_ink = ink.sum()
    n_paper = ink.numel() - n_ink
    pos_weight = (n_paper / n_ink.clamp_min(1.0)).clamp(1.0, max_pos_weight).detach()
    bce = F.binary_cross_entropy_with_logits(logits, ink, pos_weight=pos_weight)
    # Normalise so the BCE scale does not depend on how much ink the batch has.
    bce = bce * 2.0 / (1.0 + pos_weight)

    prob = torch.sigmoid(logits).flatten(1)
    target = ink.flatten(1)
    overlap = (prob * target).sum(1)
    dice = (2.0 * overlap + 1.0) / (prob.sum(1) + target.sum(1) + 1.0)
    # Dice is undefined-ish on a blank page (tiny probabilities summed over every pixel swamp
    # the smoothing term); blank targets are left to the BCE term.
    has_ink = (target.sum(1) > 0).to(dice.dtype)
    dice_loss = ((1.0 - dice) * has_ink).sum() / has_ink.sum().clamp_min(1.0)
    return bce + dice_weight * dice_loss
