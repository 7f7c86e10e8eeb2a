"""Grow a trained guided U-Net into a wider / deeper one that computes the same function (Net2Net).

The default generator is narrow (16 channels at full resolution) so that a panel update stays under
100 ms on one core; a wider one can only be afforded where the latency allows, and training it from
scratch costs many CPU hours. Function-preserving growth (Chen et al. 2016, "Net2Net") starts the
wider network exactly where the trained one is, so a fine-tune only has to learn what the extra
capacity adds:

* widening a feature map from ``c`` to ``c' >= c`` channels keeps the old channels and fills the
  new ones with copies of randomly chosen old ones (their producing filters, biases and norm
  parameters copied); every consumer of that map splits each old input weight among the copies
  with random positive fractions that sum to one. Copies carry identical activations, so the sum
  (and the output) is unchanged, while the unequal splits give the copies different gradients: the
  symmetry that would keep them identical forever is broken from the first step.
* an added bottleneck block starts as the identity: its last norm's scale and shift are zero, so
  it adds nothing to its residual until training gives it weight.

Instance norm is per channel, so a copied channel is normalised exactly as its source; group norm
mixes channels within groups whose boundaries move with the width, so it is refused.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .guided_unet import GuidedUNet, GuidedUNetConfig

# Channels the guided U-Net concatenates besides its own feature maps: hint (4) and guide (1).
_HINT_AND_GUIDE = 5
_HINT = 4


def check_growable(old: GuidedUNetConfig, new: GuidedUNetConfig) -> None:
    """``ValueError`` unless ``new`` only widens levels and/or adds bottleneck blocks to ``old``."""
    fixed = replace(new, base_channels=old.base_channels, max_channels=old.max_channels, res_blocks=old.res_blocks)
    if fixed != old:
        raise ValueError(f"a guided U-Net can only grow in base_channels, max_channels and res_blocks; "
                         f"{old} cannot become {new}")
    if old.norm != "instance":
        raise ValueError(f"growing needs instance norm (group norm's groups move with the width), got {old.norm!r}")
    narrower = [level for level in range(old.depth + 1) if new.width(level) < old.width(level)]
    if narrower or new.res_blocks < old.res_blocks:
        raise ValueError(f"growing cannot remove capacity: level widths {[old.width(i) for i in range(old.depth + 1)]}"
                         f" -> {[new.width(i) for i in range(new.depth + 1)]}, res_blocks {old.res_blocks} -> "
                         f"{new.res_blocks}")


def _channel_map(old: int, new: int, generator: torch.Generator) -> torch.Tensor:
    """``(new,)`` source channel of every new channel: the old ones in place, then random copies."""
    extra = torch.randint(0, old, (new - old,), generator=generator)
    return torch.cat([torch.arange(old), extra])


def _split_fractions(mapping: torch.Tensor, old: int, fan_out: int, generator: torch.Generator) -> torch.Tensor:
    """``(fan_out, new)`` positive fractions; for each output row and old channel, the fractions of
    its copies sum to one."""
    raw = 0.5 + torch.rand(fan_out, mapping.numel(), generator=generator, dtype=torch.float64)
    totals = torch.zeros(fan_out, old, dtype=torch.float64).index_add_(1, mapping, raw)
    return raw / totals[:, mapping]


def _grow_inputs(weight: torch.Tensor, segments: list[tuple[int, torch.Tensor | None]],
                 generator: torch.Generator) -> torch.Tensor:
    """Weight ``(out, in, ...)`` whose input is the concatenation of ``segments`` — each ``(old
    channels, map or None)``, None for fixed inputs (hint, guide) — with every mapped segment widened."""
    pieces, start = [], 0
    for count, mapping in segments:
        part = weight[:, start:start + count]
        start += count
        if mapping is None:
            pieces.append(part)
            continue
        fractions = _split_fractions(mapping, count, part.shape[0], generator).to(part.dtype)
        shape = fractions.shape + (1,) * (part.dim() - 2)
        pieces.append(part[:, mapping] * fractions.reshape(shape))
    if start != weight.shape[1]:
        raise ValueError(f"input segments cover {start} of {weight.shape[1]} channels")
    return torch.cat(pieces, dim=1)


def _grow_conv(old: nn.Conv2d, new: nn.Conv2d, segments: list[tuple[int, torch.Tensor | None]],
               out_map: torch.Tensor | None, generator: torch.Generator) -> None:
    weight = _grow_inputs(old.weight.detach(), segments, generator)
    bias = old.bias.detach()
    if out_map is not None:
        weight, bias = weight[out_map], bias[out_map]
    new.weight.copy_(weight)
    new.bias.copy_(bias)


def _grow_norm(old: nn.Module, new: nn.Module, out_map: torch.Tensor) -> None:
    if getattr(old, "weight", None) is not None:
        new.weight.copy_(old.weight.detach()[out_map])
        new.bias.copy_(old.bias.detach()[out_map])


def _grow_block(old: nn.Sequential, new: nn.Sequential, segments, out_map, generator) -> None:
    """A ``_conv`` block: Conv2d, optional norm, activation."""
    _grow_conv(old[0], new[0], segments, out_map, generator)
    if isinstance(old[1], nn.InstanceNorm2d):
        _grow_norm(old[1], new[1], out_map)


@torch.no_grad()
def grow_guided_unet(model: GuidedUNet, config: GuidedUNetConfig, seed: int = 0) -> GuidedUNet:
    """A ``GuidedUNet(config)`` that computes what ``model`` computes (to float rounding).

    ``config`` may only raise ``base_channels`` / ``max_channels`` (no level narrower than before)
    and ``res_blocks``; ``seed`` draws which channels are copied and how their weights are split.
    """
    check_growable(model.config, config)
    old_cfg, generator = model.config, torch.Generator().manual_seed(int(seed))
    grown = GuidedUNet(config)
    maps = [_channel_map(old_cfg.width(i), config.width(i), generator) for i in range(config.depth + 1)]

    def level(i: int) -> tuple[int, torch.Tensor]:
        return old_cfg.width(i), maps[i]

    _grow_block(model.stem, grown.stem, [(2 + _HINT, None)], maps[0], generator)
    for i, (old_down, new_down) in enumerate(zip(model.down, grown.down), start=1):
        _grow_block(old_down[0], new_down[0], [level(i - 1)], maps[i], generator)
        _grow_block(old_down[1], new_down[1], [level(i)], maps[i], generator)
    bottom = old_cfg.depth
    for old_block, new_block in zip(model.middle, grown.middle):
        _grow_conv(old_block.conv1, new_block.conv1, [level(bottom)], maps[bottom], generator)
        _grow_norm(old_block.norm1, new_block.norm1, maps[bottom])
        if old_block.film is not None:  # gamma rows then beta rows, each per channel
            rows = torch.cat([maps[bottom], maps[bottom] + old_cfg.width(bottom)])
            new_block.film.weight.copy_(old_block.film.weight.detach()[rows])
            new_block.film.bias.copy_(old_block.film.bias.detach()[rows])
        _grow_conv(old_block.conv2, new_block.conv2, [level(bottom)], maps[bottom], generator)
        _grow_norm(old_block.norm2, new_block.norm2, maps[bottom])
    for new_block in list(grown.middle)[len(model.middle):]:
        nn.init.zeros_(new_block.norm2.weight)  # x + 0: the added block starts as the identity
        nn.init.zeros_(new_block.norm2.bias)
    levels = range(old_cfg.depth - 1, -1, -1)
    for lv, old_up, new_up, old_fuse, new_fuse in zip(levels, model.up, grown.up, model.fuse, grown.fuse):
        _grow_block(old_up[1], new_up[1], [level(lv + 1)], maps[lv], generator)
        _grow_block(old_fuse, new_fuse, [level(lv), level(lv), (_HINT_AND_GUIDE, None)], maps[lv], generator)
    _grow_conv(model.to_rgb, grown.to_rgb, [level(0), (_HINT, None)], None, generator)
    return grown
