"""``sketch2anime prepare SRC OUT``: colour images -> paired (colour, sketch) training dataset.

Stages:

1. list the inputs (``images``: every image under SRC; ``paired-folders``: SRC/color + SRC/sketch
   matched by relative path without suffix; ``side-by-side``: colour left half, sketch right half);
2. hash every input (sha256 of the bytes; the image id is its first 16 hex digits), so exact
   duplicates are stored once and a re-run recognises finished images without decoding them;
3. decode, optionally face-crop, centre-crop/resize to ``size`` and run the CPU sketch extractors
   in worker processes (files written via a temporary file + ``os.replace``); torch extractors
   (HED) run batched in the main process on the colour crops the workers send back;
4. group near duplicates by perceptual hash, assign the stable split, write ``manifest.jsonl`` and
   ``report.json``.

Each finished image is appended to a journal at once, so a killed run loses only the images in
flight; re-running the same command resumes. Unreadable inputs are skipped and listed with their
reason in ``report.json``; they never stop the run.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import faces as faces_mod
from ..checkpoint import atomic_write_text
from .image_io import write_png
from .manifest import (DATASET_FILE, JOURNAL_FILE, MANIFEST_FILE, REAL_EXTRACTOR, REPORT_FILE,
                       DatasetInfo, Journal, ManifestRecord, PrepareReport, SketchFile, read_dataset_info,
                       read_records_lenient, write_dataset_info, write_manifest)
from .prepare_inputs import _hash_inputs, _list_units
from .prepare_worker import (  # noqa: F401  (color_path, sketch_path: older imports)
    _STATE,
    _init_worker,
    _process_chunk,
    _Task,
    _WorkerSetup,
    color_path,
    sketch_path,
)
from .split import DEFAULT_THRESHOLD, assign_splits

LAYOUTS = ("images", "paired-folders", "side-by-side")
SIZES = (64, 128, 256, 512)
# Torch extractors: one model copy, batched, in the main process instead of one per worker.
MAIN_PROCESS_EXTRACTORS = frozenset({"hed"})


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of ``sketch2anime prepare``.

    extractors: sketch extractors run on the colour images (paired layouts also store the real
    sketch as extractor "real"). extractor_params: items "EXTRACTOR.KEY=VALUE". workers: worker
    processes (0 = all cores, 1 = no pool). limit: use only the first N inputs (sorted by path).
    near_duplicate_threshold: max differing pHash bits for two images to share a split.
    face_scale: face box enlargement for --faces; min_face_fraction: faces whose crop is smaller
    than this share of ``size`` are skipped. batch_size: images per worker task and per HED batch.
    """

    layout: str = "images"
    size: int = 64
    extractors: tuple[str, ...] = ("detail", "xdog")
    extractor_params: tuple[str, ...] = ()
    val_fraction: float = 0.05
    seed: int = 0
    faces: bool = False
    workers: int = 0
    limit: int | None = None
    near_duplicate_threshold: int = DEFAULT_THRESHOLD
    face_scale: float = 1.5
    min_face_fraction: float = 0.5
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(map(str, SIZES))}, got {self.size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = all cores), got {self.workers}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if len(set(self.extractors)) != len(self.extractors):
            raise ValueError(f"extractor listed twice: {', '.join(self.extractors)}")
        if REAL_EXTRACTOR in self.extractors:
            raise ValueError(f"{REAL_EXTRACTOR!r} is not an extractor: paired layouts store the real sketch by themselves")
        if not self.extractors and self.layout == "images":
            raise ValueError("no sketch extractor given; use e.g. --extractor detail,xdog")
        if not 0 <= self.near_duplicate_threshold <= 31:
            raise ValueError(f"near_duplicate_threshold must lie in [0, 31], got {self.near_duplicate_threshold}")
        if self.face_scale <= 0 or not 0 <= self.min_face_fraction <= 4:
            raise ValueError("face_scale must be > 0 and min_face_fraction in [0, 4]")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def paired(self) -> bool:
        return self.layout != "images"


# ---------------------------------------------------------------------------------------------
# main process

def _build_extractors(config: PrepareConfig) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Build every requested extractor once and run it on a small test image, so a missing
    weight file or a bad parameter fails before any work starts."""
    from .extractors import extractor_params, make_extractor, parse_extractor_params

    params = parse_extractor_params(list(config.extractor_params))
    unused = sorted(set(params) - set(config.extractors))
    if unused:
        raise ValueError(f"parameters given for extractor {unused[0]!r}, which is not in --extractor "
                         f"({', '.join(config.extractors) or 'none'})")
    extractors = {name: make_extractor(name, **params.get(name, {})) for name in config.extractors}
    probe = np.asarray(Image.linear_gradient("L").resize((config.size, config.size)).convert("RGB"))
    for extractor in extractors.values():
        extractor(probe, np.random.default_rng(0))
    return extractors, {name: extractor_params(e) for name, e in extractors.items()}


def _check_output(out: Path, info: DatasetInfo) -> DatasetInfo | None:
    """Refuse to mix settings in one output folder; return the previous settings, if any."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if not (out / DATASET_FILE).is_file():
        ours = {"color", "sketch", MANIFEST_FILE, REPORT_FILE, JOURNAL_FILE}
        foreign = [p.name for p in out.iterdir() if p.name not in ours and not p.name.endswith(".tmp")]
        if foreign:
            raise ValueError(f"{out} is not empty and is not a sketch2anime dataset; choose a new output folder")
        return None
    previous = read_dataset_info(out)
    for key in ("size", "layout", "faces"):
        if getattr(previous, key) != getattr(info, key):
            raise ValueError(f"{out} was prepared with {key}={getattr(previous, key)!r}, not {getattr(info, key)!r}; "
                             "use a new output folder (or delete this one)")
    if previous.faces and previous.extra.get("face") != info.extra.get("face"):
        raise ValueError(f"{out} was prepared with other face-crop settings; use a new output folder")
    for name, params in info.extractors.items():
        if name in previous.extractors and previous.extractors[name] != params:
            raise ValueError(f"{out} holds {name} sketches made with other parameters; use a new output "
                             f"folder, or delete {out / 'sketch' / name} to remake them")
    return previous


def _remove_stale_tmp(out: Path) -> None:
    for folder in [out, out / "color", *((out / "sketch").glob("*"))]:
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _chunks(items: list[_Task], size: int) -> Iterator[list[_Task]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _MainExtractors:
    """Runs torch extractors (HED) in batches over colour crops sent back by the workers, then
    journals the finished records."""

    def __init__(self, out: Path, extractors: dict[str, Any], batch_size: int,
                 finish: Callable[[ManifestRecord], None], skip: Callable[[str, str, str], None]) -> None:
        self.out, self.extractors, self.batch_size = out, extractors, batch_size
        self.finish, self.skip = finish, skip
        self.pending: list[tuple[ManifestRecord, np.ndarray, tuple[str, ...]]] = []

    def add(self, record: ManifestRecord, color: np.ndarray | None, missing: tuple[str, ...]) -> None:
        if color is None:
            self.finish(record)
            return
        self.pending.append((record, color, missing))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        failed: set[int] = set()
        for name, extractor in self.extractors.items():
            todo = [i for i, (_, _, missing) in enumerate(batch) if name in missing and i not in failed]
            if not todo:
                continue
            try:
                sketches = extractor.extract_batch([batch[i][1] for i in todo])
            except Exception:  # retry one by one so a single bad image costs only itself
                sketches = []
                for i in todo:
                    try:
                        sketches.append(extractor(batch[i][1]))
                    except Exception as exc:
                        failed.add(i)
                        sketches.append(None)
                        self.skip(batch[i][0].source, "error", f"{name}: {type(exc).__name__}: {exc}")
            for i, sketch in zip(todo, sketches):
                if sketch is not None:
                    write_png(sketch_path(self.out, name, batch[i][0].id), np.asarray(sketch, dtype=np.uint8))
        for i, (record, _, _) in enumerate(batch):
            if i not in failed:
                self.finish(record)


def prepare_dataset(src: str | Path, out: str | Path, config: PrepareConfig, progress: bool = True,
                    face_detector: faces_mod.FaceDetector | None = None) -> PrepareReport:
    """Prepare (or resume preparing) the dataset ``out`` from ``src``; see the module docstring.

    ``face_detector`` replaces animeface for ``config.faces`` (a picklable callable
    ``PIL image -> list[FaceBox]``). Returns the report also written to ``out/report.json``.
    """
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ValueError(f"source folder not found: {src}")
    if config.faces and face_detector is None:
        faces_mod.check_animeface_available()
        face_detector = faces_mod.animeface_detector
    extractors, params = _build_extractors(config)
    all_names = ((REAL_EXTRACTOR,) if config.paired else ()) + tuple(config.extractors)
    sketch_params = {REAL_EXTRACTOR: {}} if config.paired else {}
    sketch_params.update(params)
    face_settings = {"scale": config.face_scale, "min_face_fraction": config.min_face_fraction} if config.faces else None
    info = DatasetInfo(size=config.size, extractors=sketch_params, seed=config.seed, val_fraction=config.val_fraction,
                       layout=config.layout, source=str(src.resolve()), faces=config.faces,
                       near_duplicate_threshold=config.near_duplicate_threshold,
                       extra={"face": face_settings} if config.faces else {})
    previous_info = _check_output(out, info)
    previous_manifest = read_records_lenient(out / MANIFEST_FILE)
    cached = {r.id: r for r in previous_manifest + read_records_lenient(out / JOURNAL_FILE)}
    for folder in [out / "color", *(out / "sketch" / name for name in all_names)]:
        folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(out)
    write_dataset_info(out, info)

    report = PrepareReport(source=str(src), output=str(out), extractors=list(all_names))
    units, report.skipped = _list_units(src, out, config.layout)
    if config.limit is not None:
        units = units[:config.limit]
    report.inputs = len(units)

    primary, sha_of, duplicates_of = _hash_inputs(units, report)
    finished: dict[str, ManifestRecord] = {}
    tasks: list[_Task] = []
    for image_id, unit in primary.items():
        missing = tuple(kind for kind, path in
                        [("color", color_path(out, image_id))] + [(n, sketch_path(out, n, image_id)) for n in all_names]
                        if not path.is_file())
        old = cached.get(image_id)
        if old is not None and not missing and old.sha256 == sha_of[image_id]:
            finished[image_id] = replace(old, source=unit.source, sketch_source=unit.sketch_source)
        else:
            tasks.append(_Task(unit, image_id, sha_of[image_id], missing))
    report.resumed = len(finished)

    sketch_entries = tuple(SketchFile(n, sketch_params[n], "") for n in all_names)

    def complete(record: ManifestRecord) -> ManifestRecord:
        return replace(record, sketches=tuple(replace(s, path=f"sketch/{s.extractor}/{record.id}.png")
                                              for s in sketch_entries))

    journal = Journal(out / JOURNAL_FILE)
    bar = _progress_bar(len(primary), len(finished), progress)

    def finish(record: ManifestRecord) -> None:
        record = complete(record)
        journal.append(record)
        finished[record.id] = record
        report.processed += 1

    def skip(source: str, reason: str, message: str) -> None:
        report.skipped.append({"source": source, "reason": reason, "message": message})

    main_extractors = {n: e for n, e in extractors.items() if n in MAIN_PROCESS_EXTRACTORS}
    cpu_names = tuple(n for n in config.extractors if n not in MAIN_PROCESS_EXTRACTORS)
    batcher = _MainExtractors(out, main_extractors, config.batch_size, finish, skip)
    setup = _WorkerSetup(str(out), config, {n: params[n] for n in cpu_names}, cpu_names, face_detector)
    missing_of = {t.id: t.missing for t in tasks}

    def handle(results: list[tuple[str, Any]]) -> None:
        for kind, payload in results:
            if kind == "ok":
                record, color = payload
                batcher.add(record, color, missing_of[record.id])
            else:
                skip(*payload)
        bar.update(len(results))

    try:
        _run_tasks(tasks, setup, config, handle)
        batcher.flush()
    finally:
        bar.close()
        journal.close()

    _write_results(out, config, finished, duplicates_of, report, previous_info, previous_manifest)
    report.duration_s = time.perf_counter() - started
    atomic_write_text(out / REPORT_FILE, json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _write_results(out: Path, config: PrepareConfig, finished: dict[str, ManifestRecord],
                   duplicates_of: dict[str, list[str]], report: PrepareReport, previous_info: DatasetInfo | None,
                   previous_manifest: list[ManifestRecord]) -> None:
    """Assign splits, write the manifest, drop the journal and fill in the report's counts."""
    # Split: exact duplicates are already merged; near duplicates share their group's split.
    records = sorted(finished.values(), key=lambda r: r.source)
    splits, labels = assign_splits([r.sha256 for r in records], [int(r.phash, 16) for r in records],
                                   config.seed, config.val_fraction, config.near_duplicate_threshold)
    group_key: dict[int, str] = {}
    for label, record in zip(labels, records):
        if label not in group_key or record.sha256 < group_key[label]:
            group_key[label] = record.sha256
    records = [replace(r, split=s, group=group_key[g][:16], duplicates=tuple(duplicates_of.get(r.id, ())))
               for r, s, g in zip(records, splits, labels)]
    write_manifest(out, records)
    (out / JOURNAL_FILE).unlink(missing_ok=True)

    if previous_info is not None and (previous_info.seed, previous_info.val_fraction) == (config.seed, config.val_fraction):
        before = {r.id: r.split for r in previous_manifest}
        report.split_changes = sum(1 for r in records if r.id in before and before[r.id] != r.split)
    report.prepared = len(records)
    report.train = sum(1 for r in records if r.split == "train")
    report.val = report.prepared - report.train
    report.near_duplicate_groups = int(np.sum(np.bincount(np.asarray(labels, dtype=np.int64)) > 1)) if labels else 0


def _run_tasks(tasks: list[_Task], setup: _WorkerSetup, config: PrepareConfig,
               handle: Callable[[list[tuple[str, Any]]], None]) -> None:
    """Process ``tasks`` in chunks, in worker processes when there is more than one chunk."""
    if not tasks:
        return
    chunks = list(_chunks(tasks, config.batch_size))
    workers = min(config.workers or os.cpu_count() or 1, len(chunks))
    if workers > 1 and setup.detector is not None:
        try:
            pickle.dumps(setup.detector)
        except Exception:
            workers = 1  # a detector that cannot travel to other processes runs here
    if workers <= 1:
        _init_worker(setup, quiet_interrupts=False)
        try:
            for chunk in chunks:
                handle(_process_chunk(chunk))
        finally:
            _STATE.clear()
        return
    # Never plain fork: OpenCV's and torch's thread pools in this process deadlock forked children.
    # A fork server is a fresh process that imports this module once; later pools fork from it.
    if "forkserver" in get_all_start_methods():
        context = get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_init_worker, initargs=(setup,)) as pool:
        pending: set[Future] = set()
        queue = iter(chunks)
        try:
            for chunk in queue:
                pending.add(pool.submit(_process_chunk, chunk))
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        handle(future.result())
            for future in list(pending):
                pending.discard(future)
                handle(future.result())
        except BrokenProcessPool:
            raise RuntimeError("a worker process died (out of memory?); finished images are kept: re-run the "
                               "same command to resume, perhaps with fewer --workers") from None
        except BaseException:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _progress_bar(total: int, done: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, initial=done, unit="img", desc="prepare", dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
