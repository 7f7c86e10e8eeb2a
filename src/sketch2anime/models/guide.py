"""The guide: what the sketch autoencoder contributes to the guided generator, at any model size.

The autoencoder works at its own (small) size ``A``; the guided generator at ``S >= A``. Training
and inference both go through these two functions, so the generator always sees the same kind of
guide:

* ``autoencoder_input(sketch (N, 1, S, S), A) -> (N, 1, A, A)``: a min-pool (ink wins), so a 1 px
  line at ``S`` stays a dark 1 px line at ``A`` instead of fading to grey;
* ``guide_from_latent(autoencoder, z (N, D), S) -> (N, 1, S, S)``: the decoded sketch of ``z``,
  bilinearly upsampled to ``S`` (soft lines: the guide says where forms are, the user's lines
  say exactly where).

Sketches are in [-1, 1] with paper +1 and ink -1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def autoencoder_input(sketch: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, 1, S, S)`` -> ``(N, 1, size, size)``; ``S`` must be ``size`` times a whole number."""
    side = sketch.shape[-1]
    if side == size:
        return sketch
    if side % size != 0:
        raise ValueError(f"a {side}px sketch cannot be pooled to the autoencoder's {size}px")
    factor = side // size
    return -F.max_pool2d(-sketch, kernel_size=factor, stride=factor)


def guide_from_latent(autoencoder: nn.Module, z: torch.Tensor, size: int) -> torch.Tensor:
    """Decoded sketch of ``z (N, D)`` at ``size x size`` in [-1, 1]."""
    decoded = autoencoder.decode_sketch(z)
    if decoded.shape[-1] == size:
        return decoded
    return F.interpolate(decoded, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


def encode_sketch(autoencoder: nn.Module, sketch: torch.Tensor) -> torch.Tensor:
    """Latent ``(N, D)`` of a sketch at any multiple of the autoencoder's size."""
    return autoencoder.encode(autoencoder_input(sketch, autoencoder.config.image_size)).float()
