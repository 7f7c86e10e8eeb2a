"""``sketch2anime frames VIDEO_OR_FOLDER OUT``: anime video -> a folder of training frames.

For every video (one file, or all video files under a folder, in sorted order):

1. decode every frame in ``[start, end)`` (``video.VideoReader``); each frame's thumbnail feeds
   the cut detector and the fade detector (``scenes``, ``frame_filters``);
2. sample frames every ``--every`` within each shot and judge them (black, text, letterbox crop,
   fade, flat, blurred: ``frame_filters.judge_frame``);
3. drop near duplicates of any frame kept so far in the whole run (64-bit DCT perceptual hash of
   ``split.phash``, within ``near_duplicate_threshold`` bits): held frames, repeated shots,
   a cut back to the same shot;
4. keep at most ``per_shot`` frames per shot, spread over it; write them to
   ``OUT/frames/<video>/<frame>_<seconds>s.png`` (and with ``faces``, square crops of 1.5x the
   detected face boxes to ``OUT/faces/<video>/``); journal the shot.

``OUT/frames`` (or ``OUT/faces``) is then the input of ``sketch2anime prepare``. ``OUT/report.json``
lists every sampled frame, kept or dropped with its reason and timestamp. Re-running the same
command resumes (finished videos are skipped, a half-done one continues after its last finished
shot). A damaged stretch is skipped (status "damaged"); a truncated video keeps the frames
extracted before the cut (status "truncated"); a file that cannot be opened is "unreadable".
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..checkpoint import atomic_write_text
from . import faces as faces_mod
from .frame_filters import FadeDetector, FrameFilterConfig, judge_frame, thumb_is_black, thumbnail
from .frames_report import (JOURNAL_FILE, REPORT_FILE, SETTINGS_FILE, Journal, VideoState, build_report,
                            fingerprint, read_journal, video_states)
from .image_io import write_png
from .scenes import CutDetector, SampleClock, SceneConfig, ShotSelection
from .split import DEFAULT_THRESHOLD, _popcount64, hamming, phash
from .video import DecodedFrame, Every, VideoInputError, VideoReader, list_videos


@dataclass(frozen=True)
class FramesConfig:
    """Settings of ``sketch2anime frames`` (see the module docstring).

    every: sampling interval, "1s", "500ms" or a number of frames. start_s/end_s: time range of
    every video. near_duplicate_threshold: pHash bits within which a frame duplicates a kept one.
    faces: also save anime face crops (``face_scale`` times the box, square, at least
    ``min_face_side`` px). max_side: downscale saved frames to this longer side (None: as decoded).
    """

    every: str = "0.5s"
    start_s: float = 0.0
    end_s: float | None = None
    scene: SceneConfig = field(default_factory=SceneConfig)
    filters: FrameFilterConfig = field(default_factory=FrameFilterConfig)
    near_duplicate_threshold: int = DEFAULT_THRESHOLD
    faces: bool = False
    face_scale: float = 1.5
    min_face_side: int = 64
    max_side: int | None = None

    def __post_init__(self) -> None:
        Every.parse(self.every)  # raises ValueError with the accepted forms
        if self.start_s < 0:
            raise ValueError(f"start must be >= 0 s, got {self.start_s}")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end ({self.end_s} s) must be after start ({self.start_s} s)")
        if not 0 <= self.near_duplicate_threshold <= 31:
            raise ValueError(f"near_duplicate_threshold must lie in [0, 31] bits, got {self.near_duplicate_threshold}")
        if self.face_scale <= 0 or self.min_face_side < 1:
            raise ValueError("face_scale must be > 0 and min_face_side >= 1")
        if self.max_side is not None and self.max_side < self.filters.min_side:
            raise ValueError(f"max_side must be >= min_side ({self.filters.min_side}), got {self.max_side}")

    @property
    def sampling(self) -> Every:
        return Every.parse(self.every)


@dataclass
class _Candidate:
    index: int
    time_s: float
    shot: int
    rgb: np.ndarray  # cropped
    hash: int
    sharpness: float
    box: tuple[int, int, int, int]


class _HashIndex:
    """Perceptual hashes of every kept frame of the run, with a label for the report."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._values = np.zeros(0, dtype=np.uint64)
        self._labels: list[str] = []

    def add(self, value: int, label: str) -> None:
        self._values = np.append(self._values, np.uint64(value))
        self._labels.append(label)

    def match(self, value: int) -> str | None:
        if not len(self._values):
            return None
        distance = _popcount64(self._values ^ np.uint64(value))
        hits = np.flatnonzero(distance <= self.threshold)
        return self._labels[int(hits[0])] if len(hits) else None


def _video_names(root: Path, videos: list[Path]) -> list[str]:
    """Output folder per video: its path under the input root without suffix (suffix kept on clashes)."""
    plain = [p.relative_to(root).with_suffix("").as_posix() for p in videos]
    clashes = {n for n in plain if plain.count(n) > 1}
    return [p.relative_to(root).as_posix().replace(".", "_") if n in clashes else n for p, n in zip(videos, plain)]


def _check_output(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix settings in one output folder, or to write into someone else's folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    path = out / SETTINGS_FILE
    if not path.is_file():
        if any(p.name not in {"frames", "faces", REPORT_FILE, JOURNAL_FILE} for p in out.iterdir()):
            raise ValueError(f"{out} is not empty and holds no extracted frames; choose a new output folder")
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if previous != settings:
        changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
        raise ValueError(f"{out} was extracted with other settings ({', '.join(changed)}); re-run with the same "
                         "options, or use a new output folder")


class _VideoRun:
    """Extracts one video: shots, sampling, filters, de-duplication, writing, journal."""

    def __init__(self, config: FramesConfig, out: Path, name: str, state: VideoState, index: _HashIndex,
                 journal: Journal, detector: faces_mod.FaceDetector | None, bar: Any) -> None:
        self.config, self.out, self.name, self.state = config, out, name, state
        self.index, self.journal, self.detector, self.bar = index, journal, detector, bar
        self.selection: ShotSelection[_Candidate] = ShotSelection(config.scene.per_shot)
        self.dropped: list[dict[str, Any]] = []
        self.shot = len(state.shots)
        self.shot_start: tuple[int, float] | None = None
        self.last: tuple[int, float] = (0, 0.0)
        # Frames decoded by earlier runs of this video (resume), for the report's totals.
        self.base_decoded = int(state.shots[-1].get("decoded", 0)) if state.shots else 0
        self.reader: VideoReader | None = None

    @property
    def decoded(self) -> int:
        return self.base_decoded + (self.reader.decoded if self.reader is not None else 0)

    def drop(self, index: int, time_s: float, reason: str, **extra: Any) -> None:
        self.dropped.append({"frame": index, "time_s": round(time_s, 3), "shot": self.shot, "reason": reason, **extra})

    def finish_shot(self, pending: int = 0) -> None:
        """Write and journal the shot; ``pending`` decoded frames already belong to the next one."""
        if self.shot_start is None:
            return
        chosen, extra = self.selection.finish()
        for c in extra:
            self.drop(c.index, c.time_s, "shot_limit")
        kept = [self.save(c) for c in chosen]
        start_frame, start_s = self.shot_start
        row = {"kind": "shot", "video": self.name, "fingerprint": self.state.fingerprint, "shot": self.shot,
               "start_frame": start_frame, "end_frame": self.last[0], "start_s": round(start_s, 3),
               "end_s": round(self.last[1], 3), "decoded": self.decoded - pending,
               "kept": kept, "dropped": sorted(self.dropped, key=lambda d: d["frame"])}
        self.journal.append(row)
        self.state.shots.append(row)
        self.dropped, self.shot, self.shot_start = [], self.shot + 1, None

    def save(self, c: _Candidate) -> dict[str, Any]:
        stem = f"{c.index:07d}_{c.time_s:09.3f}s"
        relative = f"frames/{self.name}/{stem}.png"
        image = c.rgb
        if self.config.max_side and max(image.shape[:2]) > self.config.max_side:
            scale = self.config.max_side / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        write_png(self.out / relative, image)
        self.index.add(c.hash, f"{self.name} frame {c.index} ({c.time_s:.2f} s)")
        record = {"frame": c.index, "time_s": round(c.time_s, 3), "shot": c.shot, "file": relative,
                  "phash": f"{c.hash:016x}", "sharpness": round(c.sharpness, 4), "crop": list(c.box)}
        if self.detector is not None:
            record["faces"] = self.save_faces(c, stem)
        return record

    def save_faces(self, c: _Candidate, stem: str) -> list[dict[str, Any]]:
        found = []
        height, width = c.rgb.shape[:2]
        for face in self.detector(Image.fromarray(c.rgb)):
            x0, y0, x1, y1 = faces_mod.square_box(face, (width, height), self.config.face_scale)
            if x1 - x0 < self.config.min_face_side:
                continue
            relative = f"faces/{self.name}/{stem}_{len(found)}.png"
            write_png(self.out / relative, np.ascontiguousarray(c.rgb[y0:y1, x0:x1]))
            found.append({"file": relative, "box": [x0, y0, x1, y1], "score": round(face.score, 4)})
        return found

    def consider(self, frame: DecodedFrame, in_fade: bool) -> None:
        verdict = judge_frame(frame.rgb, self.config.filters, in_fade)
        if verdict.reason:
            self.drop(frame.index, frame.time_s, verdict.reason)
            return
        x0, y0, x1, y1 = verdict.box
        crop = np.ascontiguousarray(frame.rgb[y0:y1, x0:x1])
        value = phash(crop)
        twin = self.index.match(value)
        if twin is None:
            twin = next((f"{self.name} frame {h.index} ({h.time_s:.2f} s)" for h in self.selection.held
                         if hamming(h.hash, value) <= self.config.near_duplicate_threshold), None)
        if twin is not None:
            self.drop(frame.index, frame.time_s, "duplicate", duplicate_of=twin)
            return
        candidate = _Candidate(frame.index, frame.time_s, self.shot, crop, value, verdict.sharpness, verdict.box)
        for c in self.selection.offer(candidate):
            self.drop(c.index, c.time_s, "shot_limit")

    def run(self, reader: VideoReader) -> None:
        config, self.reader = self.config, reader
        fps = reader.fps or 24.0
        cuts = CutDetector(config.scene, fps)
        fades = FadeDetector(config.filters.fade_step, int(round(fps / 4)))
        clock = SampleClock(config.sampling)
        try:
            for frame in reader.frames(config.start_s, config.end_s, start_index=self.state.next_frame):
                thumb = thumbnail(frame.rgb)
                black = thumb_is_black(thumb, config.filters.black_level)
                if frame.after_gap:
                    cuts.reset()  # frames were lost: whatever comes next starts a new shot
                if cuts.update(thumb, black):
                    self.finish_shot(pending=1)
                    self.shot_start = (frame.index, frame.time_s)
                    clock.start_shot(frame.index, frame.time_s)
                    fades.reset()
                in_fade = fades.update(thumb)
                self.last = (frame.index, frame.time_s)
                if clock.due(frame.index, frame.time_s):
                    if black:
                        self.drop(frame.index, frame.time_s, "black")
                    else:
                        self.consider(frame, in_fade)
                self.bar.update(1)
        except cv2.error as exc:  # a decoder failure mid-file: keep what is done, like a truncation
            reader.ended_early = f"{reader.path.name}: decoding failed after {self.last[1]:.2f} s ({exc}); the frames before are kept"
        self.finish_shot()


def _progress_bar(total: int, enabled: bool) -> Any:
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total or None, unit="frame", desc="frames", dynamic_ncols=True)
        except ImportError:
            pass
    return _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def extract_frames(source: str | Path, out: str | Path, config: FramesConfig, progress: bool = True,
                   face_detector: faces_mod.FaceDetector | None = None) -> dict[str, Any]:
    """Run (or resume) ``sketch2anime frames``; returns the report also written to ``OUT/report.json``.

    ``face_detector`` replaces animeface for ``config.faces`` (``PIL image -> list[FaceBox]``).
    """
    started = time.perf_counter()
    out = Path(out)
    root, videos = list_videos(source)
    if config.faces and face_detector is None:
        faces_mod.check_animeface_available()  # a clear ValueError before any decoding
        face_detector = faces_mod.animeface_detector
    settings = json.loads(json.dumps(dataclasses.asdict(config)))
    _check_output(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SETTINGS_FILE, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    names = _video_names(root, videos)
    prints = {name: fingerprint(path) for name, path in zip(names, videos)}
    states = video_states(read_journal(out / JOURNAL_FILE), prints)
    index = _HashIndex(config.near_duplicate_threshold)
    for state in states.values():
        for kept in state.kept:
            index.add(int(kept["phash"], 16), f"{state.name} frame {kept['frame']} ({kept['time_s']:.2f} s)")
    journal = Journal(out / JOURNAL_FILE)
    bar = _progress_bar(0, progress)
    decoded = 0
    try:
        for name, path in zip(names, videos):
            state = states[name]
            if state.done is not None:
                continue
            if not state.shots:  # a new or changed file: clear what an older version left
                for folder in (out / "frames" / name, out / "faces" / name):
                    for stale in folder.glob("*.png") if folder.is_dir() else ():
                        stale.unlink()
            decoded += _extract_one(config, out, name, path, state, index, journal, face_detector, bar)
    finally:
        bar.close()
        journal.close()
    report = build_report(str(source), str(out), settings, list(states.values()),
                          time.perf_counter() - started, decoded)
    atomic_write_text(out / REPORT_FILE, json.dumps(report, indent=1) + "\n")
    return report


def _extract_one(config: FramesConfig, out: Path, name: str, path: Path, state: VideoState, index: _HashIndex,
                 journal: Journal, detector: faces_mod.FaceDetector | None, bar: Any) -> int:
    done = {"kind": "done", "video": name, "fingerprint": state.fingerprint, "path": str(path)}
    try:
        reader = VideoReader(path)
    except VideoInputError as exc:
        print(f"sketch2anime frames: {exc}", file=sys.stderr)
        state.done = done | {"status": "unreadable", "message": str(exc), "decoded": 0}
        journal.append(state.done)
        return 0
    with reader:
        end = reader.duration_s
        if config.end_s is not None:
            end = min(end, config.end_s) if end else config.end_s
        if hasattr(bar, "total") and reader.fps and end:
            bar.total = (bar.total or 0) + max(0, int((end - config.start_s) * reader.fps) - state.next_frame)
            bar.refresh()
        if hasattr(bar, "set_description"):
            bar.set_description(Path(name).name[:24])
        run = _VideoRun(config, out, name, state, index, journal, detector, bar)
        run.run(reader)
        info = {"fps": round(reader.fps, 3), "frame_count": reader.frame_count, "width": reader.width,
                "height": reader.height, "duration_s": round(reader.duration_s, 3)}
        status, message = "complete", ""
        if reader.gaps:
            stretches = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in reader.gaps)
            status, message = "damaged", f"{path.name}: skipped damaged stretches ({stretches}); the rest is kept"
        if reader.ended_early:
            status, message = "truncated", "; ".join(m for m in (reader.ended_early, message) if m)
        if message:
            print(f"sketch2anime frames: warning: {message}", file=sys.stderr)
        state.done = done | {"status": status, "message": message, "decoded": run.decoded, "info": info,
                             "gaps": reader.gaps}
        journal.append(state.done)
        return reader.decoded
