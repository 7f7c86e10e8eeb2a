"""Training logs: metrics.jsonl, optional TensorBoard, a tqdm progress bar, PNG sample grids.

Only rank 0 creates a ``RunLogger`` with ``enabled=True``; on other ranks every method is a no-op
so the stages can call them unconditionally.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..checkpoint import atomic_write_bytes
from ..data.image_io import tensor_to_uint8
from ..hint_format import hint_to_display  # noqa: F401  (sample grids' hint column; older imports)

METRICS_FILE = "metrics.jsonl"


def _tensorboard_writer(folder: Path) -> Any | None:
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
    except Exception:
        return None
    try:
        return SummaryWriter(log_dir=str(folder))
    except Exception:
        return None


class RunLogger:
    """Writes ``<run>/metrics.jsonl`` (one JSON object per logged step) and TensorBoard scalars."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int = 0, enabled: bool = True,
                 progress: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.start_time = time.time()
        self._bar = None
        self._tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if start_step == 0:
            # A fresh run starts a fresh log; a resumed one drops lines past its restored step.
            (self.run_dir / METRICS_FILE).unlink(missing_ok=True)
        else:
            # "time" counts training time over all sessions: a resumed run continues its clock.
            self.start_time -= self._truncate_after(start_step)
        if tensorboard:
            self._tb = _tensorboard_writer(self.run_dir / "tensorboard")
        if progress:
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total_steps, initial=start_step, dynamic_ncols=True, unit="step",
                                 file=sys.stderr, disable=None)
            except ImportError:
                self._bar = None

    def _truncate_after(self, step: int) -> float:
        """Drop records past ``step``; returns the training time of the last record kept (s)."""
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return 0.0
        kept, last_time = [], 0.0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                if int(record.get("step", 0)) <= step:
                    kept.append(line)
                    last_time = max(last_time, float(record.get("time", 0.0)))
            except (json.JSONDecodeError, ValueError, AttributeError, TypeError):
                continue  # a line cut short by a crash
        atomic_write_bytes(path, ("\n".join(kept) + "\n" if kept else "").encode("utf-8"))
        return last_time if math.isfinite(last_time) else 0.0

    def log(self, step: int, losses: dict[str, float], **extra: float) -> None:
        """Append one record: step, losses, and extras such as lr and images_per_s."""
        if not self.enabled:
            return
        record: dict[str, Any] = {"step": int(step), "time": round(time.time() - self.start_time, 3)}
        record.update({k: (float(v) if math.isfinite(float(v)) else None) for k, v in losses.items()})
        record.update({k: float(v) for k, v in extra.items()})
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in {**losses, **extra}.items():
                self._tb.add_scalar(key, float(value), step)

    def progress(self, step: int, losses: dict[str, float]) -> None:
        if self._bar is None:
            return
        self._bar.n = step
        self._bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        self._bar.refresh()

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


# ---------------------------------------------------------------------------------------------
# sample grids

def to_rgb(tensor: torch.Tensor) -> torch.Tensor:
    """(N, 1 or 3, S, S) -> (N, 3, S, S)."""
    tensor = tensor.float()
    return tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor


def sample_grid(columns: list[torch.Tensor], padding: int = 2) -> np.ndarray:
    """Rows = samples, columns = the given (N, C, S, S) tensors in [-1, 1] -> HxWx3 uint8."""
    if not columns:
        raise ValueError("a sample grid needs at least one column")
    count = columns[0].shape[0]
    size = columns[0].shape[-1]
    cols = [to_rgb(c.detach().cpu()) for c in columns]
    height = count * size + (count + 1) * padding
    width = len(cols) * size + (len(cols) + 1) * padding
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for row in range(count):
        for col, tensor in enumerate(cols):
            tile = tensor_to_uint8(F.interpolate(tensor[row:row + 1], size=(size, size), mode="nearest")[0])
            top = padding + row * (size + padding)
            left = padding + col * (size + padding)
            canvas[top:top + size, left:left + size] = tile
    return canvas


def save_sample_grid(path: Path, columns: list[torch.Tensor]) -> Path:
    """Write the grid as a PNG (atomically)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(sample_grid(columns)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path
