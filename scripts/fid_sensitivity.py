"""What does the evaluation's HED-VGG FID respond to? Known degradations of the true images.

    python scripts/fid_sensitivity.py [--data ~/s2a-runs/data/faces128] [--size 128]
                                      [--model default ...] [--limit N] [--band-sigma 3]

The evaluation's FID compares a model's pictures with the validation images in the feature space of
the HED edge detector's VGG16 body (``evaluation/fid.py``). That network was trained to find edges,
so its statistics need not weigh what a viewer weighs. This script reads the scale: it scores, on
the evaluation's own inputs (clean sketches, sparse hints), the true validation images after simple
changes whose visual size everyone can judge — a 1 px shift, Gaussian blurs, a bilinear round trip
through 64 px, desaturation, the sketch's lines multiplied over the picture, another image's
picture — and then every ``--model`` and its own pictures after a sharpening. With ``--band-sigma S``
it also swaps bands: the first model's fine detail (finer than a Gaussian of std S px) laid on
another model's or the true images' coarse layout, and the reverse, which tells whether a gap
between two models lives in their detail or in their layout. Each row gives FID
and KID over all features and FID per HED layer (relu1_2 … relu5_3; the shallow layers carry edge
and colour detail, the deep ones larger shapes).

A row near the top ("another face") tells how much FID ignores which face is drawn; the blur and
desaturation rows tell whether sharpness or colour moves the number.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketch2anime.evaluation.eval_model import resize_images
from sketch2anime.evaluation.fid import HED_VGG_LAYERS, fid_kid, frechet_distance, feature_statistics, make_feature_extractor
from sketch2anime.evaluation.models_under_test import lay_lines
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.inference import Sketch2AnimePipeline

Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) -> same shape, separable Gaussian of std ``sigma`` px, reflect padding."""
    radius = max(1, int(round(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-taps ** 2 / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"),
                   kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"),
                    kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def desaturate(images: torch.Tensor, amount: float) -> torch.Tensor:
    """Move each pixel ``amount`` of the way to its grey (channel mean)."""
    return images * (1 - amount) + amount * images.mean(1, keepdim=True)


def times_lines(images: torch.Tensor, sketch: torch.Tensor) -> torch.Tensor:
    """The sketch's ink (B, 1, H, W in [-1, 1], paper +1) multiplied over pictures in [-1, 1] at full
    strength: the evaluation's ``@lines=1`` (``generate --lines 1``)."""
    return lay_lines(images, sketch, 1.0)


def round_trip(images: torch.Tensor, side: int) -> torch.Tensor:
    """Down to ``side`` px (antialiased) and back up bilinearly: detail above that scale is lost."""
    size = images.shape[-1]
    small = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)


def unsharp(images: torch.Tensor, amount: float, sigma: float = 1.0) -> torch.Tensor:
    return images + amount * (images - gaussian_blur(images, sigma))


def check_band_sigma(sigma: float, side: int) -> None:
    """The blur reflects at the border, so its reach (3 sigma) must stay inside the picture."""
    if not 0 < sigma or round(3 * sigma) >= side:
        raise ValueError(f"--band-sigma {sigma:g} does not fit {side} px pictures: give a sigma above 0 and under "
                         f"{side / 3:.1f}")


def swap_bands(detail: torch.Tensor, layout: torch.Tensor, sigma: float) -> torch.Tensor:
    """``detail``'s fine part (itself minus its Gaussian blur of std ``sigma`` px) laid on ``layout``'s
    coarse part (its blur): which band of a picture a FID difference lives in. Same shapes (B, 3, H, W)."""
    if detail.shape != layout.shape:
        raise ValueError(f"band swap needs pictures of one shape, got {tuple(detail.shape)} and {tuple(layout.shape)}")
    check_band_sigma(sigma, detail.shape[-1])
    return detail - gaussian_blur(detail, sigma) + gaussian_blur(layout, sigma)


TARGET_CHANGES: tuple[tuple[str, Transform], ...] = (
    ("true images, shifted 1 px", lambda t, s: torch.roll(t, 1, dims=-1)),
    ("another validation image (order rotated)", lambda t, s: torch.roll(t, 1, dims=0)),
    ("desaturated 30%", lambda t, s: desaturate(t, 0.3)),
    ("Gaussian blur 0.7 px", lambda t, s: gaussian_blur(t, 0.7)),
    ("Gaussian blur 1.0 px", lambda t, s: gaussian_blur(t, 1.0)),
    ("through 64 px and back", lambda t, s: round_trip(t, 64)),
    ("the sketch's lines multiplied over", times_lines),
)


def layer_widths(extractor) -> list[int]:
    """Feature columns per HED layer, in HED_VGG_LAYERS order (probed, not assumed)."""
    widths = []
    with torch.inference_mode():
        for activation in extractor.model.features(torch.zeros(1, 3, 32, 32), layers=HED_VGG_LAYERS):
            widths.append(int(activation.shape[1]))
    if sum(widths) != extractor.feature_dim:
        raise ValueError(f"HED layer widths {widths} do not add up to the extractor's {extractor.feature_dim} features")
    return widths


def score_row(name: str, real: np.ndarray, fake: np.ndarray, widths: list[int], seed: int) -> dict:
    """FID and KID over all features, and FID on each layer's block of columns."""
    whole = fid_kid(real, fake, rng=seed, fid_method="eigh")
    row = {"name": name, "fid": whole["fid"], "kid_x1e3": 1000 * whole["kid_mean"]}
    start = 0
    for layer, width in zip(HED_VGG_LAYERS, widths):
        block = slice(start, start + width)
        mu_r, sigma_r = feature_statistics(real[:, block])
        mu_f, sigma_f = feature_statistics(fake[:, block])
        row[layer] = frechet_distance(mu_r, sigma_r, mu_f, sigma_f, method="eigh")
        start += width
    return row


def model_pictures(source: str, sketch: torch.Tensor, hint: torch.Tensor, size: int, batch: int = 32) -> torch.Tensor:
    """(N, 3, size, size): the pipeline's pictures at t = 0 (ignored by types without projection) for the protocol's inputs, resized to the dataset's size."""
    pipe = Sketch2AnimePipeline.from_pretrained(source, device="cpu")
    if pipe.image_size != sketch.shape[-1] or pipe.hint_size != hint.shape[-1]:
        raise ValueError(f"{source} draws {pipe.image_size} px with {pipe.hint_size} px hints; this script feeds the "
                         f"dataset's {sketch.shape[-1]} px sketches and {hint.shape[-1]} px hints unchanged - use a "
                         f"dataset prepared at the model's size")
    out = []
    with torch.inference_mode():
        for start in range(0, sketch.shape[0], batch):
            part = slice(start, start + batch)
            image = pipe.generate_tensors(sketch[part], hint[part], projection=0.0)["image"].float().cpu()
            out.append(resize_images(image, size))
    return torch.cat(out)


def band_rows(pictures: dict[str, torch.Tensor], target: torch.Tensor, sigma: float) -> list[tuple[str, torch.Tensor]]:
    """Band swaps of the first model with each other one, both ways, and with the true images' coarse
    band: ``(name, pictures)`` rows in [-1, 1]."""
    names = list(pictures)
    first = names[0]
    rows = [(f"{first}'s detail on the true images' layout (σ {sigma:g} px)",
             swap_bands(pictures[first], target, sigma))]
    for other in names[1:]:
        rows.append((f"{first}'s detail on {other}'s layout (σ {sigma:g} px)",
                     swap_bands(pictures[first], pictures[other], sigma)))
        rows.append((f"{other}'s detail on {first}'s layout (σ {sigma:g} px)",
                     swap_bands(pictures[other], pictures[first], sigma)))
    return [(name, images.clamp(-1, 1)) for name, images in rows]


def sensitivity_rows(data: Path, models: list[str], size: int, limit: int | None, seed: int,
                     extractor=None, log=print, band_sigmas: tuple[float, ...] = ()) -> list[dict]:
    protocol = EvaluationProtocol(data, ProtocolConfig(hint_levels=("sparse",), roughness=("none",), limit=limit))
    indices = list(range(len(protocol)))
    target = protocol.target_tensor(indices)
    for sigma in band_sigmas:
        check_band_sigma(sigma, target.shape[-1])  # before the long part
    sketch = protocol.sketch_tensor("none", indices)
    hint = protocol.hint_tensor("sparse", indices)
    extractor = extractor or make_feature_extractor("hed-vgg", hed_input_size=size)
    widths = layer_widths(extractor)
    real = extractor(target)
    log(f"fid_sensitivity: {len(indices)} validation images of {data}, HED-VGG features at {size} px")
    rows = [score_row(name, real, extractor(change(target, sketch).clamp(-1, 1)), widths, seed)
            for name, change in TARGET_CHANGES]
    kept = {}
    for source in models:
        pictures = model_pictures(source, sketch, hint, target.shape[-1])
        rows.append(score_row(f"model {source}, t = 0", real, extractor(pictures), widths, seed))
        rows.append(score_row(f"model {source}, unsharp mask 0.5", real,
                              extractor(unsharp(pictures, 0.5).clamp(-1, 1)), widths, seed))
        if band_sigmas:
            kept[source] = pictures
    for sigma in band_sigmas:
        rows += [score_row(name, real, extractor(images), widths, seed) for name, images in band_rows(kept, target, sigma)]
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| pictures | FID | KID×10³ | " + " | ".join(f"FID {layer}" for layer in HED_VGG_LAYERS) + " |"
    lines = [head, "|" + "---|" * (3 + len(HED_VGG_LAYERS))]
    for row in rows:
        cells = [f"{row['fid']:.1f}", f"{row['kid_x1e3']:.0f}"] + [f"{row[layer]:.2f}" for layer in HED_VGG_LAYERS]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path.home() / "s2a-runs" / "data" / "faces128")
    parser.add_argument("--model", action="append", default=[], help="a model folder or 'default' (repeatable)")
    parser.add_argument("--size", type=int, default=128, help="side the HED-VGG features see (the evaluation's --fid-size)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N validation images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--band-sigma", type=float, action="append", default=[],
                        help="also swap fine and coarse bands (Gaussian std in px) between the first --model, the "
                             "others and the true images (repeatable)")
    args = parser.parse_args(argv)
    if args.band_sigma and (not args.model or min(args.band_sigma) <= 0):
        parser.error("--band-sigma needs at least one --model and a sigma above 0")
    try:
        rows = sensitivity_rows(args.data, args.model, args.size, args.limit, args.seed,
                                log=lambda m: print(m, file=sys.stderr), band_sigmas=tuple(args.band_sigma))
    except ValueError as error:
        print(f"fid_sensitivity: {error}", file=sys.stderr)
        return 2
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
