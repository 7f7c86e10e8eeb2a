"""GAN and reconstruction losses used by the training stages.

All functions take batched tensors and return a scalar tensor (mean over the batch) so the stages
can weight and sum them. Discriminator logits may be patch maps ``(N, 1, h, w)`` or ``(N,)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ADVERSARIAL_LOSSES = ("hinge", "nonsaturating")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """D loss on real and (detached) fake logits: hinge or non-saturating (softplus) form."""
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown adversarial loss {kind!r} (choose from {', '.join(ADVERSARIAL_LOSSES)})")


def generator_adversarial_loss(fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """G loss on the logits of its own output."""
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


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 regulariser: mean over the batch of ||d D(x) / d x||^2 on real images (x requires grad)."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_images, create_graph=True)
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
