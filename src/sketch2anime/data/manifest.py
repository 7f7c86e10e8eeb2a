"""The files that describe a prepared dataset: ``dataset.json``, ``manifest.jsonl``, the journal.

``dataset.json`` holds the settings every image was prepared with (size, extractors and their
parameters, layout, face cropping) plus the split settings. ``manifest.jsonl`` has one
``ManifestRecord`` per image, as a JSON object per line::

    {"id": "3f2a...", "source": "sub/a.png", "sha256": "...", "phash": "c3d1...", "split": "train",
     "group": "3f2a...", "color": "color/3f2a....png",
     "sketches": [{"extractor": "detail", "params": {...}, "path": "sketch/detail/3f2a....png"}],
     "face_box": [x0, y0, x1, y1] | null, "duplicates": ["copy/a.png"]}

Paths are relative to the dataset folder (``source``: to the source folder). While ``prepare``
runs, each finished image is appended to ``.journal.jsonl`` so a killed run loses only the images
that were in flight; the journal is folded into the manifest at the end.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text

FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.jsonl"
REPORT_FILE = "report.json"
JOURNAL_FILE = ".journal.jsonl"
REAL_EXTRACTOR = "real"  # the artist's own sketch in paired layouts


@dataclass(frozen=True)
class SketchFile:
    extractor: str
    params: dict[str, Any]
    path: str


@dataclass(frozen=True)
class ManifestRecord:
    """One prepared image. ``phash`` is a 16-digit hex string; ``face_box`` is (x0, y0, x1, y1) in
    source pixels when the image was face-cropped."""

    id: str
    source: str
    sha256: str
    phash: str
    color: str
    sketches: tuple[SketchFile, ...]
    split: str = ""
    group: str = ""
    face_box: tuple[int, int, int, int] | None = None
    duplicates: tuple[str, ...] = ()
    sketch_source: str | None = None  # paired-folders: the sketch file, relative to SRC

    def to_json(self) -> dict[str, Any]:
        # Hand-written rather than dataclasses.asdict, which deep-copies every params dict (slow).
        data: dict[str, Any] = {
            "id": self.id, "source": self.source, "sha256": self.sha256, "phash": self.phash,
            "color": self.color, "split": self.split, "group": self.group,
            "sketches": [{"extractor": s.extractor, "params": s.params, "path": s.path} for s in self.sketches],
            "face_box": list(self.face_box) if self.face_box is not None else None,
            "duplicates": list(self.duplicates),
        }
        if self.sketch_source is not None:
            data["sketch_source"] = self.sketch_source
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ManifestRecord:
        try:
            sketches = tuple(SketchFile(str(s["extractor"]), dict(s.get("params", {})), str(s["path"]))
                             for s in data["sketches"])
            box = data.get("face_box")
            return cls(
                id=str(data["id"]), source=str(data["source"]), sha256=str(data["sha256"]),
                phash=str(data["phash"]), color=str(data["color"]), sketches=sketches,
                split=str(data.get("split", "")), group=str(data.get("group", "")),
                face_box=tuple(int(v) for v in box) if box is not None else None,  # type: ignore[arg-type]
                duplicates=tuple(str(d) for d in data.get("duplicates", ())),
                sketch_source=data.get("sketch_source"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed manifest record ({exc!r}): {data!r:.200}") from None

    def sketch_path(self, extractor: str) -> str | None:
        for sketch in self.sketches:
            if sketch.extractor == extractor:
                return sketch.path
        return None

    @property
    def extractors(self) -> tuple[str, ...]:
        return tuple(s.extractor for s in self.sketches)


@dataclass(frozen=True)
class DatasetInfo:
    """Contents of ``dataset.json``. ``extractors`` maps name -> parameters (``real``: {})."""

    size: int
    extractors: dict[str, dict[str, Any]]
    seed: int = 0
    val_fraction: float = 0.05
    layout: str = "images"
    source: str = ""
    faces: bool = False
    near_duplicate_threshold: int = 4
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = DATASET_FILE) -> DatasetInfo:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"{where} has format_version {version!r}; this sketch2anime reads version "
                             f"{FORMAT_VERSION}. Prepare the dataset again with this version.")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ValueError(f"{where} is malformed: {exc}") from None


def read_dataset_info(root: str | Path) -> DatasetInfo:
    """Read ``root/dataset.json``; ValueError with a hint when ``root`` is not a prepared dataset."""
    root = Path(root)
    path = root / DATASET_FILE
    if not path.is_file():
        raise ValueError(f"{root} is not a prepared dataset (no {DATASET_FILE}); "
                         f"run `sketch2anime prepare SRC {root}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is malformed: expected a JSON object")
    return DatasetInfo.from_json(data, str(path))


def write_dataset_info(root: Path, info: DatasetInfo) -> None:
    atomic_write_text(root / DATASET_FILE, json.dumps(info.to_json(), indent=2) + "\n")


def read_jsonl(path: Path, advice: str = "") -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (manifest, journals). A torn last line, left by a run
    killed mid-write, is dropped: what it recorded is simply redone. A bad line elsewhere is a
    ValueError, with ``advice`` appended."""
    rows = []
    with path.open("r", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number >= len(lines) - 1:
                break
            raise ValueError(f"{path}, line {number}: not valid JSON" + (f"; {advice}" if advice else "")) from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_manifest(root: str | Path) -> list[ManifestRecord]:
    """All records of ``root/manifest.jsonl``; ValueError when missing (preparation unfinished)."""
    root = Path(root)
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(f"{root} has no {MANIFEST_FILE}: its preparation did not finish; "
                         f"re-run `sketch2anime prepare` with the same arguments to complete it")
    return [ManifestRecord.from_json(row) for row in read_jsonl(path)]


def write_manifest(root: Path, records: list[ManifestRecord]) -> None:
    text = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records)
    atomic_write_text(root / MANIFEST_FILE, text)


def read_records_lenient(path: Path) -> list[ManifestRecord]:
    """Records of a manifest or journal, skipping anything unreadable (used for resuming only)."""
    if not path.is_file():
        return []
    try:
        rows = read_jsonl(path)
    except (OSError, ValueError):
        return []
    records = []
    for row in rows:
        try:
            records.append(ManifestRecord.from_json(row))
        except ValueError:
            continue
    return records


class Journal:
    """Append-only log of finished images; each line is flushed as soon as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def append(self, record: ManifestRecord) -> None:
        self._handle.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass
class PrepareReport:
    """What a run did; ``to_json`` is what lands in ``report.json``."""

    source: str
    output: str
    inputs: int = 0
    prepared: int = 0
    processed: int = 0
    resumed: int = 0
    train: int = 0
    val: int = 0
    near_duplicate_groups: int = 0
    split_changes: int = 0
    duration_s: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    extractors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "source": self.source, "output": self.output,
            "extractors": self.extractors, "duration_s": round(self.duration_s, 3),
            "counts": {"inputs": self.inputs, "prepared": self.prepared, "processed_this_run": self.processed,
                       "already_done": self.resumed, "skipped": len(self.skipped),
                       "exact_duplicates": len(self.duplicates), "train": self.train, "val": self.val,
                       "near_duplicate_groups": self.near_duplicate_groups,
                       "split_changes": self.split_changes},
            "skipped": self.skipped, "duplicates": self.duplicates,
        }

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for item in self.skipped:
            reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
        lines = [
            f"prepared {self.prepared} images in {self.output} ({self.train} train, {self.val} val) "
            f"in {self.duration_s:.1f} s",
            f"  processed now: {self.processed}, already done: {self.resumed}, "
            f"exact duplicates stored once: {len(self.duplicates)}, near-duplicate groups: {self.near_duplicate_groups}",
        ]
        if self.skipped:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
            lines.append(f"  skipped {len(self.skipped)} inputs ({detail}); see {Path(self.output) / REPORT_FILE}")
        if self.split_changes:
            lines.append(f"  {self.split_changes} images changed split since the previous run")
        return "\n".join(lines)
