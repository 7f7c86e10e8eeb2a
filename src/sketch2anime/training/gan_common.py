"""What the three GAN stages (generator, pix2pix, cyclegan) share: two optimisers, an optional EMA
of the generator, a torch RNG, and the training state that ``--resume`` needs of them.

A stage subclasses ``GANStageBase``, sets ``config``, ``G``, ``opt_g``, ``opt_d``, ``ema`` and
``generator`` in its constructor, and names the networks it saves in ``saved_networks``. The state
keys stay those the stages always wrote, so older training states still resume.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import d_augment
from .config import ExperimentConfig
from .schedule import EMA, optimizer_step, set_lr, unwrap


class GANStageBase:
    """Learning-rate control, evaluation generator, and state save/restore of a GAN stage."""

    config: ExperimentConfig
    G: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: EMA | None
    generator: torch.Generator

    def saved_networks(self) -> dict[str, nn.Module]:
        """State key -> network, for every network the training state holds."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Stage-specific state beyond networks, optimisers, RNG and EMA (none by default)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` saved."""

    # ---- loop interface ---------------------------------------------------------------------

    def set_lr_factor(self, factor: float) -> None:
        train = self.config.train
        set_lr(self.opt_g, train.lr, factor)
        set_lr(self.opt_d, train.lr_discriminator or train.lr, factor)

    def lr(self) -> float:
        return float(self.opt_g.param_groups[0]["lr"])

    def eval_generator(self) -> nn.Module:
        """The EMA copy of the generator when there is one (what samples and exports use)."""
        return self.ema.model if self.ema is not None else self.G

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: unwrap(net).state_dict() for name, net in self.saved_networks().items()}
        state.update({"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                      "rng": self.generator.get_state(), **self.extra_state()})
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.saved_networks().items():
            unwrap(net).load_state_dict(state[name])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.generator.set_state(state["rng"])
        self.load_extra_state(state)
        if self.ema is not None:
            if "ema" not in state:
                raise ValueError("the saved state has no EMA weights but train.ema_decay is set")
            self.ema.load_state_dict(state["ema"])


class ConditionalGANUpdate:
    """The D and G updates that the hint-conditioned stages ("generator", "simple_gan", "guided") share.

    D judges ``(image, sketch, hint)`` for real and fake in one pass (hinge or non-saturating loss,
    lazy R1 on reals); G gets the adversarial loss, D feature matching, the optional HED-VGG
    perceptual loss, L1 to the real image, the optional SSIM loss and the masked hint loss; then the
    EMA follows, ramped up by step. A stage sets ``D``, ``d_net``, ``perceptual`` and ``engine``
    besides what ``GANStageBase`` needs; ``as_input`` lets it hand D images in its memory format.
    """

    D: nn.Module
    d_net: nn.Module
    perceptual: nn.Module | None
    engine: Any

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.engine.channels_last else x

    def d_inputs(self, sketch: torch.Tensor, hint: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The conditions this D was built to see (sketch and/or hint), None for the others."""
        config = self.D.config
        return (sketch if config.sees_sketch else None), (hint if config.sees_hint else None)

    def discriminator_update(self, image: torch.Tensor, fake: torch.Tensor, sketch: torch.Tensor | None,
                             hint: torch.Tensor | None, step: int) -> dict[str, torch.Tensor]:
        """One D step on real ``image`` and detached ``fake`` (N, 3, S, S); returns its losses."""
        from .losses import discriminator_loss, mean_logit, r1_penalty, split_real_fake

        train = self.config.train
        set_requires_grad(self.D, True)
        do_r1 = train.r1_gamma > 0 and step % train.r1_every == 0
        real = image.detach().requires_grad_(do_r1)
        both_sketch = torch.cat([sketch, sketch]) if sketch is not None else None
        both_hint = torch.cat([hint, hint]) if hint is not None else None
        both, both_sketch, both_hint = d_augment.augment(train.d_augment, torch.cat([real, fake.detach().float()]),
                                                         both_sketch, both_hint, _hint_cell(image, hint),
                                                         self.generator)
        with self.engine.autocast():
            logits, _ = self.d_net(self.as_input(both), both_sketch, both_hint)
        real_logits, fake_logits = split_real_fake(logits)
        d_loss = discriminator_loss(real_logits, fake_logits, train.adversarial)
        losses = {"d_loss": d_loss.detach(), "d_real": mean_logit(real_logits).detach(),
                  "d_fake": mean_logit(fake_logits).detach()}
        total = d_loss
        if do_r1:
            r1 = r1_penalty(real_logits, real)
            total = total + 0.5 * train.r1_gamma * train.r1_every * r1
            losses["r1"] = r1.detach()
        optimizer_step(self.opt_d, total, self.D.parameters(), train.grad_clip)
        return losses

    def generator_update(self, image: torch.Tensor, fake: torch.Tensor, sketch: torch.Tensor | None,
                         d_hint: torch.Tensor | None, hint: torch.Tensor, step: int,
                         regions: torch.Tensor | None = None,
                         mirrored: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One G step from ``fake`` (with its graph); D is frozen and used unwrapped (no gradient sync).
        ``sketch``/``d_hint``: what D sees (``d_inputs``); ``hint``: the hint of the masked hint loss;
        ``regions`` (N, S, S): a sketch's region labels for the flatness loss (None: off);
        ``mirrored`` (N, 3, S, S), no graph: the mirror image of G's picture of the mirrored inputs,
        which the flip-consistency loss pulls ``fake`` towards (None: off)."""
        from .losses import (feature_matching_loss, generator_adversarial_loss, masked_hint_loss,
                             region_flatness_loss, ssim_loss)

        train = self.config.train
        set_requires_grad(self.D, False)
        fake32 = fake.float()
        # D sees the fake (and, for feature matching, the real picture) through one shared draw.
        seen_fake, params, cell = fake32, None, _hint_cell(image, d_hint)
        if train.d_augment.enabled:
            params = d_augment.draw(train.d_augment, image.shape[0], image.shape[-1], cell, self.generator)
            seen_fake, sketch, d_hint = d_augment.apply(params, fake32, sketch, d_hint, cell)
        with self.engine.autocast():
            fake_logits, fake_features = self.D(self.as_input(seen_fake), sketch, d_hint)
            adv = generator_adversarial_loss(fake_logits, train.adversarial)
            total = train.adversarial_weight * adv
            losses = {"g_adv": adv.detach()}
            if train.feature_matching_weight > 0:
                seen_real = image if params is None else d_augment.apply(params, image, None, None, cell)[0]
                with torch.no_grad():
                    _, real_features = self.D(self.as_input(seen_real), sketch, d_hint)
                fm = feature_matching_loss(fake_features, real_features)
                total = total + train.feature_matching_weight * fm
                losses["fm"] = fm.detach()
            if self.perceptual is not None:
                perceptual = self.perceptual(fake32, image)
                total = total + train.perceptual_weight * perceptual
                losses["perceptual"] = perceptual.detach()
        l1 = torch.nn.functional.l1_loss(fake32, image)
        hint_loss = masked_hint_loss(fake32, hint)
        total = total + train.l1_weight * l1 + train.hint_weight * hint_loss
        if train.ssim_weight > 0:
            structure = ssim_loss(fake32, image)
            total = total + train.ssim_weight * structure
            losses["ssim"] = structure.detach()
        if regions is not None and train.flatness_weight > 0:
            flatness = region_flatness_loss(fake32, image, regions)
            total = total + train.flatness_weight * flatness
            losses["flatness"] = flatness.detach()
        if mirrored is not None and train.flip_consistency_weight > 0:
            # Towards the mean of the two pictures, the flip average inference would otherwise pay twice for.
            consistency = torch.nn.functional.l1_loss(fake32, (fake32.detach() + mirrored.float()) / 2)
            total = total + train.flip_consistency_weight * consistency
            losses["flip"] = consistency.detach()
        losses.update({"l1": l1.detach(), "hint": hint_loss.detach(), "g_loss": total.detach()})
        optimizer_step(self.opt_g, total, self.G.parameters(), train.grad_clip)
        if self.ema is not None:
            self.ema.update(self.G, step)
        return losses


def _hint_cell(image: torch.Tensor, hint: torch.Tensor | None) -> int:
    """Pixels per hint cell: D's shifts move pictures in whole cells so the hint stays aligned."""
    return 1 if hint is None else image.shape[-1] // hint.shape[-1]


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)
