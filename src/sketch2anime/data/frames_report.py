"""Journal and report of ``sketch2anime frames``.

The journal ``OUT/.frames-journal.jsonl`` is the record of what is finished: one line per finished
shot (its kept and dropped frames) and one per finished video. Lines are appended and flushed as
they happen, after the shot's image files are written, so a killed run loses at most the shot in
progress; a torn last line is ignored. A video's lines carry its fingerprint (size and a hash of
its first and last MiB): when the file changes, its old lines no longer count and it is redone.

``OUT/report.json`` is rebuilt from the journal at the end of every run: per video its status,
decoded frames, shots, and every sampled frame kept or dropped, with reason and timestamp.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import read_jsonl

JOURNAL_FILE = ".frames-journal.jsonl"
REPORT_FILE = "report.json"
SETTINGS_FILE = "frames.json"
FORMAT_VERSION = 1
_FINGERPRINT_BLOCK = 1 << 20


def fingerprint(path: Path) -> str:
    """Cheap identity of a video file: its size and a hash of its first and last MiB."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_FINGERPRINT_BLOCK))
        if size > _FINGERPRINT_BLOCK:
            handle.seek(max(_FINGERPRINT_BLOCK, size - _FINGERPRINT_BLOCK))
            digest.update(handle.read(_FINGERPRINT_BLOCK))
    return f"{size}:{digest.hexdigest()[:16]}"


@dataclass
class VideoState:
    """What the journal says about one video (with its current fingerprint)."""

    name: str
    fingerprint: str
    shots: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None

    @property
    def next_frame(self) -> int:
        """First frame not covered by a finished shot (where a resumed run continues)."""
        return max((s["end_frame"] + 1 for s in self.shots), default=0)

    @property
    def kept(self) -> list[dict[str, Any]]:
        return [k for s in self.shots for k in s["kept"]]


def read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [row for row in read_jsonl(path, "delete the output folder to start over") if "video" in row]


def video_states(rows: list[dict[str, Any]], fingerprints: dict[str, str]) -> dict[str, VideoState]:
    """Journal rows -> state per current video; rows of other versions of a file are ignored."""
    states = {name: VideoState(name, fp) for name, fp in fingerprints.items()}
    for row in rows:
        state = states.get(row["video"])
        if state is None or row.get("fingerprint") != state.fingerprint:
            continue
        if row.get("kind") == "shot":
            state.shots.append(row)
        elif row.get("kind") == "done":
            state.done = row
    return states


class Journal:
    """Append-only, flushed per line."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(row, sort_keys=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def build_report(source: str, output: str, settings: dict[str, Any], states: list[VideoState],
                 duration_s: float, decoded_now: int) -> dict[str, Any]:
    """The ``report.json`` document (see the module docstring)."""
    videos, reasons, totals = [], Counter(), Counter()
    for state in states:
        done = state.done or {}
        kept = state.kept
        dropped = [d for s in state.shots for d in s["dropped"]]
        reasons.update(d["reason"] for d in dropped)
        totals["kept"] += len(kept)
        totals["faces"] += sum(len(k.get("faces", ())) for k in kept)
        totals["shots"] += len(state.shots)
        totals["decoded"] += int(done.get("decoded", 0))
        videos.append({
            "name": state.name, "path": done.get("path", ""), "status": done.get("status", "unfinished"),
            "message": done.get("message", ""), "info": done.get("info", {}), "gaps": done.get("gaps", []),
            "decoded": done.get("decoded", 0), "shots": len(state.shots), "kept": len(kept),
            "dropped_by_reason": dict(sorted(Counter(d["reason"] for d in dropped).items())),
            "shot_list": [{k: s[k] for k in ("shot", "start_frame", "end_frame", "start_s", "end_s")}
                          | {"kept": len(s["kept"])} for s in state.shots],
            "kept_frames": kept, "dropped_frames": dropped,
        })
    return {
        "format_version": FORMAT_VERSION, "source": source, "output": output, "settings": settings,
        "duration_s": round(duration_s, 3), "decoded_this_run": decoded_now,
        "counts": {"videos": len(states), "decoded": totals["decoded"], "shots": totals["shots"],
                   "sampled": totals["kept"] + sum(reasons.values()), "kept": totals["kept"],
                   "faces": totals["faces"], "dropped": sum(reasons.values()),
                   "dropped_by_reason": dict(sorted(reasons.items())),
                   "truncated": sum(1 for v in videos if v["status"] == "truncated"),
                   "damaged": sum(1 for v in videos if v["status"] == "damaged"),
                   "unreadable": sum(1 for v in videos if v["status"] == "unreadable")},
        "videos": videos,
    }


def summary(report: dict[str, Any], out: Path, faces: bool) -> str:
    counts = report["counts"]
    seconds = report["duration_s"]
    speed = f", {report['decoded_this_run'] / seconds:.0f} frames/s" if seconds > 0 and report["decoded_this_run"] else ""
    lines = [f"frames: {counts['videos']} video(s), {counts['decoded']} frames decoded, {counts['shots']} shots; "
             f"kept {counts['kept']} of {counts['sampled']} sampled frames in {out / 'frames'}"
             + (f", {counts['faces']} face crops in {out / 'faces'}" if faces else "")
             + f" ({seconds:.1f} s this run{speed})"]
    if counts["dropped"]:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts["dropped_by_reason"].items(), key=lambda kv: -kv[1]))
        lines.append(f"  dropped {counts['dropped']}: {detail}")
    for video in report["videos"]:
        if video["status"] in ("truncated", "damaged", "unreadable"):
            lines.append(f"  {video['status']}: {video['message']}")
    lines.append(f"  report: {out / REPORT_FILE}; next: sketch2anime prepare {out / ('faces' if faces else 'frames')} DATASET")
    return "\n".join(lines)
