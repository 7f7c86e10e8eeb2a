"""What a benchmark ran on: CPU model, core count, torch version and threads, GPU, machine load.

Numbers from a shared machine mean little without this, so every section of docs/benchmarks.md
starts with it. Other ``sketch2anime train`` processes are listed because a concurrent training
job is the usual reason a timing is slower than it should be.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sketch2anime.runtime import cpu_model as package_cpu_model


def cpu_model() -> str:
    """The ``model name`` line of /proc/cpuinfo (Linux), else whatever ``platform`` knows."""
    return package_cpu_model() or platform.processor() or platform.machine() or "unknown"


def usable_cpus() -> int:
    """What ``nproc`` prints: the CPUs this process may run on (affinity), not the host's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def other_training_jobs() -> list[str]:
    """Command lines of running ``sketch2anime ... train|evaluate`` processes other than this one (deduplicated:
    DataLoader workers repeat their parent's command line)."""
    found: list[str] = []
    own = os.getpid()
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode("utf-8", "replace") for a in argv if a]
        text = " ".join(words)
        if "sketch2anime" in text and ("train" in words or "evaluate" in words):
            short = text[text.find("sketch2anime"):]
            if short not in found:
                found.append(short)
    return sorted(found)


@dataclass(frozen=True)
class Hardware:
    cpu: str
    cpus: int
    torch_version: str
    threads: str  # the torch thread count(s) the benchmark used
    python: str
    gpu: str | None
    load: tuple[float, float, float] | None
    training_jobs: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """A bullet list for the doc."""
        lines = [
            f"- CPU: {self.cpu}; `nproc` = {self.cpus}",
            f"- torch {self.torch_version}; torch CPU threads: {self.threads}; Python {self.python}",
            f"- GPU: {self.gpu or 'none (CUDA not available)'}",
        ]
        if self.load is not None:
            lines.append(f"- load average at start (1/5/15 min): {self.load[0]:.2f} / {self.load[1]:.2f} / {self.load[2]:.2f}")
        if self.training_jobs:
            jobs = "; ".join(f"`{job}`" for job in self.training_jobs)
            lines.append(f"- **concurrent training/evaluation job(s) running at the start**: {jobs} "
                         "(timings are slower than on an idle machine)")
        else:
            lines.append("- no other `sketch2anime train` / `evaluate` process was running at start")
        return "\n".join(lines)


def describe_hardware(threads: list[int] | None = None) -> Hardware:
    """Snapshot now. ``threads``: the thread counts the benchmark sets (default: torch's current one)."""
    gpu = None
    if torch.cuda.is_available():
        gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Hardware(
        cpu=cpu_model(),
        cpus=usable_cpus(),
        torch_version=torch.__version__,
        threads=", ".join(str(t) for t in (threads or [torch.get_num_threads()])),
        python=sys.version.split()[0],
        gpu=gpu,
        load=load_average(),
        training_jobs=other_training_jobs(),
    )


def devices_for(flag: str) -> list[str]:
    """``auto`` -> cpu, plus cuda when present (the GPU column); ``cpu`` / ``cuda`` -> just that one."""
    if flag == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if flag == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was given but CUDA is not available (use auto or cpu)")
    if flag not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be auto, cpu or cuda, got {flag!r}")
    return [flag]


def parse_threads(text: str) -> list[int]:
    """``--threads 2`` or ``--threads 1,2`` -> [2] / [1, 2] (each benchmark repeats per value)."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--threads must be a positive integer or a comma-separated list, got {text!r}") from None
    if not values or min(values) < 1:
        raise SystemExit(f"--threads must be a positive integer or a comma-separated list, got {text!r}")
    return values


DEVICE_LABELS = {"cpu": "CPU", "cuda": "GPU"}
