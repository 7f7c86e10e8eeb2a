"""What the machine at hand can do: CPU model and flags, and which training precision is fastest;
the device and thread policy of inference (``pick_device``, ``set_serving_threads``).

``fastest_cpu_precision()`` answers ``train.precision = "auto"`` on a CPU by measurement, not by
assumption: machines here are Intel Xeons with AMX (bf16 matmul several times faster than fp32)
or AMD EPYCs without any bf16 unit (bf16 autocast there only adds conversions). On a CPU whose
flags name no bf16 instructions it returns "fp32" without measuring; otherwise it times a few
training steps of a small conv net in fp32 and in bf16 autocast with channels_last and picks
bf16 only when it is clearly faster. The answer is cached for the process.

``fastest_inference_precision(run)`` does the same for inference, timing the caller's own forward
pass (the pipeline's generator) in both precisions: on an AMD EPYC with AVX-512 BF16 the default
model's networks ran 1.3-1.5x faster in bf16 (a whole update 1.4x); without bf16 units autocast is slower.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# bf16 must beat fp32 by this factor: a tie is not worth its rounding error.
BF16_MIN_SPEEDUP = 1.15
# What a pipeline's networks run in: "auto" measures (fastest_inference_precision).
INFERENCE_PRECISIONS = ("fp32", "bf16", "auto")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str | None:
    """The CPU's model name, or None where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    return None


def cpu_has_bf16() -> bool:
    return bool(cpu_flags() & set(BF16_FLAGS))


def _probe_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1),
                         nn.LeakyReLU(0.2), nn.Conv2d(64, 64, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 3, 3, padding=1))


def training_step_seconds(precision: str, steps: int = 4, size: int = 64, batch: int = 8, seed: int = 0) -> float:
    """Median seconds of one forward + backward + SGD step of a small conv net on the CPU."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _probe_net()
    x = torch.randn(batch, 8, size, size, generator=generator)
    if precision == "bf16":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    times = []
    for index in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = net(x).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index > 0:  # the first step pays for one-time kernel selection
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@functools.lru_cache(maxsize=1)
def fastest_cpu_precision() -> str:
    """ "bf16" when this CPU has bf16 instructions and they measurably speed up training, else "fp32"."""
    if not cpu_has_bf16():
        return "fp32"
    return _faster_of(training_step_seconds("fp32"), training_step_seconds("bf16"))


def _faster_of(fp32_s: float, bf16_s: float) -> str:
    """ "bf16" only when it beats fp32 by ``BF16_MIN_SPEEDUP``: a tie is not worth its rounding."""
    return "bf16" if fp32_s / max(bf16_s, 1e-9) >= BF16_MIN_SPEEDUP else "fp32"


def check_inference_precision(precision: str) -> str:
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")
    return precision


def fastest_inference_precision(run: Callable[[], Any], device: torch.device, repeats: int = 3) -> str:
    """ "bf16" when ``run()`` (one forward pass, called under bf16 autocast or not) is at least
    ``BF16_MIN_SPEEDUP`` times faster in bf16 on this machine's CPU, else "fp32".

    CUDA devices answer "fp32" unmeasured: the networks are small for a GPU, and the panel's time
    there goes to transfers and PNG encoding. CPUs whose flags name no bf16 instructions answer
    "fp32" unmeasured (autocast would only add conversions). The two precisions alternate, after
    one warm-up call each, so that a busy machine slows both alike."""
    if device.type != "cpu" or not cpu_has_bf16():
        return "fp32"
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with torch.inference_mode():
        for index in range(repeats + 1):
            for precision in times:
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    run()
                if index > 0:  # the first call pays for kernel selection
                    times[precision].append(time.perf_counter() - start)
    return _faster_of(*(sorted(t)[len(t) // 2] for t in (times["fp32"], times["bf16"])))


# ---------------------------------------------------------------------------------------------
# inference: device and threads

def set_serving_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads for an interactive server and return the number.

    ``None`` picks 1 on machines with up to 4 cores: the browser drawing the panel shares them, and
    a 2-thread op stalls whenever the OS runs the browser on one of its cores (measured on 2 cores:
    the panel's model call 77 -> 60 ms p50). On bigger machines torch's default stays.
    """
    import os

    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = 1 if cores <= 4 else torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a whole number >= 1, got {threads!r}")
    torch.set_num_threads(threads)
    return threads


def pick_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use 'cpu' or 'auto')")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (use 'auto', 'cpu' or 'cuda')") from None
