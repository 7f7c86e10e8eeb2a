"""Crash-safety campaigns on a tiny training run, shared by ``tests/test_reliability_training.py`` and
``scripts/reliability.py``: SIGKILL at seeded random moments then ``--resume``
(``kill_resume_campaign``), and a disk that fills up in the middle of a checkpoint write
(``disk_full_fault``). They drive ``configs/test_autoencoder.toml`` of a source checkout.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from .. import checkpoint
from ..checkpoint import load_model, load_training_state, read_json, read_tensors
from ..data.prepare import PrepareConfig, prepare_dataset
from ..models.projection import LatentBank
from ..training.config import load_experiment
from ..training.run import train_experiment
from .images import draw_face

if TYPE_CHECKING:
    from pytest import MonkeyPatch

REPO = Path(__file__).resolve().parents[3]  # a source checkout: the CLI runs from here
CONFIG = REPO / "configs" / "test_autoencoder.toml"


def make_tiny_dataset(folder: Path) -> Path:
    """8 synthetic faces, one extractor: 2 batches of 4 per epoch."""
    source = folder / "faces"
    source.mkdir(parents=True)
    for i in range(8):
        draw_face(64, i).save(source / f"face_{i}.png")
    prepare_dataset(source, folder / "data", PrepareConfig(size=64, extractors=("detail",), val_fraction=0.0, workers=1),
                    progress=False)
    return folder / "data"


def settings_for(dataset: Path, run_dir: Path, steps: int, every: int) -> list[str]:
    return [f"data.root={json.dumps(str(dataset))}", f"experiment.output_dir={json.dumps(str(run_dir))}",
            f"train.steps={steps}", f"train.checkpoint_every={every}", "train.log_every=1",
            "train.sample_every=1000000", "train.threads=1"]


def train_command(dataset: Path, run_dir: Path, steps: int, every: int, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "sketch2anime.cli", "train", str(CONFIG)]
    for setting in settings_for(dataset, run_dir, steps, every):
        command += ["--set", setting]
    return command + (["--resume"] if resume else [])


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def logged_steps(run_dir: Path) -> list[int]:
    """Steps in metrics.jsonl; a line cut short by a kill is ignored."""
    path = run_dir / "metrics.jsonl"
    steps = []
    for line in (path.read_text(encoding="utf-8").splitlines() if path.exists() else []):
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):
            continue
    return steps


def saved_step(run_dir: Path) -> int:
    state = load_training_state(run_dir / "state" / "train")
    return 0 if state is None else int(state["step"])


def check_files(run_dir: Path) -> tuple[int, list[str]]:
    """Load every checkpoint file under ``run_dir``; returns (files loaded, leftover temporary files)."""
    loaded, temporary = 0, []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            temporary.append(str(path.relative_to(run_dir)))  # an unfinished write: never read by anything
        elif path.suffix == ".safetensors":
            read_tensors(path)
            loaded += 1
        elif path.suffix == ".json":
            read_json(path)
            loaded += 1
    if saved_step(run_dir) and (run_dir / "model" / "pipeline.json").exists():
        load_model(run_dir / "model" / "autoencoder", expected_type="sketch_autoencoder")
        LatentBank.load(run_dir / "model" / "latent_bank")
    return loaded, temporary


@dataclass
class Kill:
    target_step: int  # progress awaited before the kill; 0 = killed during start-up
    delay_s: float  # random wait after that
    seen_step: int  # last step logged when the kill landed
    before: int  # training-state step before this run
    after: int  # training-state step after the kill
    files_loaded: int
    finished: bool  # the run ended before the kill could land

    @property
    def lost(self) -> int:
        return max(0, self.seen_step - self.after)


@dataclass
class Campaign:
    steps: int
    every: int
    kills: list[Kill] = field(default_factory=list)
    final_rc: int | None = None
    final_step: int = 0
    final_logged: list[int] = field(default_factory=list)
    temporary_files: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _kill_once(command: list[str], run_dir: Path, target: int, delay: float, timeout: float) -> Kill:
    """Run ``command``; once step ``target`` is logged (0: at once), wait ``delay`` s and SIGKILL it."""
    before = saved_step(run_dir)
    if target:
        target = max(target, before + 1)  # a resumed run logs only steps past its saved state
    metrics = run_dir / "metrics.jsonl"
    spawned_ns = time.time_ns()
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while target and process.poll() is None and time.monotonic() < deadline:
            # Lines from before this run count only once this process has rewritten the log.
            if metrics.exists() and metrics.stat().st_mtime_ns > spawned_ns \
                    and max(logged_steps(run_dir), default=0) >= target:
                break
            time.sleep(0.01)
        time.sleep(delay)
        finished = process.poll() is not None
        if not finished:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if finished and process.returncode != 0:
        raise AssertionError(f"training failed on its own: {process.stderr.read().decode()[-2000:]}")
    process.stderr.close()
    seen = max(logged_steps(run_dir), default=0)
    loaded, _ = check_files(run_dir)
    return Kill(target, round(delay, 3), seen, before, saved_step(run_dir), loaded, finished)


def kill_resume_campaign(dataset: Path, run_dir: Path, kills: int, seed: int, steps: int = 40, every: int = 4,
                         timeout: float = 600.0) -> Campaign:
    """Start the run, SIGKILL it ``kills`` times at seeded random moments (each restart uses --resume),
    then resume to the end. Every checkpoint file is loaded after every kill."""
    rng = np.random.default_rng(seed)
    campaign = Campaign(steps, every)
    started = time.monotonic()
    # One kill step drawn in each of ``kills`` equal slices of the run, so kills cover all of it;
    # about 1 in 5 kills lands during start-up instead.
    bounds = np.linspace(1, steps, kills + 1).round().astype(int)
    plan = [min(int(rng.integers(low, max(low + 1, high))), steps - 1) for low, high in zip(bounds[:-1], bounds[1:])]
    for index, planned in enumerate(plan):
        during_startup = rng.random() < 0.2
        target, delay = (0, float(rng.uniform(0.0, 1.5))) if during_startup else (planned, float(rng.uniform(0.0, 0.25)))
        command = train_command(dataset, run_dir, steps, every, resume=index > 0)
        kill = _kill_once(command, run_dir, target, delay, timeout)
        campaign.kills.append(kill)
        if kill.finished:
            break
    final = subprocess.run(train_command(dataset, run_dir, steps, every, resume=True), cwd=REPO, env=_env(),
                           capture_output=True, timeout=timeout)
    campaign.final_rc = final.returncode
    campaign.final_step = saved_step(run_dir)
    campaign.final_logged = logged_steps(run_dir)
    _, campaign.temporary_files = check_files(run_dir)
    campaign.seconds = round(time.monotonic() - started, 1)
    return campaign


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    index = json.loads((run_dir / "state" / "train.json").read_text())
    return read_tensors(run_dir / "state" / index["tensors_file"])


def metrics_without_timing(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in ("time", "images_per_s")} for row in rows]


# ---------------------------------------------------------------------------------------------
# a disk that fills up in the middle of a write

class _HalfWriter:
    """A file object that writes half of what it is given, then reports a full disk."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data: bytes) -> int:
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def __enter__(self) -> "_HalfWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


class DiskFull:
    """Arm ``fault`` to fail the next write of its kind once: "tensors" = the safetensors writer of
    ``atomic_save_tensors``, "index" = a ``.json`` file through ``atomic_write_bytes``."""

    def __init__(self, monkeypatch: MonkeyPatch, fault: str) -> None:
        self.armed = False
        self.fired = 0
        self._writing: str | None = None
        real_fdopen, real_save_file, real_write = os.fdopen, checkpoint.save_file, checkpoint.atomic_write_bytes

        def atomic_write_bytes(path, data):
            self._writing = Path(path).name  # so that sample grids (PNG) are not the write that fails
            try:
                return real_write(path, data)
            finally:
                self._writing = None

        def fdopen(fd, *args, **kwargs):
            handle = real_fdopen(fd, *args, **kwargs)
            if self.armed and fault == "index" and (self._writing or "").endswith(".json"):
                self.armed, self.fired = False, self.fired + 1
                return _HalfWriter(handle)
            return handle

        def save_file(tensors, filename, metadata=None):
            if self.armed and fault == "tensors":
                self.armed, self.fired = False, self.fired + 1
                data = safetensors_bytes(tensors, metadata=metadata)
                Path(filename).write_bytes(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
            return real_save_file(tensors, filename, metadata=metadata)

        monkeypatch.setattr(checkpoint, "atomic_write_bytes", atomic_write_bytes)
        monkeypatch.setattr(checkpoint.os, "fdopen", fdopen)
        monkeypatch.setattr(checkpoint, "save_file", save_file)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def disk_full_fault(dataset: Path, work: Path, fault: str, monkeypatch: MonkeyPatch,
                    steps: int = 6, every: int = 3) -> dict:
    """Train with the disk filling up during the second checkpoint; report what survived."""
    def config(run_dir: Path):
        return load_experiment(CONFIG, settings_for(dataset, run_dir, steps, every))

    torch.set_num_threads(1)
    disk = DiskFull(monkeypatch, fault)
    run_dir = work / f"disk-full-{fault}"
    snapshot: dict[str, bytes] = {}

    def arm(step: int) -> None:
        if step == every:  # the first checkpoint is on disk: keep a copy, then fill the disk
            snapshot.update(_snapshot(run_dir / "state"))
            disk.armed = True

    error = None
    try:
        train_experiment(config(run_dir), callback=arm)
    except OSError as exc:
        error = exc
    after = _snapshot(run_dir / "state")
    report = {
        "fault": fault, "fired": disk.fired, "error": None if error is None else f"OSError(ENOSPC): {error.strerror}",
        "errno": None if error is None else error.errno,
        "state_step": saved_step(run_dir),
        "previous_files_intact": all(after.get(name) == data for name, data in snapshot.items()),
        "extra_files": sorted(set(after) - set(snapshot)),
        "temporary_files": check_files(run_dir)[1],
    }
    train_experiment(config(run_dir), resume=True)  # the disk has room again
    reference = work / f"disk-full-{fault}-reference"
    train_experiment(config(reference))
    expected, got = final_tensors(reference), final_tensors(run_dir)
    report["resumed_step"] = saved_step(run_dir)
    report["resumed_equals_uninterrupted"] = expected.keys() == got.keys() and all(
        torch.equal(expected[k], got[k]) for k in expected)
    return report
