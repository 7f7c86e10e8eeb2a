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

import torch

from .lru_store import LruStore, tensor_digest

DEFAULT_ENTRIES = 8  # a batch of 32 sketches at 128 px holds ~2 MB; a panel update ~70 kB


class GuideCache:
    """``get(key) -> (z (N, D), guide (N, 1, S, S))`` or None; ``put(key, z, guide)``; ``key(...)``
    builds the key of a sketch batch ``(N, 1, S, S)`` with its projection settings. ``hits`` and
    ``misses`` count lookups."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self._store = LruStore(entries)

    def __len__(self) -> int:
        return len(self._store)

    @property
    def hits(self) -> int:
        return self._store.hits

    @property
    def misses(self) -> int:
        return self._store.misses

    def clear(self) -> None:
        self._store.clear()

    @staticmethod
    def key(sketch: torch.Tensor, projection: float, k: int, reg: float, precision: str) -> tuple:
        return (tuple(sketch.shape), str(sketch.device), tensor_digest(sketch), float(projection), int(k),
                float(reg), precision)

    def get(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
        found = self._store.get(key)
        return None if found is None else (found[0].clone(), found[1].clone())

    def put(self, key: tuple, z: torch.Tensor, guide: torch.Tensor) -> None:
        if self._store.entries:
            self._store.put(key, (z.detach().clone(), guide.detach().clone()))
