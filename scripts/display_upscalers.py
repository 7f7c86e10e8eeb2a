"""SSIM at the size the user sees, with each way of getting there: bicubic (the panel's live
preview, the evaluation's display column) and every installed anime upscaler (the panel's result
when the pen rests).

    python scripts/display_upscalers.py [MODEL] [--data ~/s2a-runs/data/faces128] [--limit 150] [--size 256]

On the first ``--limit`` validation images (clean sketches, sparse hints, the evaluation's seeded
protocol, projection 0) the model's native output is brought to ``--size`` px each way and scored
against the true image at that size (re-made from the dataset's sources, as ``evaluate`` does). An
upscaler that enlarges past the size is followed by area reduction. The mean training image, shown
bicubically, is the floor. Upscalers come from ``sketch2anime weights upscaler``; none installed
leaves the bicubic row alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from sketch2anime.evaluation.eval_model import upscale_for_display
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.evaluation.sets import dataset_display
from sketch2anime.evaluation.floors import mean_image
from sketch2anime.evaluation.ssim import ssim
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.upscale.upscaler import UPSCALERS, load_upscaler

BATCH = 16


def to_size(images: torch.Tensor, size: int, upscaler=None) -> torch.Tensor:
    """``(N, 3, s, s)`` in [-1, 1] -> ``(N, 3, size, size)``: bicubic, or the upscaler then area."""
    if upscaler is None:
        return upscale_for_display(images, size)
    parts = [upscaler.upscale_tensor((images[i:i + BATCH] + 1) / 2) * 2 - 1 for i in range(0, len(images), BATCH)]
    enlarged = torch.cat(parts)
    if enlarged.shape[-1] != size:
        enlarged = F.interpolate(enlarged, size=(size, size), mode="area")
    return enlarged.clamp(-1, 1)


def display_rows(model: str, data: Path, limit: int, size: int) -> list[tuple[str, float]]:
    protocol = EvaluationProtocol(data, ProtocolConfig(hint_levels=("sparse",), roughness=("none",), limit=limit))
    indices = list(range(len(protocol)))
    display = dataset_display(protocol, size)
    if not display.available:
        raise ValueError(f"no true images at {size} px for {data}: {display.reason}")
    truth = display.tensor(indices)
    pipe = Sketch2AnimePipeline.from_pretrained(model)
    sketch, hint = protocol.sketch_tensor("none", indices), protocol.hint_tensor("sparse", indices)
    with torch.inference_mode():
        output = torch.cat([pipe.generate_tensors(sketch[i:i + BATCH], hint[i:i + BATCH], 0.0)["image"]
                            for i in range(0, len(indices), BATCH)])
    rows = [("model, bicubic", float(ssim(to_size(output, size), truth).mean()))]
    for name in sorted(UPSCALERS):
        try:
            upscaler = load_upscaler(name)
        except ValueError:  # not installed: `sketch2anime weights upscaler` fetches it
            continue
        rows.append((f"model, {name} (x{upscaler.scale})", float(ssim(to_size(output, size, upscaler), truth).mean())))
    mean = mean_image(protocol.training_color_paths(), output.shape[-1])[None].expand(len(indices), -1, -1, -1)
    rows.append(("floor-mean (mean training image), bicubic", float(ssim(to_size(mean, size), truth).mean())))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="default")
    parser.add_argument("--data", type=Path, default=Path("~/s2a-runs/data/faces128").expanduser())
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    rows = display_rows(args.model, args.data, args.limit, args.size)
    print(f"{args.model}: {args.limit} validation images, clean sketches, sparse hints, t = 0, at {args.size} px\n")
    print(f"| shown as | SSIM at {args.size} px |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
