"""Video decoding for ``sketch2anime frames``: list video files, read frames with timestamps.

Decoding uses OpenCV's ``cv2.VideoCapture`` with its bundled FFmpeg (opencv-python-headless is
already a dependency, so nothing new to install): every container and codec of that FFmpeg build
(MP4/H.264, MKV/H.265, WebM/VP9/AV1, AVI/MJPEG, ...) works. PyAV would expose more (exact
presentation timestamps of every packet, keyframe-only decoding, subtitle streams) but adds a
dependency and a second FFmpeg copy; timestamps of constant-frame-rate episodes, which is what
anime is, are exact with OpenCV too.

OpenCV does not report decoding errors: a truncated or damaged file simply stops yielding frames.
``VideoReader.frames`` therefore compares where it stopped with the length the container
announced. Short of the end, it seeks 1, 2, then 4 s further and goes on from there when that
works (a damaged stretch, recorded in ``gaps``; the next frame has ``after_gap`` set); when nothing
past that point decodes, it sets ``ended_early`` with a message, so the caller keeps what it has
and says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".wmv", ".flv", ".mpg", ".mpeg",
                  ".ts", ".m2ts", ".mts", ".ogv", ".3gp"}
_EARLY_TOLERANCE_FRAMES = 2  # container frame counts are estimates off by a frame or two
_RECOVERY_JUMPS_S = (1.0, 2.0, 4.0)  # how far past a damaged spot to try to resume decoding
_MAX_GAPS = 20  # a file that keeps breaking is given up on


class VideoInputError(ValueError):
    """A video that cannot be used at all; ``reason`` is a short tag for the report."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Every:
    """Sampling rate: every ``seconds`` of video, or every ``frames`` decoded frames."""

    seconds: float | None = None
    frames: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.frames is None):
            raise ValueError("give the sampling rate in seconds or in frames, not both")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"sampling interval must be > 0 s, got {self.seconds}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"sampling interval must be >= 1 frame, got {self.frames}")

    @classmethod
    def parse(cls, text: str) -> Every:
        """"1s", "0.5s", "500ms" -> seconds; "12" or "12f" -> frames."""
        value = text.strip().lower()
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|f|frames?)?", value)
        if not match:
            raise ValueError(f"--every must look like 1s, 0.5s, 500ms or 12 (frames), got {text!r}")
        number, unit = float(match.group(1)), match.group(2) or "f"
        if unit == "ms":
            return cls(seconds=number / 1000.0)
        if unit == "s":
            return cls(seconds=number)
        if number != int(number):
            raise ValueError(f"a number of frames must be whole, got {text!r}")
        return cls(frames=int(number))

    def __str__(self) -> str:
        return f"{self.seconds:g}s" if self.seconds is not None else f"{self.frames}f"


def parse_time(text: str) -> float:
    """Seconds from "90", "90.5", "90s", "1:30", "1:30.5" or "0:01:30"."""
    value = text.strip().lower().removesuffix("s")
    parts = value.split(":")
    try:
        if len(parts) > 3 or any(p.strip() == "" for p in parts):
            raise ValueError
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"time must look like 90, 90.5s, 1:30 or 0:01:30, got {text!r}") from None
    if any(n < 0 for n in numbers) or any(n >= 60 for n in numbers[1:]):
        raise ValueError(f"time must look like 90, 90.5s, 1:30 or 0:01:30, got {text!r}")
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def list_videos(source: str | Path) -> tuple[Path, list[Path]]:
    """``(root, videos)``: one file, or every video file under a folder (recursive, sorted)."""
    source = Path(source)
    if source.is_file():
        return source.parent, [source]
    if not source.is_dir():
        raise ValueError(f"no such video file or folder: {source}")
    videos = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise ValueError(f"no video files under {source} (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    return source, videos


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # frame number in the file, from 0
    time_s: float  # presentation time
    rgb: np.ndarray  # HxWx3 uint8
    after_gap: bool = False  # frames before this one were lost to damage


class VideoReader:
    """Frames of one video file in order, with timestamps; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoInputError(f"no such video file: {self.path}", "missing")
        if os.path.getsize(self.path) == 0:
            raise VideoInputError(f"{self.path} is empty (0 bytes)", "empty")
        self._capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._capture.isOpened():
            self._capture.release()
            raise VideoInputError(f"{self.path} cannot be opened as a video: not a video, an unsupported codec, "
                                  "or a damaged/truncated file (an MP4 cut short loses its index and cannot be "
                                  "read at all)", "cannot_open")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else 0.0
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and np.isfinite(count) and count > 0 else 0
        self.width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.ended_early = ""  # set by frames(): why decoding stopped before the announced end
        self.gaps: list[tuple[float, float]] = []  # damaged stretches skipped, (from_s, to_s)
        self.decoded = 0

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps and self.frame_count else 0.0

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _time_of(self, index: int) -> float:
        msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if msec is not None and np.isfinite(msec) and (msec > 0 or index == 0):
            return float(msec) / 1000.0
        return index / self.fps if self.fps else 0.0

    def frames(self, start_s: float = 0.0, end_s: float | None = None,
               start_index: int = 0) -> Iterator[DecodedFrame]:
        """Decoded frames with ``start_s <= time < end_s`` and ``index >= start_index``.

        Seeks (to the keyframe before, then decodes forward) instead of decoding from the start.
        """
        capture, index = self._capture, 0
        seek_s = max(start_s, start_index / self.fps if self.fps else 0.0)
        if seek_s > 0 and capture.set(cv2.CAP_PROP_POS_MSEC, seek_s * 1000.0):
            position = capture.get(cv2.CAP_PROP_POS_FRAMES)
            index = int(round(position)) if position and np.isfinite(position) and position > 0 else 0
        last_time, after_gap = -1.0, False
        while True:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                if self._at_end(index, end_s):
                    return
                resumed = self._skip_damage(last_time, end_s)
                if resumed is None:
                    break
                index, bgr = resumed
                after_gap = True
            else:
                index = self._index_after_read(index)
            time_s = self._time_of(index)
            if time_s <= last_time and self.fps:
                time_s = last_time + 1.0 / self.fps  # some containers repeat or lack timestamps
            if after_gap:
                self.gaps.append((round(max(last_time, 0.0), 3), round(time_s, 3)))
            last_time = time_s
            self.decoded += 1
            current, index = index, index + 1
            if end_s is not None and time_s >= end_s:
                return
            if time_s < start_s - 0.5 / max(self.fps, 1.0) or current < start_index:
                continue
            yield DecodedFrame(current, time_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), after_gap)
            after_gap = False
        where = f"{last_time:.2f} s" if last_time >= 0 else "the start"
        total = f"{self.duration_s:.2f} s ({self.frame_count} frames)" if self.fps else f"{self.frame_count} frames"
        self.ended_early = (f"{self.path.name}: decoding stopped at {where}, frame {index}, of {total}: "
                            "the file is truncated or damaged; the frames before that point are kept")

    def _index_after_read(self, counted: int) -> int:
        """Index of the frame just read: the container's position when it is plausible (a frame the
        decoder dropped silently must not shift every later index), else our own count."""
        position = self._capture.get(cv2.CAP_PROP_POS_FRAMES)
        if position and np.isfinite(position) and counted <= int(round(position)) - 1 <= counted + 1000:
            return int(round(position)) - 1
        return counted

    def _expected_end(self, end_s: float | None) -> int:
        return self.frame_count if end_s is None else min(self.frame_count, int(end_s * self.fps))

    def _at_end(self, next_index: int, end_s: float | None) -> bool:
        """Whether a failed read is the normal end (within the container's counting error); a file
        without a frame count or rate cannot be checked and counts as complete."""
        if not self.frame_count or not self.fps:
            return True
        return next_index >= self._expected_end(end_s) - _EARLY_TOLERANCE_FRAMES

    def _skip_damage(self, last_time: float, end_s: float | None) -> tuple[int, np.ndarray] | None:
        """After a failed read short of the announced end: seek past the damage and read one frame.
        ``(index, bgr)`` of that frame, or None when nothing further decodes."""
        if len(self.gaps) >= _MAX_GAPS:
            return None
        expected_end = self._expected_end(end_s)
        for jump in _RECOVERY_JUMPS_S:
            target = max(last_time, 0.0) + jump
            if target * self.fps >= expected_end or not self._capture.set(cv2.CAP_PROP_POS_MSEC, target * 1000.0):
                return None
            ok, bgr = self._capture.read()
            if ok and bgr is not None:
                position = self._capture.get(cv2.CAP_PROP_POS_FRAMES)
                index = int(round(position)) - 1 if position and np.isfinite(position) else int(round(target * self.fps))
                return index, bgr
        return None
