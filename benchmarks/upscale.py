"""Anime upscalers against bicubic: quality on held-out faces and time per image on the CPU.

    python benchmarks/upscale.py --faces ../shared/data/anime-faces-256 --count 20 [--threads 1,2]

Quality: the last ``--count`` images of the folder (sorted; the upscalers were trained elsewhere,
so every face is held out for them) at 256 px, shrunk to 64 px (PIL bicubic, antialiased) and
brought back 4x by bicubic, animevideov3-x4, and waifu2x-upconv7-x2 applied twice; SSIM and PSNR
against the 256 px original with the package's metrics (``evaluation/ssim.py``). Time: the median
of ``--repeats`` calls per row (after one warm-up) for 128 -> 512 px (the panel's case) and
64 -> 512 px (8x: 4x then 2x), at each thread count. Needs ``sketch2anime weights upscaler``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

import numpy as np
import torch
from PIL import Image

from sketch2anime.data.image_io import list_images, load_rgb
from sketch2anime.evaluation.ssim import psnr, ssim
from sketch2anime.upscale.upscaler import enlarge, load_upscaler


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL RGB list -> (N, 3, H, W) in [-1, 1] (the metrics' convention)."""
    arrays = np.stack([np.asarray(im, dtype=np.float32) / 127.5 - 1.0 for im in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2)


def quality(folder: Path, count: int) -> list[tuple[str, float, float]]:
    paths = list_images(folder)[-count:]
    if not paths:
        raise SystemExit(f"no images in {folder}")
    originals = [load_rgb(p).resize((256, 256), Image.Resampling.BICUBIC) for p in paths]
    small = [im.resize((64, 64), Image.Resampling.BICUBIC) for im in originals]
    methods = {
        "bicubic": lambda im: im.resize((256, 256), Image.Resampling.BICUBIC),
        "animevideov3-x4": lambda im: load_upscaler("animevideov3-x4")(im),
        "waifu2x-upconv7-x2, twice": lambda im: load_upscaler("waifu2x-upconv7-x2")(load_upscaler("waifu2x-upconv7-x2")(im)),
    }
    reference = to_tensor(originals)
    rows = []
    for name, method in methods.items():
        out = to_tensor([method(im) for im in small])
        rows.append((name, float(ssim(out, reference).mean()), float(psnr(out, reference).mean())))
    return rows


def timing(threads: list[int], repeats: int) -> list[tuple[str, int, float]]:
    rng = np.random.default_rng(0)
    image128 = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    image64 = image128.resize((64, 64))
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        cases = {
            "animevideov3-x4, 128 -> 512 px": lambda: load_upscaler("animevideov3-x4")(image128),
            "waifu2x-upconv7-x2, 128 -> 256 px": lambda: load_upscaler("waifu2x-upconv7-x2")(image128),
            "8x (both), 64 -> 512 px": lambda: enlarge(image64, 8),
            "bicubic (PIL), 128 -> 512 px": lambda: image128.resize((512, 512), Image.Resampling.BICUBIC),
        }
        for name, fn in cases.items():
            fn()
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - start)
            rows.append((name, count, statistics.median(samples) * 1000))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/anime-faces-256"))
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"\n{args.count} faces, 256 -> 64 -> 256 px\n\n| method | SSIM | PSNR (dB) |\n|---|---|---|")
    for name, s, p in quality(args.faces, args.count):
        print(f"| {name} | {s:.3f} | {p:.2f} |")
    print("\n| upscaler | torch threads | median ms per image |\n|---|---|---|")
    for name, count, ms in timing([int(t) for t in args.threads.split(",")], args.repeats):
        print(f"| {name} | {count} | {ms:.0f} |")


if __name__ == "__main__":
    main()
