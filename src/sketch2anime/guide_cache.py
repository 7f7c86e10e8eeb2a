"""Inference-time reuse of a sketch's latent and guide between calls that change only the hints.

After a hint stroke, a Seed change or a move of the Flat colours switch, the panel sends the same
sketch again: its latent, projection, decoded guide and pasted parts come out the same, yet they are
about 40% of an update at 128 px (``benchmarks/inference_precision.py`` times each network). A small
LRU cache keyed by the sketch tensor's bytes and everything else the guide depends on (projection
strength, k, reg, the precision the networks run in) hands them back. What it hands out are copies:
a caller may write into the projected sketch it was given. The evaluation profits too: it scores
the same sketches once per hint level.

The cache assumes the pipeline's weights do not change under it (``part_cache.py`` assumes the same);
``Sketch2AnimePipeline.to`` and ``set_precision`` empty it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from .part_cache import tensor_digest

DEFAULT_ENTRIES = 8  # a batch of 32 sketches at 128 px holds ~2 MB; a panel update ~70 kB


class GuideCache:
    """``get(key) -> (z (N, D), guide (N, 1, S, S))`` or None; ``put(key, z, guide)``; ``key(...)``
    builds the key of a sketch batch ``(N, 1, S, S)`` with its projection settings."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        if entries < 0:
            raise ValueError(f"entries must be >= 0, got {entries}")
        self.entries = entries
        self._store: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()

    @staticmethod
    def key(sketch: torch.Tensor, projection: float, k: int, reg: float, precision: str) -> tuple:
        return (tuple(sketch.shape), str(sketch.device), tensor_digest(sketch), float(projection), int(k),
                float(reg), precision)

    def get(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
        with self._lock:
            found = self._store.get(key)
            if found is None:
                self.misses += 1
                return None
            self._store.move_to_end(key)
            self.hits += 1
        return found[0].clone(), found[1].clone()

    def put(self, key: tuple, z: torch.Tensor, guide: torch.Tensor) -> None:
        if not self.entries:
            return
        with self._lock:
            self._store[key] = (z.detach().clone(), guide.detach().clone())
            self._store.move_to_end(key)
            while len(self._store) > self.entries:
                self._store.popitem(last=False)
