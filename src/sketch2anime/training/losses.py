"""GAN and reconstruction losses used by the training stages.

All functions take batched tensors and return a scalar tensor (mean over the batch) so the stages
can weight and sum them. Discriminator logits may be patch maps ``(N, 1, h, w)`` or ``(N,)``, or a
list of patch maps, one per scale of a multi-scale discriminator: then each scale's loss is averaged
over its own patches and the scales are averaged, so a coarse scale's few patches weigh as much as
the fine scale's many.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ADVERSARIAL_LOSSES = ("hinge", "nonsaturating")

Logits = torch.Tensor | list[torch.Tensor]


def logit_scales(logits: Logits) -> list[torch.Tensor]:
    """One discriminator's logits as a list of per-scale maps (a single map: a list of one)."""
    return list(logits) if isinstance(logits, (list, tuple)) else [logits]


def split_real_fake(logits: Logits) -> tuple[Logits, Logits]:
    """Logits of ``cat([real, fake])`` -> (real logits, fake logits), per scale when there are scales."""
    if isinstance(logits, (list, tuple)):
        halves = [scale.float().chunk(2) for scale in logits]
        return [real for real, _ in halves], [fake for _, fake in halves]
    real, fake = logits.float().chunk(2)
    return real, fake


def mean_logit(logits: Logits) -> torch.Tensor:
    """The mean logit, scales weighted equally (for logging)."""
    scales = logit_scales(logits)
    return sum(scale.float().mean() for scale in scales) / len(scales)


def discriminator_loss(real_logits: Logits, fake_logits: Logits, kind: str = "hinge") -> torch.Tensor:
    """D loss on real and (detached) fake logits: hinge or non-saturating (softplus) form."""
    if isinstance(real_logits, (list, tuple)) or isinstance(fake_logits, (list, tuple)):
        reals, fakes = logit_scales(real_logits), logit_scales(fake_logits)
        if len(reals) != len(fakes):
            raise ValueError("real and fake logits must have the same number of scales")
        return sum(discriminator_loss(r, f, kind) for r, f in zip(reals, fakes)) / len(reals)
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown adversarial loss {kind!r} (choose from {', '.join(ADVERSARIAL_LOSSES)})")


def generator_adversarial_loss(fake_logits: Logits, kind: str = "hinge") -> torch.Tensor:
    """G loss on the logits of its own output."""
    if isinstance(fake_logits, (list, tuple)):
        scales = logit_scales(fake_logits)
        return sum(generator_adversarial_loss(scale, kind) for scale in scales) / len(scales)
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown adversarial loss {kind!r} (choose from {', '.join(ADVERSARIAL_LOSSES)})")


def feature_matching_loss(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between D's intermediate features of fake and real (real side detached)."""
    if len(fake_features) != len(real_features):
        raise ValueError("feature matching needs the same number of feature maps for real and fake")
    if not fake_features:
        raise ValueError("feature matching needs at least one discriminator feature map")
    total = sum(F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake_features, real_features))
    return total / len(fake_features)


def r1_penalty(real_logits: Logits, real_images: torch.Tensor) -> torch.Tensor:
    """R1 regulariser: mean over the batch of ||d D(x) / d x||^2 on real images (x requires grad)."""
    total = sum(scale.float().sum() for scale in logit_scales(real_logits))
    (grad,) = torch.autograd.grad(total, real_images, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def masked_hint_loss(image: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """L1 between ``image`` downsampled to the hint grid and the hint colour, inside the mask.

    image: (N, 3, S, S) in [-1, 1]; hint: (N, 4, h, w), channels 0-2 colour, 3 mask. Averaged over
    hinted cells (zero when nothing is hinted) so its scale does not depend on hint density.
    """
    if hint.ndim != 4 or hint.shape[1] != 4:
        raise ValueError(f"hint must be (N, 4, h, w), got {tuple(hint.shape)}")
    size = hint.shape[-2:]
    small = F.adaptive_avg_pool2d(image.float(), size) if image.shape[-2:] != size else image.float()
    mask = hint[:, 3:4].float()
    diff = (small - hint[:, :3].float()).abs() * mask
    hinted = mask.sum() * 3.0
    return diff.sum() / hinted.clamp_min(1.0)


def region_flatness_loss(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How much more ``fake`` varies than ``real`` inside each region the sketch's lines enclose.

    fake, real: (N, 3, H, W); labels: (N, H, W) int64, 0 = ignored, regions numbered across the batch
    (``data.regions.region_labels``). Per region and channel the excess variance relu(var_fake -
    var_real) is summed, weighted by the region's area, over all N*H*W pixels; regions open to the
    picture's edge count too (the true variance of a background is its own allowance). A colourist
    fills a region with one colour and its true shading: blotches of another hue inside it cost, the
    target's own shading does not, and the mean colour is left to L1 and the hints. Measured (README,
    runs 14 and 15): where nothing says which colour to commit to, the cheapest way to lower the
    variance is the region's mean, a grey hedge.
    """
    if fake.shape != real.shape or fake.dim() != 4 or labels.shape != (fake.shape[0], *fake.shape[-2:]):
        raise ValueError(f"region flatness needs (N, C, H, W) pictures and (N, H, W) labels, got "
                         f"{tuple(fake.shape)}, {tuple(real.shape)} and {tuple(labels.shape)}")
    count = int(labels.max()) + 1 if labels.numel() else 1
    if count == 1:
        return fake.float().sum() * 0.0  # keeps the graph: no region in this batch
    flat = labels.reshape(-1).to(fake.device)
    pixels = torch.bincount(flat, minlength=count).to(torch.float32)

    def variance(x: torch.Tensor) -> torch.Tensor:
        values = x.float().permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        sums = values.new_zeros(count, values.shape[1]).index_add_(0, flat, values)
        squares = values.new_zeros(count, values.shape[1]).index_add_(0, flat, values * values)
        mean = sums / pixels.clamp_min(1.0)[:, None]
        return (squares / pixels.clamp_min(1.0)[:, None] - mean * mean).clamp_min(0.0)

    with torch.no_grad():
        target_variance = variance(real)
    excess = F.relu(variance(fake) - target_variance).sum(1)
    return (excess[1:] * pixels[1:]).sum() / flat.numel()


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = 5  # 11 taps, the window of Wang et al. (2004)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _ssim_map(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Differentiable SSIM map of two (N, C, H, W) batches in [0, 1] over the valid region."""
    channels = a.shape[1]
    g = _gaussian_kernel(sigma, a.dtype, a.device)
    rows = g.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cols = g.view(1, 1, -1, 1).expand(channels, 1, -1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, rows, groups=channels), cols, groups=channels)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim_loss(fake: torch.Tensor, real: torch.Tensor, display_factor: int = 2) -> torch.Tensor:
    """1 - SSIM, averaged over the model's size and the size the panel shows.

    fake, real: (N, 3, S, S) in [-1, 1], S >= 11. The second term upsamples both bicubically by
    ``display_factor`` first (the panel shows a 128 px result at 256 px): blotches that are finer
    than SSIM's window at S become structure at the display size, and texture where the true image
    is flat is what costs a GAN most there. ``display_factor`` 1 keeps only the model's size.
    """
    if fake.shape != real.shape or fake.ndim != 4 or fake.shape[-1] < 11 or fake.shape[-2] < 11:
        raise ValueError(f"ssim_loss needs two equal (N, C, H, W) batches of side 11 or more, "
                         f"got {tuple(fake.shape)} and {tuple(real.shape)}")
    if display_factor < 1:
        raise ValueError(f"display_factor must be 1 or more, got {display_factor}")
    a, b = (fake.float() + 1) / 2, (real.detach().float() + 1) / 2
    total = 1 - _ssim_map(a, b).mean()
    if display_factor == 1:
        return total
    size = (fake.shape[-2] * display_factor, fake.shape[-1] * display_factor)
    big_a = F.interpolate(a, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    big_b = F.interpolate(b, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return (total + 1 - _ssim_map(big_a, big_b).mean()) / 2


class PerceptualLoss(nn.Module):
    """L1 between HED-VGG feature maps of two images (frozen network, weights from the cache)."""

    def __init__(self, hed: nn.Module, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")) -> None:
        super().__init__()
        self.hed = hed.eval()
        for p in self.hed.parameters():
            p.requires_grad_(False)
        self.layers = tuple(layers)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fake_features = self.hed.features(fake, self.layers)
        with torch.no_grad():
            real_features = self.hed.features(real, self.layers)
        return sum(F.l1_loss(f.float(), r.float()) for f, r in zip(fake_features, real_features)) / len(self.layers)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # The feature network stays in eval mode whatever the trainer does.
        super().train(mode)
        self.hed.eval()
        return self
