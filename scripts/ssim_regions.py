"""Where does a model lose SSIM against the "sketch as output" floor: on the paper or in the figure?

    python scripts/ssim_regions.py --model default [--model ...] --pairs ../shared/data/sketch-pairs
    python scripts/ssim_regions.py --model default --data ~/s2a-runs/data/faces128

The real line-art pairs are mostly white paper around a figure, so returning the sketch itself
already scores high there. This script splits the SSIM map of each picture against its true image
into two regions of the *true* image: **paper** (bright and flat over the SSIM window: window mean
of the grey level above 0.9, window variance below 0.002) and **figure** (the rest), and splits
SSIM into its two factors, luminance (brightness) and contrast-structure (does the local pattern
match). The evaluation's inputs are used unchanged: clean sketches, sparse hints, t = 0.

SSIM = paper share × paper SSIM + (1 − paper share) × figure SSIM, so the two region columns say
how much of a gap to the floor comes from painting over the paper and how much from the figure.

``--ladder 8,16,32`` adds a colour-knowledge ladder: the true picture's colours area-averaged to N px
(upscaled bilinearly) times the sketch's lines, as the evaluation's ``ref-colour16`` reference does
at 16 px, and the same for each model's picture. The true rows say how much colour a picture must
know to beat the sketch floor; a model's rows say whether its colour layout, without its own
detail, would.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sketch2anime.evaluation.floors import colour16_times_lines
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.evaluation.sets import pairs_set
from sketch2anime.evaluation.ssim import ssim_terms, window_statistics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fid_sensitivity import model_pictures  # noqa: E402  (the scripts are not a package)

PAPER_LEVEL = 0.9
PAPER_VARIANCE = 0.002


def paper_mask(target: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> bool (N, 1, H - 10, W - 10) on SSIM's valid grid: windows of the
    true image that are bright and flat (paper), by the same Gaussian window SSIM uses."""
    mean, variance = window_statistics(((target.double() + 1.0) / 2.0).mean(dim=1, keepdim=True))
    return (mean > PAPER_LEVEL) & (variance < PAPER_VARIANCE)


def region_scores(output: torch.Tensor, target: torch.Tensor, paper: torch.Tensor) -> dict[str, float]:
    """SSIM, and SSIM / luminance / contrast-structure over the paper and the figure, pooled over
    every pixel and channel of the batch. output, target (N, 3, H, W); paper from ``paper_mask``."""
    luminance, structure = ssim_terms(output, target)
    mask = paper.expand_as(luminance)
    row = {"ssim": float((luminance * structure).mean()), "paper_share": float(mask.double().mean())}
    for name, region in (("paper", mask), ("figure", ~mask)):
        if region.any():
            row[f"{name}_ssim"] = float((luminance * structure)[region].mean())
            row[f"{name}_luminance"] = float(luminance[region].mean())
            row[f"{name}_structure"] = float(structure[region].mean())
        else:
            row[f"{name}_ssim"] = row[f"{name}_luminance"] = row[f"{name}_structure"] = float("nan")
    return row


def ladder_rows(name: str, colours: torch.Tensor, sketch: torch.Tensor, target: torch.Tensor, paper: torch.Tensor,
                sizes: tuple[int, ...]) -> list[tuple[str, dict[str, float]]]:
    """One row per size N: ``colours`` (N, 3, H, W) kept only at N px, times the sketch's lines."""
    return [(f"{name}, colours at {size} px × the lines",
             region_scores(colour16_times_lines(colours, sketch, size), target, paper)) for size in sizes]


def set_rows(protocol: EvaluationProtocol, models: list[str],
             ladder: tuple[int, ...] = ()) -> list[tuple[str, dict[str, float]]]:
    indices = list(range(len(protocol)))
    target = protocol.target_tensor(indices)
    sketch = protocol.sketch_tensor("none", indices)
    hint = protocol.hint_tensor("sparse", indices)
    paper = paper_mask(target)
    rows = [("floor-sketch (the sketch as output)", region_scores(sketch.expand(-1, 3, -1, -1), target, paper))]
    rows += ladder_rows("the true picture", target, sketch, target, paper, ladder)
    for source in models:
        pictures = model_pictures(source, sketch, hint, target.shape[-1])
        rows.append((source, region_scores(pictures, target, paper)))
        rows += ladder_rows(source, pictures, sketch, target, paper, ladder)
    return rows


def parse_ladder(text: str) -> tuple[int, ...]:
    """"8,16,32" -> (8, 16, 32); empty -> ()."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--ladder {text!r}: give sizes in pixels separated by commas, e.g. 8,16,32") from None
    if any(size < 1 for size in sizes):
        raise ValueError(f"--ladder {text!r}: sizes must be at least 1 px")
    return sizes


def markdown(title: str, rows: list[tuple[str, dict[str, float]]]) -> str:
    lines = [f"### {title}", "",
             "| picture | SSIM | paper share | paper: SSIM | luminance | contrast-structure | "
             "figure: SSIM | luminance | contrast-structure |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        cells = [r["ssim"], r["paper_share"], r["paper_ssim"], r["paper_luminance"], r["paper_structure"],
                 r["figure_ssim"], r["figure_luminance"], r["figure_structure"]]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="a model folder or 'default' (repeatable)")
    parser.add_argument("--pairs", type=Path, help="real line-art pairs (DIR/sketch, DIR/color)")
    parser.add_argument("--data", type=Path, help="a prepared dataset: its validation split")
    parser.add_argument("--size", type=int, default=128, help="the size the pairs are read at (the model's)")
    parser.add_argument("--ladder", default="", help="colour-knowledge ladder sizes, e.g. 8,16,32,64 (see above)")
    args = parser.parse_args(argv)
    config = ProtocolConfig(hint_levels=("sparse",), roughness=("none",))
    try:
        ladder = parse_ladder(args.ladder)
        if not args.pairs and not args.data:
            raise ValueError("name --pairs DIR and/or --data DIR")
        sections = []
        if args.pairs:
            pairs = pairs_set(args.pairs, args.size, config, None)
            sections.append(markdown(pairs.title, set_rows(pairs.protocol, args.model, ladder)))
        if args.data:
            sections.append(markdown(f"Validation split of {args.data}",
                                     set_rows(EvaluationProtocol(args.data, config), args.model, ladder)))
    except ValueError as exc:
        print(f"ssim_regions: {exc}", file=sys.stderr)
        return 2
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
