"""Inputs of ``sketch2anime prepare``: list them by layout (``_Unit``: one colour image or pair) and
content-hash them (the image id is the first 16 hex digits of the sha256). ``prepare.py`` runs them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import sha256_file
from .image_io import ImageInputError, list_images
from .manifest import PrepareReport


@dataclass(frozen=True)
class _Unit:
    """One input: a colour image (or side-by-side pair) and, for paired folders, its sketch."""

    source: str
    path: str
    sketch_source: str | None = None
    sketch_path: str | None = None


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _list_units(src: Path, out: Path, layout: str) -> tuple[list[_Unit], list[dict[str, str]]]:
    out_resolved = out.resolve()
    out_inside_src = _under(out_resolved, src.resolve())
    skipped: list[dict[str, str]] = []

    def images_in(folder: Path) -> list[Path]:
        found = list_images(folder)
        return [p for p in found if not _under(p, out_resolved)] if out_inside_src else found

    if layout in ("images", "side-by-side"):
        return [_Unit(_relative(p, src), str(p)) for p in images_in(src)], skipped
    color_dir, sketch_dir = src / "color", src / "sketch"
    if not color_dir.is_dir() or not sketch_dir.is_dir():
        raise ValueError(f"--layout paired-folders needs {color_dir} and {sketch_dir}")

    def by_key(folder: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for p in images_in(folder):
            key = _relative(p.with_suffix(""), folder)
            if key in found:
                skipped.append({"source": _relative(p, src), "reason": "ambiguous_pair",
                                "message": f"{found[key].name} and {p.name} have the same name"})
                continue
            found[key] = p
        return found

    colors, sketches = by_key(color_dir), by_key(sketch_dir)
    units = []
    for key in sorted(colors):
        if key not in sketches:
            skipped.append({"source": _relative(colors[key], src), "reason": "unpaired",
                            "message": f"no sketch named {key}.* in {sketch_dir}"})
            continue
        units.append(_Unit(_relative(colors[key], src), str(colors[key]),
                           _relative(sketches[key], src), str(sketches[key])))
    for key in sorted(set(sketches) - set(colors)):
        skipped.append({"source": _relative(sketches[key], src), "reason": "unpaired",
                        "message": f"no colour image named {key}.* in {color_dir}"})
    return units, skipped


def _content_hash(unit: _Unit) -> str:
    """sha256 of the input bytes; for paired folders, of the two files' digests."""
    for path in (unit.path, unit.sketch_path):
        if path is not None and os.path.islink(path) and not os.path.exists(path):
            raise ImageInputError(f"{path} is a broken symbolic link (its target is missing, or links point at "
                                  "each other in a loop)", "broken_link")
        if path is not None and os.path.getsize(path) == 0:
            raise ImageInputError(f"{path} is empty (0 bytes)", "empty")
    sha = sha256_file(unit.path)
    if unit.sketch_path is not None:
        sha = hashlib.sha256(f"{sha}:{sha256_file(unit.sketch_path)}".encode()).hexdigest()
    return sha


def _hash_inputs(units: list[_Unit], report: PrepareReport) -> tuple[dict[str, _Unit], dict[str, str], dict[str, list[str]]]:
    """Content-hash every input: ``id -> first unit``, ``id -> sha256``, ``id -> exact copies``.
    Empty and unreadable files go to ``report.skipped``, exact copies to ``report.duplicates``."""
    primary: dict[str, _Unit] = {}
    sha_of: dict[str, str] = {}
    duplicates_of: dict[str, list[str]] = {}
    for unit in units:
        try:
            sha = _content_hash(unit)
        except ImageInputError as exc:
            report.skipped.append({"source": unit.source, "reason": exc.reason, "message": str(exc)})
            continue
        except OSError as exc:
            reason = "permission_denied" if isinstance(exc, PermissionError) else "unreadable"
            report.skipped.append({"source": unit.source, "reason": reason, "message": str(exc)})
            continue
        image_id = sha[:16]
        if image_id in primary:
            duplicates_of[image_id].append(unit.source)
            report.duplicates.append({"source": unit.source, "duplicate_of": primary[image_id].source, "id": image_id})
            continue
        primary[image_id], sha_of[image_id], duplicates_of[image_id] = unit, sha, []
    return primary, sha_of, duplicates_of
