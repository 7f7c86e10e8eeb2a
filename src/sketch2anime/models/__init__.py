"""Networks. MODEL_CLASSES maps a model-type name to (module class, config class)."""

from __future__ import annotations

from torch import nn

MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {}
