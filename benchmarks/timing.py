"""Wall-clock timing of repeated calls, summarised as p50 / p95 / mean."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Summary:
    p50: float
    p95: float
    mean: float
    count: int

    def ms(self) -> tuple[str, str]:
        """(p50, p95) in milliseconds as table cells."""
        return format_ms(self.p50), format_ms(self.p95)


def format_ms(seconds: float) -> str:
    ms = seconds * 1000.0
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def summarise(samples: list[float]) -> Summary:
    if not samples:
        raise ValueError("no timing samples")
    values = np.asarray(samples, dtype=np.float64)
    return Summary(p50=float(np.percentile(values, 50)), p95=float(np.percentile(values, 95)),
                   mean=float(values.mean()), count=len(samples))


def _sync(device: str) -> None:
    # CUDA work is asynchronous; without this a timing would stop before the GPU finished.
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def time_calls(fn: Callable[[int], object], repeats: int, warmup: int = 3, device: str = "cpu",
               budget_s: float | None = None, min_repeats: int = 5) -> Summary:
    """Call ``fn(i)`` ``warmup`` times untimed (allocator, lazy init), then up to ``repeats`` times timed.

    ``budget_s`` bounds a slow row: timing stops once that many seconds were spent on timed calls
    and at least ``min_repeats`` were made (``Summary.count`` says how many).
    """
    for i in range(warmup):
        fn(i)
    _sync(device)
    samples: list[float] = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        _sync(device)
        samples.append(time.perf_counter() - start)
        if budget_s is not None and len(samples) >= min_repeats and sum(samples) >= budget_s:
            break
    return summarise(samples)
