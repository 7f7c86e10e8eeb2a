"""Crash safety of ``prepare``: a SIGKILLed run leaves no worker processes behind (issue 16, defect 8).

A real ``python -m sketch2anime.cli prepare`` with two workers is started in its own session, killed
with SIGKILL once its pool runs, and every process of that session (fork server, workers, resource
tracker) must be gone soon after. Linux only: the process table is read from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import scene

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")


def session_processes(session: int) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of every live, non-zombie process whose session id is ``session``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended while we looked
        # The command name in parentheses may hold spaces; the fields after its ")" are fixed.
        fields = stat[stat.rindex(")") + 2:].split()
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            found.append((int(entry.name), state, cmdline.strip()))
    return found


def test_sigkill_of_prepare_leaves_no_worker_processes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(160):  # 5 chunks of 32 at 256 px: seconds of work for 2 workers
        scene(128, i).save(source / f"img_{i:03d}.png")
    command = [sys.executable, "-m", "sketch2anime.cli", "prepare", str(source), str(tmp_path / "out"),
               "--workers", "2", "--size", "256", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    session = process.pid  # a new session's id is its leader's pid
    try:
        # Main process, resource tracker, fork server and two workers: the pool is running.
        deadline = time.monotonic() + 120
        while len(session_processes(session)) < 5 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "prepare finished before its workers could be seen: give it more work"
        assert len(session_processes(session)) >= 5, session_processes(session)
        time.sleep(0.5)  # workers busy with a chunk, not only just started
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL

        deadline = time.monotonic() + 30
        while session_processes(session) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert session_processes(session) == []  # no orphan worker, fork server or tracker
    finally:
        try:
            os.killpg(session, signal.SIGKILL)  # whatever this test left, never the test runner
        except ProcessLookupError:
            pass
