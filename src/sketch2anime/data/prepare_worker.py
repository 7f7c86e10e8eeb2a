"""Worker side of ``sketch2anime prepare``: decode one input, face-crop, resize, run the CPU sketch
extractors and write the files (``_process``; ``_process_chunk`` for a chunk of tasks). Runs in pool
workers (``_init_worker``) or, with one worker, in the main process. ``prepare.py`` re-exports
``color_path`` and ``sketch_path``."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from dataclasses import dataclass
from multiprocessing import parent_process
from multiprocessing.connection import wait as wait_for_objects
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image

from . import faces as faces_mod
from .image_io import ImageInputError, load_rgb, load_sketch, resize_square, write_png
from .manifest import REAL_EXTRACTOR, ManifestRecord
from .prepare_inputs import _Unit
from .split import phash

if TYPE_CHECKING:
    from .prepare import PrepareConfig

_STATE: dict[str, Any] = {}


@dataclass(frozen=True)
class _WorkerSetup:
    out: str
    config: PrepareConfig
    params: dict[str, dict[str, Any]]
    cpu_extractors: tuple[str, ...]
    detector: Any = None


@dataclass(frozen=True)
class _Task:
    unit: _Unit
    id: str
    sha256: str
    missing: tuple[str, ...]  # "color" and/or extractor names whose file must be (re)written


def _init_worker(setup: _WorkerSetup, quiet_interrupts: bool = True) -> None:
    from .extractors import make_extractor

    if quiet_interrupts:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
        cv2.setNumThreads(1)  # one process per core already
        _exit_with_parent()
    _STATE["setup"] = setup
    _STATE["extractors"] = {name: make_extractor(name, **setup.params.get(name, {})) for name in setup.cpu_extractors}


def _exit_with_parent() -> None:
    """End this worker as soon as the main process is gone, however it died.

    A pool worker waits on a queue whose write end it holds itself, so a SIGKILLed main process
    would leave it (and, through it, the fork server) alive for ever. The parent sentinel that
    multiprocessing gives every child (a pipe end under fork server/spawn, a process handle on
    Windows) becomes ready when the main process dies; a daemon thread waits on it.
    """
    parent = parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait_for_objects([parent.sentinel])
        os._exit(1)  # no clean-up: the main process that would take the results is gone

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def color_path(out: Path, image_id: str) -> Path:
    return out / "color" / f"{image_id}.png"


def sketch_path(out: Path, extractor: str, image_id: str) -> Path:
    return out / "sketch" / extractor / f"{image_id}.png"


def _extractor_rng(image_id: str, extractor: str) -> np.random.Generator:
    # Depends on the image and the extractor only: the same sketch whichever worker makes it.
    digest = hashlib.sha256(f"{image_id}:{extractor}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _decode(unit: _Unit, layout: str) -> tuple[Image.Image, Image.Image | None]:
    """(colour RGB, real sketch L or None) of one input; ImageInputError when unusable."""
    if layout == "side-by-side":
        both = load_rgb(unit.path)
        width, height = both.size
        if not 1.5 <= width / height <= 2.5:
            raise ImageInputError(f"{unit.source} is {width}x{height}; a side-by-side pair should be about "
                                  "twice as wide as high (colour left, sketch right)", "not_side_by_side")
        half = width // 2
        return both.crop((0, 0, half, height)), both.crop((width - half, 0, width, height)).convert("L")
    color = load_rgb(unit.path)
    sketch = load_sketch(unit.sketch_path) if unit.sketch_path is not None else None
    return color, sketch


def _process(task: _Task) -> tuple[str, Any]:
    setup: _WorkerSetup = _STATE["setup"]
    config, out = setup.config, Path(setup.out)
    unit = task.unit
    color, sketch = _decode(unit, config.layout)
    image_hash = phash(color)
    box = None
    if config.faces:
        min_side = int(round(config.min_face_fraction * config.size))
        box, reason = faces_mod.find_face_box(color, setup.detector, config.face_scale, min_side)
        if box is None:
            raise ImageInputError(f"{unit.source}: no usable anime face found", reason)
        if sketch is not None:
            sketch = sketch.crop(faces_mod.scale_box(box, color.size, sketch.size))
        color = color.crop(box)
    color_array = np.asarray(resize_square(color, config.size, "crop"), dtype=np.uint8)
    if "color" in task.missing:
        write_png(color_path(out, task.id), color_array)
    if sketch is not None and REAL_EXTRACTOR in task.missing:
        write_png(sketch_path(out, REAL_EXTRACTOR, task.id), np.asarray(resize_square(sketch, config.size, "crop")))
    for name, extractor in _STATE["extractors"].items():
        if name in task.missing:
            result = extractor(color_array, _extractor_rng(task.id, name))
            write_png(sketch_path(out, name, task.id), np.asarray(result, dtype=np.uint8))
    record = ManifestRecord(
        id=task.id, source=unit.source, sha256=task.sha256, phash=f"{image_hash:016x}",
        color=f"color/{task.id}.png", sketches=(), face_box=box, sketch_source=unit.sketch_source,
    )
    needs_main = any(name in task.missing for name in config.extractors if name not in setup.cpu_extractors)
    return "ok", (record, color_array if needs_main else None)


def _process_chunk(tasks: list[_Task]) -> list[tuple[str, Any]]:
    results: list[tuple[str, Any]] = []
    for task in tasks:
        try:
            results.append(_process(task))
        except ImageInputError as exc:
            results.append(("skip", (task.unit.source, exc.reason, str(exc))))
        except Exception as exc:  # one odd image must never stop the whole run
            results.append(("skip", (task.unit.source, "error", f"{type(exc).__name__}: {exc}")))
    return results
