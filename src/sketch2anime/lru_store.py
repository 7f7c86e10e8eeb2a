"""The small thread-safe LRU map behind the inference caches (``part_cache.py``, ``guide_cache.py``),
and the digest they key tensors by.

The server runs model calls from a thread pool, so a lookup and the bookkeeping that moves a hit to
the young end must happen under one lock. ``hits`` and ``misses`` count lookups: the tests and
benchmarks read them to check that a cache was used (or bypassed) when it should be.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

import torch


def tensor_digest(tensor: torch.Tensor) -> bytes:
    """16 bytes that change whenever any value of ``tensor`` (as float32) does: the caches' key."""
    return hashlib.blake2b(tensor.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=16).digest()


class LruStore:
    """At most ``entries`` values by key, the least recently used dropped first (0: stores nothing)."""

    def __init__(self, entries: int) -> None:
        if entries < 0:
            raise ValueError(f"entries must be >= 0, got {entries}")
        self.entries = entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        """The stored values of those ``keys`` that are stored (each counted as a hit or a miss)."""
        found = {}
        with self._lock:
            for key in keys:
                if key in self._items:
                    self._items.move_to_end(key)
                    found[key] = self._items[key]
                    self.hits += 1
                else:
                    self.misses += 1
        return found

    def get(self, key: Hashable) -> Any | None:
        return self.get_many([key]).get(key)

    def put_many(self, items: Iterable[tuple[Hashable, Any]]) -> None:
        if not self.entries:
            return
        with self._lock:
            for key, value in items:
                self._items[key] = value
                self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def put(self, key: Hashable, value: Any) -> None:
        self.put_many([(key, value)])
