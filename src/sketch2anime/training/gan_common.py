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

from .config import ExperimentConfig
from .loop import EMA, set_lr, unwrap


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
