"""Gatys et al. (2016) neural style transfer baseline, on HED-VGG16 features (not ImageNet VGG).

For each sketch an image is optimised so that its deep features match the sketch's (content) and
its feature Gram matrices match those of a colour image (style). Gatys used ImageNet VGG19; no
ImageNet VGG is available offline here, so the features come from the VGG16 body of the
BSDS500-trained HED edge detector (``models/hed.py``). Every label this module produces says
"HED-VGG16 features (not ImageNet VGG)": results are not comparable with published NST numbers.

Losses (per sample, summed over the batch), each layer normalised by its target's energy so the
weights do not depend on the feature scale of the network::

    content = sum_l ||F_l(x) - F_l(c)||^2 / ||F_l(c)||^2
    style   = sum_l ||G_l(x) - G_l(s)||^2 / ||G_l(s)||^2 / len(style_layers),  G = F F^T / (C H W)

The sketch (1 channel) is repeated to grey RGB. The image is optimised directly in pixel space
(Adam, or L-BFGS as in the paper) and clamped to [-1, 1] after every step. Colour hints are not
used: NST has no way to take them.

Style image per sketch (the default rule, ``pick_style_indices``): a training colour image chosen
by a seeded hash of the sample id, i.e. a random training image that does not depend on the
evaluation order or batch size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

FEATURES_LABEL = "HED-VGG16 features (not ImageNet VGG)"
METHOD_LABEL = f"Gatys neural style transfer ({FEATURES_LABEL})"

FeaturesFn = Callable[[torch.Tensor, tuple[str, ...]], list[torch.Tensor]]


@dataclass(frozen=True)
class StyleTransferConfig:
    """NST settings.

    steps: optimiser steps (for L-BFGS each step runs up to ``lbfgs_max_iter`` loss evaluations).
    content_weight / style_weight: weights of the normalised losses above.
    content_layers / style_layers: HED-VGG16 layer names. init: start from the grey sketch
    ("content") or from Gaussian noise of std ``noise_std`` ("noise", as Gatys).
    """

    steps: int = 200
    content_weight: float = 1.0
    style_weight: float = 100.0
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    optimizer: Literal["adam", "lbfgs"] = "adam"
    lr: float = 0.02
    lbfgs_max_iter: int = 20
    init: Literal["content", "noise"] = "content"
    noise_std: float = 0.5

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.content_weight < 0 or self.style_weight < 0 or self.content_weight + self.style_weight <= 0:
            raise ValueError("content_weight and style_weight must be >= 0 and not both 0")
        if not self.content_layers or not self.style_layers:
            raise ValueError("content_layers and style_layers must each name at least one layer")
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if self.init not in ("content", "noise"):
            raise ValueError(f"init must be 'content' or 'noise', got {self.init!r}")
        if self.lr <= 0 or self.lbfgs_max_iter < 1 or self.noise_std < 0:
            raise ValueError("lr must be > 0, lbfgs_max_iter >= 1 and noise_std >= 0")


def gram(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrices normalised by C*H*W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _sketch_to_rgb(sketch: torch.Tensor) -> torch.Tensor:
    if sketch.ndim != 4 or sketch.shape[1] not in (1, 3):
        raise ValueError(f"content sketch must have shape (N, 1, H, W), got {tuple(sketch.shape)}")
    return sketch.expand(-1, 3, -1, -1) if sketch.shape[1] == 1 else sketch


def _relative(diff: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Per-sample squared error over the target energy; eps keeps an all-zero target finite.
    dims = tuple(range(1, diff.ndim))
    return diff.pow(2).sum(dims) / (target.pow(2).sum(dims) + 1e-8)


class StyleTransferLoss:
    """Targets from one (content, style) batch; ``__call__(image) -> (N,)`` per-sample total loss."""

    def __init__(self, content_sketch: torch.Tensor, style_image: torch.Tensor,
                 features_fn: FeaturesFn, config: StyleTransferConfig) -> None:
        content = _sketch_to_rgb(content_sketch)
        if style_image.ndim != 4 or style_image.shape[1] != 3 or style_image.shape[0] != content.shape[0]:
            raise ValueError(f"style image must have shape ({content.shape[0]}, 3, H, W), got {tuple(style_image.shape)}")
        self.features_fn = features_fn
        self.config = config
        self.layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
        with torch.no_grad():
            content_features = self._features(content)
            style_features = self._features(style_image)
        self.content_targets = [content_features[name] for name in config.content_layers]
        self.style_targets = [gram(style_features[name]) for name in config.style_layers]

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.features_fn(x, self.layers)
        if len(outputs) != len(self.layers):
            raise ValueError(f"features_fn returned {len(outputs)} maps for {len(self.layers)} layers")
        return dict(zip(self.layers, outputs))

    def parts(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (content, style) losses, each ``(N,)``."""
        features = self._features(image)
        content = sum(_relative(features[name] - target, target)
                      for name, target in zip(self.config.content_layers, self.content_targets))
        style = sum(_relative(gram(features[name]) - target, target)
                    for name, target in zip(self.config.style_layers, self.style_targets))
        return content, style / len(self.style_targets)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        content, style = self.parts(image)
        return self.config.content_weight * content + self.config.style_weight * style


def stylize(content_sketch: torch.Tensor, style_image: torch.Tensor, features_fn: FeaturesFn,
            config: StyleTransferConfig = StyleTransferConfig(), generator: torch.Generator | None = None,
            history: list[float] | None = None) -> torch.Tensor:
    """Gatys NST on ``features_fn`` (normally HED-VGG16 features, not ImageNet VGG).

    content_sketch: (N, 1, S, S) in [-1, 1]; style_image: (N, 3, S, S) in [-1, 1];
    features_fn(x (N, 3, H, W), layers) -> list of feature maps (e.g. ``HED.features``);
    generator: the noise source for ``init="noise"``. Returns (N, 3, S, S) in [-1, 1], detached.
    If ``history`` is a list, the batch-summed loss before each step is appended to it.
    """
    if content_sketch.shape[-2:] != style_image.shape[-2:]:
        raise ValueError(f"sketch {tuple(content_sketch.shape)} and style image {tuple(style_image.shape)} "
                         "must have the same size")
    loss_fn = StyleTransferLoss(content_sketch, style_image, features_fn, config)
    content = _sketch_to_rgb(content_sketch).detach()
    if config.init == "content":
        start = content.clone()
    else:
        noise = torch.randn(content.shape, generator=generator, dtype=content.dtype, device="cpu")
        start = (noise.to(content.device) * config.noise_std).clamp(-1, 1)
    image = start.contiguous().requires_grad_(True)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(image).sum()
        loss.backward()
        return loss

    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam([image], lr=config.lr)
    else:
        optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=config.lbfgs_max_iter, history_size=50)
    with torch.enable_grad():
        for _ in range(config.steps):
            loss = optimizer.step(closure)
            if history is not None:
                history.append(float(loss.detach()))
            with torch.no_grad():
                image.clamp_(-1.0, 1.0)
    return image.detach()


def pick_style_indices(sample_ids: Sequence[str], n_styles: int, seed: int = 0) -> list[int]:
    """The default style rule: index of the training colour image used as style for each sample.

    A seeded hash of the sample id, so each sketch always gets the same random training image
    whatever the evaluation order, batch size or subset.
    """
    if n_styles < 1:
        raise ValueError("need at least one training colour image to take the style from")
    picks = []
    for sample_id in sample_ids:
        digest = hashlib.sha256(f"{seed}:{sample_id}".encode("utf-8")).digest()
        picks.append(int.from_bytes(digest[:8], "little") % n_styles)
    return picks


def hed_features_fn(weights_path: str | Path | None = None) -> FeaturesFn:
    """``HED.features`` with the converted BSDS500 weights (HED-VGG16 features, not ImageNet VGG).

    Raises ``MissingWeightsError`` (a ValueError) naming the fetch command when the weights are absent.
    """
    from ..weights import load_pretrained_hed  # late: evaluation must import without weights

    hed = load_pretrained_hed(weights_path)
    hed.requires_grad_(False)

    def features(x: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
        return hed.features(x, layers)

    return features


class StyleTransferBaseline:
    """The NST baseline behind the common ``(sketch, hint) -> image`` interface.

    style_images: (M, 3, S, S) training colour images in [-1, 1]. ``__call__(sketch (N, 1, S, S),
    hint=None, sample_ids=None)`` stylises each sketch with the image ``pick_style_indices``
    picks for its id (ids default to the running count of sketches seen). Hints are ignored.
    """

    label = METHOD_LABEL

    def __init__(self, features_fn: FeaturesFn, style_images: torch.Tensor,
                 config: StyleTransferConfig = StyleTransferConfig(), seed: int = 0) -> None:
        if style_images.ndim != 4 or style_images.shape[1] != 3 or style_images.shape[0] < 1:
            raise ValueError(f"style_images must have shape (M, 3, S, S) with M >= 1, got {tuple(style_images.shape)}")
        self.features_fn = features_fn
        self.style_images = style_images
        self.config = config
        self.seed = seed
        self._seen = 0

    def __call__(self, sketch: torch.Tensor, hint: torch.Tensor | None = None,
                 sample_ids: Sequence[str] | None = None) -> torch.Tensor:
        del hint  # NST cannot use colour hints
        if sample_ids is None:
            sample_ids = [str(self._seen + i) for i in range(sketch.shape[0])]
        if len(sample_ids) != sketch.shape[0]:
            raise ValueError(f"got {len(sample_ids)} sample ids for {sketch.shape[0]} sketches")
        self._seen += sketch.shape[0]
        picks = pick_style_indices(sample_ids, self.style_images.shape[0], self.seed)
        style = self.style_images[picks].to(device=sketch.device, dtype=sketch.dtype)
        generator = torch.Generator().manual_seed(self.seed)
        return stylize(sketch, style, self.features_fn, self.config, generator)
