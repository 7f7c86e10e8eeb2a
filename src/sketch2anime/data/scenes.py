"""Shots for ``sketch2anime frames``: cut detection, the sampling clock and per-shot selection.

A *cut* is found on every decoded frame from tiny thumbnails (``frame_filters.thumbnail``): the
mean absolute RGB difference to the previous frame must exceed ``cut_threshold`` and also be
``adaptive_ratio`` times the recent average difference, so a fast pan (large differences every
frame) is not cut into pieces while a hard cut inside a calm shot is. Cuts closer than
``min_shot_s`` to the previous one are ignored (flashes, flicker). Black frames separate shots on
their own: a fade out and in has no hard cut, but it is a new shot.

Within a shot, frames are *sampled* every ``--every`` from the shot's first frame, so even a short
shot gives a candidate. A shot keeps at most ``per_shot`` candidates, spread evenly over it:
``ShotSelection`` holds at most ``2 * per_shot`` frames in memory whatever the shot's length
(every time it overflows, every second one is dropped and only every second later one is taken).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from .video import Every

T = TypeVar("T")


@dataclass(frozen=True)
class SceneConfig:
    """cut_threshold: mean absolute RGB difference (0-255) of consecutive thumbnails at a cut;
    adaptive_ratio: ... and at least this many times the average of the last ``window`` differences;
    min_shot_s: shortest shot; per_shot: frames kept per shot at most."""

    cut_threshold: float = 20.0
    adaptive_ratio: float = 3.0
    window: int = 8
    min_shot_s: float = 0.3
    per_shot: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.cut_threshold <= 255:
            raise ValueError(f"cut_threshold must lie in (0, 255], got {self.cut_threshold}")
        if self.adaptive_ratio < 1 or self.window < 1:
            raise ValueError("adaptive_ratio must be >= 1 and window >= 1")
        if self.min_shot_s < 0:
            raise ValueError(f"min_shot_s must be >= 0, got {self.min_shot_s}")
        if self.per_shot < 1:
            raise ValueError(f"per_shot must be >= 1, got {self.per_shot}")


class CutDetector:
    """Feed every decoded frame's thumbnail in order; ``update`` says whether a new shot starts."""

    def __init__(self, config: SceneConfig, fps: float) -> None:
        self.config = config
        self.min_gap = max(1, int(round(config.min_shot_s * (fps or 24.0))))
        self._previous: np.ndarray | None = None
        self._previous_black = False
        self._recent: deque[float] = deque(maxlen=config.window)
        self._since_cut = 0

    def reset(self) -> None:
        """Forget the previous frame (after lost frames): the next one starts a shot."""
        self._previous = None
        self._recent.clear()

    def update(self, thumb: np.ndarray, black: bool) -> bool:
        previous, self._previous = self._previous, thumb
        was_black, self._previous_black = self._previous_black, black
        self._since_cut += 1
        if previous is None:
            self._since_cut = 0
            return True
        if black != was_black:  # entering or leaving a black stretch
            self._recent.clear()
            self._since_cut = 0
            return True
        score = float(np.mean(np.abs(thumb - previous)))
        calm = (sum(self._recent) / len(self._recent)) if self._recent else 0.0
        self._recent.append(score)
        if black or self._since_cut < self.min_gap:
            return False
        if score >= self.config.cut_threshold and score >= self.config.adaptive_ratio * (calm + 1.0):
            self._recent.clear()
            self._since_cut = 0
            return True
        return False


class SampleClock:
    """Which frames of a shot are sampled: every ``every`` from the shot's first frame."""

    def __init__(self, every: Every) -> None:
        self.every = every
        self._next_time = 0.0
        self._next_index = 0

    def start_shot(self, index: int, time_s: float) -> None:
        self._next_time, self._next_index = time_s, index

    def due(self, index: int, time_s: float) -> bool:
        if self.every.frames is not None:
            if index < self._next_index:
                return False
            self._next_index = index + self.every.frames
            return True
        if time_s < self._next_time - 1e-6:
            return False
        seconds = self.every.seconds or 1.0
        steps = int((time_s - self._next_time) // seconds) + 1  # a late frame does not shift the grid
        self._next_time += steps * seconds
        return True


class ShotSelection(Generic[T]):
    """At most ``per_shot`` items of one shot, spread evenly, in bounded memory (module docstring)."""

    def __init__(self, per_shot: int) -> None:
        self.per_shot = per_shot
        self._stride = 1
        self._count = 0
        self._held: list[tuple[int, T]] = []

    @property
    def held(self) -> list[T]:
        return [item for _, item in self._held]

    def offer(self, item: T) -> list[T]:
        """Take ``item`` (or not); returns the items that are out of the selection for good."""
        position, self._count = self._count, self._count + 1
        if position % self._stride:
            return [item]
        self._held.append((position, item))
        if len(self._held) <= 2 * self.per_shot:
            return []
        self._stride *= 2
        out = [item for pos, item in self._held if pos % self._stride]
        self._held = [(pos, item) for pos, item in self._held if pos % self._stride == 0]
        return out

    def finish(self) -> tuple[list[T], list[T]]:
        """``(chosen, dropped)`` at the end of the shot; the selection is empty afterwards."""
        held, self._held, self._count, self._stride = self.held, [], 0, 1
        if len(held) <= self.per_shot:
            return held, []
        picks = set(np.round(np.linspace(0, len(held) - 1, self.per_shot)).astype(int).tolist())
        return ([item for i, item in enumerate(held) if i in picks],
                [item for i, item in enumerate(held) if i not in picks])
