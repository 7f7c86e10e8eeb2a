"""Training losses: the SSIM loss agrees with the evaluation's SSIM and punishes texture on flat truth."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sketch2anime.evaluation.ssim import ssim
from sketch2anime.training.losses import (
    discriminator_loss,
    generator_adversarial_loss,
    r1_penalty,
    split_real_fake,
    ssim_loss,
)


def _smooth_images(seed: int, n: int = 3, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_ssim_loss_at_model_size_is_one_minus_the_evaluation_ssim() -> None:
    a, b = _smooth_images(0), _smooth_images(1)
    expected = 1 - ssim(a, b).mean().item()
    assert ssim_loss(a, b, display_factor=1).item() == pytest.approx(expected, abs=1e-4)
    assert ssim_loss(a, a, display_factor=2).item() == pytest.approx(0.0, abs=1e-5)


def test_texture_on_a_flat_target_costs_more_than_a_small_flat_offset() -> None:
    # What L1 gets wrong: faint noise has half the L1 of a flat offset, yet it is what the eye (and
    # SSIM) sees as blotches on a flat region.
    target = torch.zeros(2, 3, 32, 32)
    offset = target + 0.1
    noise = 0.05 * torch.where(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) < 0.5, -1.0, 1.0)
    noisy = target + noise
    assert F.l1_loss(noisy, target) < F.l1_loss(offset, target)
    assert ssim_loss(noisy, target) > 10 * ssim_loss(offset, target)


def test_ssim_loss_gradient_removes_texture() -> None:
    target = torch.zeros(1, 3, 24, 24)
    fake = (0.2 * torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(4))).requires_grad_(True)
    optimizer = torch.optim.Adam([fake], lr=0.01)
    before = ssim_loss(fake, target).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = ssim_loss(fake, target)
        loss.backward()
        optimizer.step()
    assert ssim_loss(fake, target).item() < 0.5 * before
    assert fake.detach().std() < 0.2 * 0.8


@pytest.mark.parametrize("fake, real, factor", [
    (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), 2),        # smaller than the window
    (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 12), 2),    # shapes differ
    (torch.zeros(3, 16, 16), torch.zeros(3, 16, 16), 2),          # not a batch
    (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), 0),    # no display size
])
def test_ssim_loss_rejects_bad_input(fake: torch.Tensor, real: torch.Tensor, factor: int) -> None:
    with pytest.raises(ValueError):
        ssim_loss(fake, real, display_factor=factor)


@pytest.mark.parametrize("kind", ["hinge", "nonsaturating"])
def test_multiscale_adversarial_losses_weigh_every_scale_equally(kind: str) -> None:
    """A coarse scale's 36 patches count as much as the fine scale's 196, not 36/232 of the loss."""
    generator = torch.Generator().manual_seed(0)
    fine = torch.randn(4, 1, 14, 14, generator=generator)
    coarse = torch.randn(4, 1, 6, 6, generator=generator) - 2.0  # the coarse scale thinks these are fake
    real, fake = split_real_fake([fine, coarse])
    assert [tuple(x.shape) for x in real] == [(2, 1, 14, 14), (2, 1, 6, 6)]
    assert torch.equal(real[1], coarse[:2]) and torch.equal(fake[0], fine[2:])
    expected = (discriminator_loss(fine[:2], fine[2:], kind) + discriminator_loss(coarse[:2], coarse[2:], kind)) / 2
    assert torch.allclose(discriminator_loss(real, fake, kind), expected)
    pooled = discriminator_loss(torch.cat([fine[:2].flatten(1), coarse[:2].flatten(1)], 1),
                                torch.cat([fine[2:].flatten(1), coarse[2:].flatten(1)], 1), kind)
    assert not torch.allclose(pooled, expected, atol=1e-3)
    expected_g = (generator_adversarial_loss(fine, kind) + generator_adversarial_loss(coarse, kind)) / 2
    assert torch.allclose(generator_adversarial_loss([fine, coarse], kind), expected_g)
    with pytest.raises(ValueError, match="scales"):
        discriminator_loss([fine], [fine, coarse], kind)


def test_r1_penalty_sums_the_gradients_of_every_scale() -> None:
    image = torch.rand(2, 3, 8, 8, requires_grad=True)
    fine, coarse = image.sum(1, keepdim=True), 3 * F.avg_pool2d(image, 2).sum(1, keepdim=True)
    both = r1_penalty([fine, coarse], image)
    # d/dx of sum(fine) is 1 per pixel, of sum(coarse) 3/4 per pixel: ||1.75||^2 over 3*8*8 pixels
    assert both.item() == pytest.approx(3 * 64 * 1.75**2)
    assert r1_penalty(fine, image).item() == pytest.approx(3 * 64)
