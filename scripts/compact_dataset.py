"""A small copy of a prepared dataset, for moving it to a machine with a size limit (a lent GPU).

The 256 px faces as prepared weigh ~150 KB per image (PNG colour + three PNG sketches); the device
tool carries 64 MiB in all. This copy stores colours as lossy WebP (quality 75: RMS error ~4 / 255,
~7 KB) and sketches as lossless WebP, optionally only ``--sketches-per-image`` of the extractors
per image (rotating, so every extractor keeps an equal share of the images). The result is an
ordinary prepared dataset (dataset.json + manifest.jsonl): training reads it as it is.

    python scripts/compact_dataset.py ~/s2a-runs/data/faces256 .gpu/faces256 --split train \\
        --quality 70 --sketches-per-image 1 --limit 2800
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sketch2anime.data.manifest import (  # noqa: E402
    ManifestRecord,
    read_dataset_info,
    read_manifest,
    write_dataset_info,
    write_manifest,
)

LOSSLESS = 101  # OpenCV's WebP quality above 100 means lossless


def compact_record(source: Path, target: Path, record: ManifestRecord, index: int, quality: int,
                   sketches_per_image: int) -> ManifestRecord:
    """Write one image's colour and chosen sketches under ``target``; the record that points at them."""
    color = cv2.imread(str(source / record.color), cv2.IMREAD_COLOR)
    if color is None:
        raise ValueError(f"cannot read {source / record.color}; re-run `sketch2anime prepare` to repair {source}")
    color_path = f"color/{record.id}.webp"
    _write(target / color_path, color, quality)
    sketches = record.sketches
    if sketches_per_image and sketches_per_image < len(sketches):
        sketches = tuple(sketches[(index + j) % len(sketches)] for j in range(sketches_per_image))
    kept = []
    for sketch in sketches:
        array = cv2.imread(str(source / sketch.path), cv2.IMREAD_GRAYSCALE)
        if array is None:
            raise ValueError(f"cannot read {source / sketch.path}; re-run `sketch2anime prepare` to repair {source}")
        path = f"sketch/{sketch.extractor}/{record.id}.webp"
        _write(target / path, array, LOSSLESS)
        kept.append(dataclasses.replace(sketch, path=path))
    return dataclasses.replace(record, color=color_path, sketches=tuple(kept))


def _write(path: Path, array, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array, [cv2.IMWRITE_WEBP_QUALITY, quality]):
        raise OSError(f"could not write {path}")


def compact_dataset(source: Path, target: Path, split: str = "all", quality: int = 75,
                    sketches_per_image: int = 0, limit: int | None = None) -> dict[str, float]:
    """Copy ``source`` to ``target`` as above; returns the image count and both sizes in bytes."""
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be 1..100, got {quality}")
    if sketches_per_image < 0:
        raise ValueError(f"--sketches-per-image must be 0 (all) or more, got {sketches_per_image}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be 1 or more, got {limit}")
    if split not in ("all", "train", "val"):
        raise ValueError(f"--split must be all, train or val, got {split!r}")
    source, target = Path(source).expanduser(), Path(target).expanduser()
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} is not empty; give a new folder")
    info = read_dataset_info(source)
    records = [r for r in read_manifest(source) if split == "all" or r.split == split]
    records = sorted(records, key=lambda r: r.id)[:limit]  # ids are content hashes: a random subset
    if not records:
        raise ValueError(f"{source} has no {split} images")
    target.mkdir(parents=True, exist_ok=True)
    compacted = [compact_record(source, target, r, i, quality, sketches_per_image) for i, r in enumerate(records)]
    write_dataset_info(target, info)
    write_manifest(target, compacted)  # last: a folder without a manifest reads as unfinished
    before = sum(_size(source / r.color) + sum(_size(source / s.path) for s in r.sketches) for r in records)
    after = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return {"images": len(records), "bytes_before": before, "bytes_after": after}


def _size(path: Path) -> int:
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a folder made by `sketch2anime prepare`")
    parser.add_argument("target", type=Path, help="a new folder")
    parser.add_argument("--split", default="all", help="all | train | val")
    parser.add_argument("--quality", type=int, default=75, help="WebP quality of the colour images (1-100)")
    parser.add_argument("--sketches-per-image", type=int, default=0,
                        help="keep this many of each image's sketches, rotating over extractors (0: all)")
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N images by id")
    args = parser.parse_args(argv)
    try:
        result = compact_dataset(args.source, args.target, args.split, args.quality, args.sketches_per_image,
                                  args.limit)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['images']} images: {result['bytes_before'] / 1e6:.1f} MB -> {result['bytes_after'] / 1e6:.1f} MB "
          f"in {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
