"""Weight averaging, learning-rate schedule and the optimiser step shared by every training stage.

``EMA`` keeps an exponential moving average of a network's weights (with a decay ramp-up, so short
runs do not export their random initialisation); ``lr_factor`` is the multiplier of the base
learning rate at a step (linear warm-up, then constant or cosine to zero at ``train.steps``).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .config import TrainConfig


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(getattr(model, "module"), nn.Module) else model




class EMA:
    """Exponential moving average of a model's weights (buffers are copied as they are).

    ``update(model, step)`` ramps the decay up as ``min(decay, (1 + step) / (10 + step))``: with a
    fixed 0.999 the average of a short run is still mostly its random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(unwrap(model)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        source = unwrap(model)
        decay = self.decay if step is None else min(self.decay, (1.0 + step) / (10.0 + step))
        for ema_p, p in zip(self.model.parameters(), source.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), source.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


def lr_factor(step: int, train: TrainConfig) -> float:
    """Linear warm-up, then constant or cosine decay to zero at ``train.steps``."""
    if train.warmup_steps and step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.lr_schedule == "cosine":
        span = max(1, train.steps - train.warmup_steps)
        progress = min(1.0, (step - train.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters,
                   grad_clip: float | None) -> None:
    """Back-propagate ``loss`` into fresh gradients, clip their global norm when ``grad_clip`` is set,
    and step ``optimizer``. ``parameters``: an iterable of the tensors to clip."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
