"""Score a guided model on real line-art pairs at 256 px, run at its own size and at work scale 2.

    python scripts/work_scale_pairs.py --model default --pairs ../shared/data/sketch-pairs
    python scripts/work_scale_pairs.py --model default --faces ~/s2a-runs/data/faces128 --count 150

The pairs are full-length characters drawn in pencil at 256 px. ``sketch2anime evaluate`` feeds a
model its own size (128 px for the default), where their heads are ~25 px and their lines sub-pixel.
Here each model sees the same pairs and the same hints (the evaluation's seeded sparse hints at
128 px, each cell repeated 2 x 2 for the 256 px run) and every picture is scored at 256 px against
the true colour picture: the 128 px result enlarged bicubically (as the panel shows it), the result
of the same weights run at 256 px (``pipe.at_scale(2)``), and the floors "the 256 px sketch itself"
and "the 128 px sketch enlarged". Prints a Markdown table; writes no pictures (the pairs are dataset
images, which the repository does not show).

``--faces PREPARED`` scores face crops the same way instead: the first ``--count`` validation faces
of a prepared dataset, read from their source images at 256 px and sketched there by the detail
extractor (into a temporary folder, deleted afterwards).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import torch
import torch.nn.functional as F

from sketch2anime.evaluation.color import hint_adherence
from sketch2anime.data.extractors import make_extractor
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.evaluation.sets import dataset_display, pairs_set
from sketch2anime.evaluation.ssim import l1, ssim
from sketch2anime.inference import Sketch2AnimePipeline

def enlarge(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def run(pipe: Sketch2AnimePipeline, sketch: torch.Tensor, hint: torch.Tensor, projection: float) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    image = pipe.generate_tensors(sketch, hint, projection)["image"]
    return image, (time.perf_counter() - start) * 1000 / sketch.shape[0]


def faces_as_pairs(prepared: Path, count: int, side: int, out: Path) -> Path:
    """``out/sketch`` and ``out/color``: the first ``count`` validation faces of ``prepared`` at ``side`` px
    (from the source images) and their detail-extractor sketches made at that size."""
    protocol = EvaluationProtocol(prepared, ProtocolConfig(limit=count))
    colours = dataset_display(protocol, side).tensor(range(len(protocol)))
    extract = make_extractor("detail")
    (out / "sketch").mkdir(parents=True)
    (out / "color").mkdir()
    for record, colour in zip(protocol.records, colours):
        rgb = ((colour.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(out / "color" / f"{record.id}.png")
        Image.fromarray(extract(rgb), "L").save(out / "sketch" / f"{record.id}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="pipeline folder or 'default' (repeatable)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", help="folder with sketch/ and color/ (same file names)")
    source.add_argument("--faces", type=Path, help="a prepared dataset: score its validation faces instead")
    parser.add_argument("--count", type=int, default=150, help="with --faces: how many validation faces")
    parser.add_argument("--projection", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.faces is not None:
        with tempfile.TemporaryDirectory() as tmp:
            size = Sketch2AnimePipeline.from_pretrained(args.model[0], device="cpu").image_size
            args.pairs = str(faces_as_pairs(args.faces, args.count, 2 * size, Path(tmp) / "faces"))
            score(args, f"validation faces of {args.faces} (source images, detail-extractor sketches)")
    else:
        score(args, "real line-art pairs")


def score(args: argparse.Namespace, what: str) -> None:
    config = ProtocolConfig(hint_levels=("sparse",), roughness=("none",))
    rows, first_size = [], None
    for path in args.model:
        pipe = Sketch2AnimePipeline.from_pretrained(path, device="cpu")
        size = pipe.image_size
        if first_size is not None and size != first_size:  # one table, one set of targets and floors
            raise SystemExit(f"{path} works at {size} px and {args.model[0]} at {first_size} px: score models "
                             "of one size per run")
        first_size = size
        small = pairs_set(args.pairs, size, config, None).protocol
        large = pairs_set(args.pairs, size * 2, config, None).protocol
        ids = range(len(small))
        target = large.target_tensor(ids)
        hint = small.hint_tensor("sparse", ids)
        if not rows:  # the floors: the same for every model of this size
            floor_large = large.sketch_tensor("none", ids).expand(-1, 3, -1, -1)
            floor_small = enlarge(small.sketch_tensor("none", ids).expand(-1, 3, -1, -1), size * 2)
            for name, image in ((f"floor: the {size * 2} px sketch", floor_large),
                                (f"floor: the {size} px sketch enlarged", floor_small)):
                rows.append((name, image, None, None))
        own, own_ms = run(pipe, small.sketch_tensor("none", ids), hint, args.projection)
        twice = pipe.at_scale(2)
        hint2 = hint.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        doubled, doubled_ms = run(twice, large.sketch_tensor("none", ids), hint2, args.projection)
        rows.append((f"{path} at {size} px, enlarged", enlarge(own, size * 2), own_ms, hint))
        rows.append((f"{path} at {size * 2} px (work scale 2)", doubled, doubled_ms, hint))
    print(f"{len(ids)} {what}, scored at {size * 2} px against the true pictures; sparse hints, "
          f"t = {args.projection:g}\n")
    print(f"| picture | SSIM at {size * 2} px ↑ | L1 ↓ | hint ΔE00 median ↓ | ms per picture (1 thread) |")
    print("|---|---|---|---|---|")
    for name, image, ms, hints in rows:
        # hint colour error on the hint grid (the picture averaged over each cell), for the models
        delta = "–" if hints is None else f"{hint_adherence(image, hints)['median']:.2f}"
        print(f"| {name} | {float(ssim(image, target).mean()):.3f} | {float(l1(image, target).mean()):.3f} | "
              f"{delta} | {'–' if ms is None else f'{ms:.0f}'} |")


if __name__ == "__main__":
    main()
