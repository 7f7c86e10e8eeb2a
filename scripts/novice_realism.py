"""How real do the pictures look for the people the project is for: novice face drawings?

    python scripts/novice_realism.py [--model default] [--model OTHER ...] [--count 64] [--real 600]
    python scripts/novice_realism.py --model default --model default@seed=1   # the panel's Seed 1

The evaluation's sets are drawn from dataset images, so they have a true picture to compare with;
a novice's drawing (``showcase.novice_face``: wobbly outline, fringe, two eyes, nose, mouth; the
seed picks the character) has none. What can still be measured is whether the result looks like
the anime faces the model learnt from: KID and FID on HED-VGG16 features (``evaluation/fid.py``,
128 px) between each model's results for ``--count`` novice faces and ``--real`` training colour
images. Two conditions: no hints, and the showcase's hint layer (a hair stroke and two background
dabs, the colours taking turns), both at ``--projection`` (the panel's default 0.5). KID is the one
to read: unbiased at these sample counts, where FID (more features than samples) is not.

``--centre F`` computes KID and FID on the central F × F of every picture, results and real images alike: the
face without most of the background, to tell a change of face from a change of background.

Also printed, for the hinted condition: how closely the result keeps each kind of hint, as the
median CIEDE2000 between the result (averaged to the hint grid) and the hint colour over the
hinted cells (``evaluation.color.hint_adherence``), for the hair stroke and the background dabs
apart. A result can look more like the training faces (lower KID) by painting hair-and-shadow
colours over a pale background the user asked for; this column shows it.

Also printed: the share of each result's coloured pixels on the magenta or the green side of the
CIELAB a* axis, whichever is smaller, averaged (0 = one warm or one cool family of colours; 0.5 =
half magenta, half green: a hedge between two colourings, not a colouring).

With two or more models, a second table gives each later model's KID minus the first one's, per
condition, with a 90% paired bootstrap interval over the drawings (each drawing goes through every
model, so the pairs are kept): an interval that contains 0 means the drawings chosen, not the
models, may explain the difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from showcase import BACKGROUND_COLOURS, HAIR_COLOURS, hint_layer, novice_face  # noqa: E402

from sketch2anime.data.image_io import load_rgb, rgb_to_tensor  # noqa: E402
from sketch2anime.evaluation.color import hint_adherence, rgb_to_lab  # noqa: E402
from sketch2anime.evaluation.fid import fid_kid, make_feature_extractor, paired_kid_difference  # noqa: E402
from sketch2anime.evaluation.models_under_test import check_colour_seed, parse_model_spec  # noqa: E402
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig  # noqa: E402
from sketch2anime.hint_format import rgba_to_hint  # noqa: E402
from sketch2anime.inference import Sketch2AnimePipeline  # noqa: E402
from sketch2anime.upscale.upscaler import multiply_lines  # noqa: E402

CONDITIONS = ("no hints", "hair + background hints")
CHROMA_MIN = 12.0  # a*b* magnitude below which a pixel counts as grey (lines, paper, skin shadows)


def colour_split(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, S, S)`` in [-1, 1] -> ``(N,)``: min(share with a* > 0, share with a* < 0) among coloured pixels."""
    lab = rgb_to_lab(((images.double().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy())
    a, b = lab[..., 1], lab[..., 2]
    coloured = np.hypot(a, b) > CHROMA_MIN
    count = np.maximum(coloured.reshape(len(images), -1).sum(1), 1)
    positive = ((a > 0) & coloured).reshape(len(images), -1).sum(1) / count
    negative = ((a < 0) & coloured).reshape(len(images), -1).sum(1) / count
    return np.minimum(positive, negative)


def split_hint(layer: Image.Image, hair: tuple[int, int, int], image_size: int,
               downscale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The hint tensor of ``hint_layer`` as (hair part, background part), each ``(4, h, h)``."""
    hint = rgba_to_hint(layer, image_size, downscale)
    hair_rgb = torch.tensor(hair, dtype=torch.float32).div(127.5).sub(1.0)
    # the hair stroke's cells carry exactly the hair colour; cells at its anti-aliased edge come close
    is_hair = (hint[:3] - hair_rgb[:, None, None]).abs().amax(dim=0) < 0.1
    hinted = hint[3] > 0.5
    parts = []
    for keep in (hinted & is_hair, hinted & ~is_hair):
        part = hint.clone()
        part[:, ~keep] = 0.0
        parts.append(part)
    return parts[0], parts[1]


def model_results(model: str, count: int, projection: float) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Each condition -> ``(count, 3, S, S)`` in [-1, 1] at the model's size; and the hinted results'
    median ΔE00 at the hair and at the background hints."""
    spec = parse_model_spec(model)  # FOLDER@seed=N: the panel's Seed N (borrowed colours); @lines=S / @flat=F: generate --lines / --flatten
    pipe = Sketch2AnimePipeline.from_pretrained(spec.folder, device="cpu")
    check_colour_seed(pipe, model, spec.colour_seed)
    results: dict[str, list[torch.Tensor]] = {name: [] for name in CONDITIONS}
    hair_hints, background_hints = [], []
    for i in range(count):
        sketch = novice_face(i)
        hair = HAIR_COLOURS[i % len(HAIR_COLOURS)]
        hint = hint_layer(sketch.width, hair, BACKGROUND_COLOURS[i % len(BACKGROUND_COLOURS)])
        hair_part, background_part = split_hint(hint, hair, pipe.image_size, pipe.hint_downscale)
        hair_hints.append(hair_part)
        background_hints.append(background_part)
        for name, layer in zip(CONDITIONS, (None, hint)):
            picture = pipe(sketch, layer, projection=projection, seed=spec.colour_seed, output_size="model",
                           flatten=spec.flatten)
            if spec.lines:
                picture = multiply_lines(picture, sketch, spec.lines)
            results[name].append(rgb_to_tensor(picture))
    stacked = {name: torch.stack(pictures) for name, pictures in results.items()}
    hinted = stacked[CONDITIONS[1]]
    adherence = {part: hint_adherence(hinted, torch.stack(hints))["median"]
                 for part, hints in (("hair", hair_hints), ("background", background_hints))}
    return stacked, adherence


def centre_crop(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """``(N, C, S, S)`` -> the central ``round(fraction * S)`` square of each."""
    side = images.shape[-1]
    keep = max(1, round(fraction * side))
    start = (side - keep) // 2
    return images[..., start:start + keep, start:start + keep]


def real_images(data: Path, count: int, size: int) -> torch.Tensor:
    protocol = EvaluationProtocol(data, ProtocolConfig(hint_levels=("none",), roughness=("none",), limit=1))
    paths = protocol.training_color_paths()
    step = max(1, len(paths) // count)  # spread over the split, the same images every run
    chosen = paths[::step][:count]
    return torch.stack([rgb_to_tensor(load_rgb(p).resize((size, size), Image.Resampling.BICUBIC)) for p in chosen])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, help="pipeline folder or 'default' (repeatable); FOLDER@seed=N scores the panel's Seed N, "
                             "FOLDER@lines=S the result with the sketch's lines multiplied over it")
    parser.add_argument("--data", type=Path, default=Path("~/s2a-runs/data/faces128").expanduser(),
                        help="prepared dataset whose training colour images are the real set")
    parser.add_argument("--count", type=int, default=64, help="novice faces (seeds 0..count-1)")
    parser.add_argument("--real", type=int, default=600, help="training colour images")
    parser.add_argument("--projection", type=float, default=0.5)
    parser.add_argument("--fid-size", type=int, default=128, help="side images are resized to for HED-VGG features")
    parser.add_argument("--centre", type=float, default=1.0,
                        help="score only the central FRACTION x FRACTION of every picture (1 = whole)")
    args = parser.parse_args(argv)
    if args.count < 2 or args.real < 2:
        raise SystemExit("--count and --real need at least 2 images each")
    if not 0.2 <= args.centre <= 1.0:
        raise SystemExit(f"--centre must lie in [0.2, 1], got {args.centre}")
    models = args.model or ["default"]
    extractor = make_feature_extractor("hed-vgg", hed_input_size=args.fid_size)
    scored = {model: model_results(model, args.count, args.projection) for model in models}
    results = {model: by_condition for model, (by_condition, _) in scored.items()}
    size = next(iter(next(iter(results.values())).values())).shape[-1]
    real_set = real_images(args.data, args.real, size)
    real = extractor(centre_crop(real_set, args.centre))
    region = "" if args.centre == 1.0 else f"; central {args.centre:g} × {args.centre:g} of every picture"
    print(f"{args.count} novice faces, t = {args.projection}; real: {len(real)} training colour images of {args.data}; "
          f"HED-VGG features at {args.fid_size} px{region}\n")
    print("| model | condition | KID×10³ ↓ | FID ↓ | magenta/green split ↓ | ΔE00 hair hint ↓ | ΔE00 background hints ↓ |")
    print("|---|---|---|---|---|---|---|")
    print(f"| (the real images) | – | – | – | {float(colour_split(real_set).mean()):.3f} | – | – |")
    features = {model: {name: extractor(centre_crop(images, args.centre)) for name, images in by_condition.items()}
                for model, by_condition in results.items()}
    for model, by_condition in results.items():
        for name, images in by_condition.items():
            scores = fid_kid(real, features[model][name], rng=0)
            adherence = scored[model][1] if name == CONDITIONS[1] else {}
            # None: no hinted cell of that kind (a 64 px model's 16 px hint grid loses the small dabs)
            hair, background = (f"{adherence[k]:.1f}" if adherence.get(k) is not None else "–"
                                for k in ("hair", "background"))
            print(f"| {model} | {name} | {1000 * scores['kid_mean']:.1f} | {scores['fid']:.1f} | "
                  f"{float(colour_split(images).mean()):.3f} | {hair} | {background} |")
    if len(models) > 1:
        print(kid_difference_table(real, features))
    return 0


def kid_difference_table(real: np.ndarray, features: dict[str, dict[str, np.ndarray]]) -> str:
    """Markdown: each later model's KID minus the first model's, per condition, with a 90% paired
    bootstrap interval over the drawings (``evaluation.fid.paired_kid_difference``)."""
    first, *others = features
    lines = [f"\nKID×10³ minus {first}'s, 90% paired bootstrap interval over the drawings (1,000 draws):\n",
             "| model | condition | ΔKID×10³ | 90% interval |", "|---|---|---|---|"]
    for model in others:
        for name in features[model]:
            delta = paired_kid_difference(real, features[first][name], features[model][name], draws=1000, rng=0)
            lines.append(f"| {model} | {name} | {1000 * delta['difference']:+.1f} | "
                         f"[{1000 * delta['low']:+.1f}, {1000 * delta['high']:+.1f}] |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
