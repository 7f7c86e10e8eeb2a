"""One trainer per run folder: an exclusive lock on ``RUN/.train.lock`` while a run trains.

A second ``sketch2anime train ... --resume`` on a folder that is still training (a forgotten
background job, a paused one) would interleave two step counters in one ``metrics.jsonl``, overwrite
the other's checkpoints and delete its half-written files as "stale". The lock is an OS advisory
lock (``flock``) on an open file, so the kernel drops it when the holder exits in any way, SIGKILL
included: a killed run never leaves a stale lock behind, and ``--resume`` works at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from ..config import ConfigError

LOCK_NAME = ".train.lock"

try:
    import fcntl
except ImportError:  # not POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """Holds ``RUN/.train.lock`` from ``acquire()`` until ``release()`` (or the process ends)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> "RunLock":
        """Take the lock; ``ConfigError`` naming the holder's PID when another process trains here."""
        if fcntl is None or self._file is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(f"{self.path.parent} is being trained by another process (PID {holder}); wait for "
                              "it to finish or stop it before resuming, or train into another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the flock
            self._file = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
