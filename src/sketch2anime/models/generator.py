"""Hint generator: (latent or sketch) + colour hints -> RGB illustration in [-1, 1].

Two conditionings share one decoder that grows a 4x4 map to ``S x S`` (nearest upsampling + two
modulated conv3x3 per doubling, tanh output):

* ``"latent"`` (Sketch2Anime): ``cond`` is the autoencoder latent ``z (N, latent_dim)``; a linear
  layer makes the 4x4 start map. With ``use_decoded_sketch`` the sketch ``(N, 1, S, S)`` (the
  decoded, i.e. projected, sketch at inference; the clean sketch in training) also enters every
  block, so the picture follows the sketch's lines and not only what the latent remembers.
* ``"sketch"`` ("Simple GAN"): ``cond`` is the sketch itself, encoded by a small conv encoder down
  to 4x4 whose features are concatenated into the decoder blocks of the same size (U-Net skips).

Hints ``(N, 4, S/d, S/d)`` (rgb in [-1, 1], 0 off-mask, + mask) are used as follows:

* ``"multiscale"``: a small conv encoder turns the hint into a feature pyramid; at every decoder
  resolution the pyramid level (resized), the raw hint (masked-average resized, so hinted colours
  stay exact) and the resized sketch form a condition map that sets per-pixel gamma/beta of the
  block's normalisation (SPADE-like). Colours therefore reach the output at every scale,
  background hints included.
* ``"input"`` (ablation of the original design): the hint is only concatenated once at the input
  (with the sketch at the encoder input, or resized to the 4x4 start map for latents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import ConfigError
from ..hint_format import DEFAULT_DOWNSCALE, HINT_CHANNELS, hint_upsampled, resize_hint
from .blocks import (
    IMAGE_SIZES,
    NORM_KINDS,
    ConditionNet,
    ConvNormAct,
    ModulatedConv,
    NormKind,
    check_image_batch,
    is_power_of_two,
    level_channels,
    pyramid_resolutions,
    resize_map,
)

__all__ = ["GeneratorConfig", "HintGenerator", "hint_upsampled"]


@dataclass(frozen=True)
class GeneratorConfig:
    image_size: int = 64
    latent_dim: int = 512
    hint_downscale: int = DEFAULT_DOWNSCALE
    base_channels: int = 32
    max_channels: int = 256
    hint_channels: int = 32
    modulation_hidden: int = 32
    conditioning: Literal["latent", "sketch"] = "latent"
    use_decoded_sketch: bool = True
    hint_injection: Literal["multiscale", "input"] = "multiscale"
    norm: NormKind = "instance"

    def __post_init__(self) -> None:
        if self.image_size not in IMAGE_SIZES:
            raise ConfigError(f"generator image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        if not is_power_of_two(self.hint_downscale) or self.image_size // self.hint_downscale < 4:
            raise ConfigError(
                f"generator hint_downscale must be a power of two leaving hints of at least 4x4 pixels, "
                f"got {self.hint_downscale} for image_size {self.image_size}"
            )
        for name in ("latent_dim", "base_channels", "hint_channels", "modulation_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"generator {name} must be positive, got {getattr(self, name)}")
        if self.max_channels < self.base_channels:
            raise ConfigError(f"generator max_channels ({self.max_channels}) must be >= base_channels ({self.base_channels})")
        if self.conditioning not in ("latent", "sketch"):
            raise ConfigError(f"generator conditioning must be 'latent' or 'sketch', got {self.conditioning!r}")
        if self.hint_injection not in ("multiscale", "input"):
            raise ConfigError(f"generator hint_injection must be 'multiscale' or 'input', got {self.hint_injection!r}")
        if self.norm not in NORM_KINDS:
            raise ConfigError(f"generator norm must be one of {NORM_KINDS}, got {self.norm!r}")

    @property
    def hint_size(self) -> int:
        return self.image_size // self.hint_downscale

    @property
    def uses_sketch(self) -> bool:
        """Whether ``forward`` needs a spatial sketch (as ``cond`` or as the ``sketch`` argument)."""
        return self.conditioning == "sketch" or self.use_decoded_sketch


class HintEncoder(nn.Module):
    """``(N, 4, h, h)`` hint -> ``{resolution: (N, C, r, r)}`` for every r in 4..h."""

    def __init__(self, hint_size: int, channels: int, norm: str) -> None:
        super().__init__()
        self.resolutions = pyramid_resolutions(hint_size)
        self.stem = nn.Sequential(ConvNormAct(HINT_CHANNELS, channels, "none"), ConvNormAct(channels, channels, norm))
        self.down = nn.ModuleList(
            ConvNormAct(channels, channels, norm, kernel=4, stride=2) for _ in self.resolutions[1:]
        )

    def forward(self, hint: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stem(hint)
        levels = {hint.shape[-1]: x}
        for layer in self.down:
            x = layer(x)
            levels[x.shape[-1]] = x
        return levels


class DecoderBlock(nn.Module):
    """(optional x2 nearest upsampling) -> concat skip -> two modulated conv3x3.

    Both convs share one :class:`ConditionNet` pass over the condition map; each has its own
    1x1 gamma/beta head.
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, cond_ch: int, norm: str, hidden: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest") if upsample else nn.Identity()
        self.cond_net = ConditionNet(cond_ch, hidden) if cond_ch > 0 else None
        mod_hidden = hidden if cond_ch > 0 else 0
        self.conv1 = ModulatedConv(in_ch + skip_ch, out_ch, mod_hidden, norm)
        self.conv2 = ModulatedConv(out_ch, out_ch, mod_hidden, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor:
        x = self.upsample(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        features = self.cond_net(cond) if self.cond_net is not None else None
        return self.conv2(self.conv1(x, features), features)


class HintGenerator(nn.Module):
    """``forward(cond, hint, sketch=None) -> (N, 3, S, S)`` in [-1, 1].

    ``cond``: ``(N, latent_dim)`` latent (conditioning "latent") or ``(N, 1, S, S)`` sketch
    (conditioning "sketch"). ``hint``: ``(N, 4, S/hint_downscale, S/hint_downscale)``.
    ``sketch``: ``(N, 1, S, S)`` in [-1, 1], required for "latent" with ``use_decoded_sketch``,
    ignored otherwise.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        size, norm = config.image_size, config.norm
        self.resolutions = pyramid_resolutions(size)
        ch = {r: level_channels(r, size, config.base_channels, config.max_channels) for r in self.resolutions}
        multiscale = config.hint_injection == "multiscale"
        input_hint = 0 if multiscale else HINT_CHANNELS

        self.hint_encoder = HintEncoder(config.hint_size, config.hint_channels, norm) if multiscale else None
        cond_ch = (config.hint_channels + HINT_CHANNELS if multiscale else 0) + (1 if config.uses_sketch else 0)

        skip_ch = {r: 0 for r in self.resolutions}
        if config.conditioning == "latent":
            self.from_latent = nn.Linear(config.latent_dim, ch[4] * 16)
            self.sketch_encoder = None
            start_extra = input_hint  # "input" hints join the 4x4 start map
        else:
            self.from_latent = None
            # U-Net encoder: stem at S (sketch [+ hint]), stride-2 convs down to 4x4.
            self.sketch_stem = ConvNormAct(1 + input_hint, ch[size], "none")
            self.sketch_encoder = nn.ModuleList(
                ConvNormAct(ch[r], ch[r // 2], norm, kernel=4, stride=2) for r in reversed(self.resolutions[1:])
            )
            skip_ch = dict(ch)
            start_extra = 0
        self._start_channels = ch[4]

        blocks = []
        for r in self.resolutions:
            in_ch = (ch[4] + start_extra) if r == 4 else ch[r // 2]
            # The 4x4 start in sketch mode *is* the encoder output, so no separate skip there.
            skip = skip_ch[r] if r != 4 else 0
            blocks.append(DecoderBlock(in_ch, skip, ch[r], cond_ch, norm, config.modulation_hidden, upsample=r != 4))
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(ch[size], 3, 3, padding=1)

    # -----------------------------------------------------------------------------------------

    def _check_inputs(self, cond: torch.Tensor, hint: torch.Tensor, sketch: torch.Tensor | None) -> torch.Tensor | None:
        cfg = self.config
        if cfg.conditioning == "latent":
            if not isinstance(cond, torch.Tensor) or cond.dim() != 2 or cond.shape[1] != cfg.latent_dim:
                shape = tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__
                raise ValueError(f"latent conditioning needs cond of shape (N, {cfg.latent_dim}), got {shape}")
            if cfg.use_decoded_sketch:
                if sketch is None:
                    raise ValueError("this generator uses the decoded sketch: pass sketch=(N, 1, S, S)")
                check_image_batch(sketch, 1, cfg.image_size, "sketch")
                if sketch.shape[0] != cond.shape[0]:
                    raise ValueError(f"sketch batch {sketch.shape[0]} differs from latent batch {cond.shape[0]}")
            else:
                sketch = None
        else:
            check_image_batch(cond, 1, cfg.image_size, "sketch (cond)")
            sketch = cond
        check_image_batch(hint, HINT_CHANNELS, cfg.hint_size, "hint")
        if hint.shape[0] != cond.shape[0]:
            raise ValueError(f"hint batch {hint.shape[0]} differs from cond batch {cond.shape[0]}")
        return sketch

    def _condition_maps(self, hint: torch.Tensor, sketch: torch.Tensor | None) -> dict[int, torch.Tensor | None]:
        """Per-resolution map that drives the spatial modulation (hint features, raw hint, sketch)."""
        pyramid = self.hint_encoder(hint) if self.hint_encoder is not None else None
        maps: dict[int, torch.Tensor | None] = {}
        for r in self.resolutions:
            parts = []
            if pyramid is not None:
                level = pyramid[min(r, self.config.hint_size)]
                parts += [resize_map(level, r), resize_hint(hint, r)]
            if sketch is not None:
                parts.append(resize_map(sketch, r))
            maps[r] = torch.cat(parts, dim=1) if parts else None
        return maps

    def forward(self, cond: torch.Tensor, hint: torch.Tensor, sketch: torch.Tensor | None = None) -> torch.Tensor:
        sketch = self._check_inputs(cond, hint, sketch)
        cfg = self.config
        maps = self._condition_maps(hint, sketch)
        skips: dict[int, torch.Tensor] = {}

        if cfg.conditioning == "latent":
            x = self.from_latent(cond).view(cond.shape[0], self._start_channels, 4, 4)
            x = nn.functional.leaky_relu(x, 0.2)
            if cfg.hint_injection == "input":
                x = torch.cat([x, resize_hint(hint, 4)], dim=1)
        else:
            x = cond
            if cfg.hint_injection == "input":
                x = torch.cat([x, hint_upsampled(hint, cfg.image_size)], dim=1)
            x = self.sketch_stem(x)
            skips[cfg.image_size] = x
            for layer in self.sketch_encoder:
                x = layer(x)
                skips[x.shape[-1]] = x

        for r, block in zip(self.resolutions, self.blocks):
            skip = skips.get(r) if r != 4 else None
            x = block(x, skip, maps[r])
        return torch.tanh(self.to_rgb(x))
