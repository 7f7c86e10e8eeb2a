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

``--hints sparse,dense`` scores each model at those hint levels (one row per level; the floor does
not read hints). ``--hint-reach 8,16`` adds, per hint level, what a picture could know from the
hints alone, generously: the true colours at 16 px kept in full on the hinted pixels and fading as
exp(−d / σ) with the distance d (px) to the nearest one, white paper elsewhere, times the sketch's
lines. Far more than the hint dots carry (the true colours within a few σ, not the dots' one
colour), so a row under the floor says that no colouring led by those hints alone clears it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from sketch2anime.evaluation.floors import COLOUR_REFERENCE_SIZE, colour16_times_lines
from sketch2anime.evaluation.protocol import HINT_LEVELS, EvaluationProtocol, ProtocolConfig
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


def hint_distance(hint: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 4, h, w) hints (mask in channel 3) -> (N, 1, size, size) distance in pixels of the picture
    to the nearest hinted pixel (a large number where an image has no hint)."""
    masks = F.interpolate((hint[:, 3:4] > 0).float(), size=(size, size), mode="nearest")[:, 0].numpy() > 0
    far = float(4 * size)
    distances = [ndimage.distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, far) for mask in masks]
    return torch.from_numpy(np.stack(distances)).float()[:, None]


def hint_reach_picture(target: torch.Tensor, sketch: torch.Tensor, hint: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, 3, S, S) in [-1, 1]: the true colours at 16 px near the hints (weight exp(−d / sigma)),
    white paper elsewhere, times the sketch's lines: more than any colouring led by the hints knows."""
    side = target.shape[-1]
    weight = torch.exp(-hint_distance(hint, side) / sigma)
    colours = colour16_times_lines(target, torch.ones_like(sketch), COLOUR_REFERENCE_SIZE)
    near_hints = torch.ones_like(colours) * (1 - weight) + colours * weight
    return colour16_times_lines(near_hints, sketch, side)


def set_rows(protocol: EvaluationProtocol, models: list[str], ladder: tuple[int, ...] = (),
             hint_levels: tuple[str, ...] = ("sparse",),
             reach: tuple[int, ...] = ()) -> list[tuple[str, dict[str, float]]]:
    indices = list(range(len(protocol)))
    target = protocol.target_tensor(indices)
    sketch = protocol.sketch_tensor("none", indices)
    paper = paper_mask(target)
    rows = [("floor-sketch (the sketch as output)", region_scores(sketch.expand(-1, 3, -1, -1), target, paper))]
    rows += ladder_rows("the true picture", target, sketch, target, paper, ladder)
    one_level = hint_levels == ("sparse",)
    for level in hint_levels:
        hint = protocol.hint_tensor(level, indices)
        for sigma in reach:
            rows.append((f"the true colours at {COLOUR_REFERENCE_SIZE} px within σ {sigma} px of the {level} hints, "
                         "white elsewhere, × the lines",
                         region_scores(hint_reach_picture(target, sketch, hint, sigma), target, paper)))
        for source in models:
            pictures = model_pictures(source, sketch, hint, target.shape[-1])
            name = source if one_level else f"{source}, {level} hints"
            rows.append((name, region_scores(pictures, target, paper)))
            rows += ladder_rows(name, pictures, sketch, target, paper, ladder)
    return rows


def parse_sizes(text: str, option: str) -> tuple[int, ...]:
    """"8,16,32" -> (8, 16, 32); empty -> ()."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{option} {text!r}: give sizes in pixels separated by commas, e.g. 8,16,32") from None
    if any(size < 1 for size in sizes):
        raise ValueError(f"{option} {text!r}: sizes must be at least 1 px")
    return sizes


def parse_ladder(text: str) -> tuple[int, ...]:
    return parse_sizes(text, "--ladder")


def parse_hint_levels(text: str) -> tuple[str, ...]:
    """"sparse,dense" -> ("sparse", "dense"), checked against the protocol's levels."""
    levels = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [level for level in levels if level not in HINT_LEVELS]
    if not levels or unknown:
        raise ValueError(f"--hints {text!r}: choose from {', '.join(HINT_LEVELS)}, separated by commas")
    return levels


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
    parser.add_argument("--hints", default="sparse", help="hint levels the models get, e.g. sparse,dense")
    parser.add_argument("--hint-reach", default="", help="σ in px of the what-the-hints-know rows, e.g. 8,16 (see above)")
    args = parser.parse_args(argv)
    try:
        ladder = parse_ladder(args.ladder)
        reach = parse_sizes(args.hint_reach, "--hint-reach")
        hint_levels = parse_hint_levels(args.hints)
        config = ProtocolConfig(hint_levels=hint_levels, roughness=("none",))
        if not args.pairs and not args.data:
            raise ValueError("name --pairs DIR and/or --data DIR")
        sections = []
        if args.pairs:
            pairs = pairs_set(args.pairs, args.size, config, None)
            sections.append(markdown(pairs.title, set_rows(pairs.protocol, args.model, ladder, hint_levels, reach)))
        if args.data:
            sections.append(markdown(f"Validation split of {args.data}",
                                     set_rows(EvaluationProtocol(args.data, config), args.model, ladder,
                                                      hint_levels, reach)))
    except ValueError as exc:
        print(f"ssim_regions: {exc}", file=sys.stderr)
        return 2
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
