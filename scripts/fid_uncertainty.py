"""How far can the evaluation's FID be trusted on 150 validation pictures? Its noise, measured.

    python scripts/fid_uncertainty.py --model default --model OTHER [--model ...]
                                      [--data ~/s2a-runs/data/faces128] [--size 128]
                                      [--seeds 0,1,2] [--real-draws 10] [--draws 1000]

The validation split holds 150 faces; FID's covariances then rest on fewer samples than the 1472
HED-VGG features, so small gaps between models (the default's 46.4 against Pix2Pix's 43.3) need a
scale. Three of them, all on the evaluation's own inputs (clean sketches, sparse hints, t = 0):

* **the real-picture floor**: FID between the validation faces and disjoint samples of as many
  *training* faces. Two samples of the same real distribution score this much (never 0), so it is
  where an unconditional model that drew perfect faces would sit;
* **reseeded inputs**: each model's FID when the evaluation's random hints and rough sketches come
  from another protocol seed (``ProtocolConfig.seed``); the spread is the part of a gap that a
  different draw of the same evaluation could undo;
* **paired bootstrap**: the validation faces resampled with replacement (each model's picture of a
  face stays paired with that face), giving a 90% interval for each model's FID minus the first
  ``--model``'s (``evaluation.fid.paired_fid_difference``, which ``sketch2anime evaluate`` reports too).

One line per row; the difference column answers "is this model really better than the first".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from sketch2anime.data.image_io import load_rgb, resize_square, rgb_to_tensor
from sketch2anime.evaluation.fid import frechet_distance_of_samples, make_feature_extractor, paired_fid_difference
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fid_sensitivity import model_pictures  # noqa: E402  (the scripts are not a package)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs at least one seed and no repeats, got {text!r}")
    return seeds


def real_floor(real: np.ndarray, training: np.ndarray, draws: int, rng: np.random.Generator) -> list[float]:
    """FID of ``real`` (N, D) against up to ``draws`` disjoint samples of N rows of ``training``."""
    n = real.shape[0]
    available = training.shape[0] // n
    if available < 1:
        raise ValueError(f"the training split has {training.shape[0]} pictures, fewer than the {n} validation ones")
    order = rng.permutation(training.shape[0])
    return [frechet_distance_of_samples(real, training[order[i * n:(i + 1) * n]])
            for i in range(min(draws, available))]


def training_features(protocol: EvaluationProtocol, extractor, size: int, batch: int = 64) -> np.ndarray:
    """Features (M, D) of the training split's colour pictures at ``size`` px, as the validation ones."""
    paths = protocol.training_color_paths()
    chunks = []
    for start in range(0, len(paths), batch):
        pictures = [rgb_to_tensor(resize_square(load_rgb(path), size)) for path in paths[start:start + batch]]
        chunks.append(extractor(torch.stack(pictures)))
    return np.concatenate(chunks)


def uncertainty_report(data: Path, models: list[str], size: int, seeds: list[int], real_draws: int,
                       draws: int, seed: int, limit: int | None = None, extractor=None, log=print) -> str:
    if not models:
        raise ValueError("name at least one --model")
    extractor = extractor or make_feature_extractor("hed-vgg", hed_input_size=size)
    rng = np.random.default_rng(seed)
    features: dict[int, list[np.ndarray]] = {}
    real = None
    for protocol_seed in seeds:
        protocol = EvaluationProtocol(data, ProtocolConfig(seed=protocol_seed, hint_levels=("sparse",),
                                                           roughness=("none",), limit=limit))
        indices = list(range(len(protocol)))
        target = protocol.target_tensor(indices)
        if real is None:
            real = extractor(target)
            floor = real_floor(real, training_features(protocol, extractor, target.shape[-1]), real_draws, rng)
        sketch, hint = protocol.sketch_tensor("none", indices), protocol.hint_tensor("sparse", indices)
        features[protocol_seed] = [extractor(model_pictures(m, sketch, hint, target.shape[-1])) for m in models]
        log(f"fid_uncertainty: protocol seed {protocol_seed} done ({len(indices)} validation pictures)")
    n = real.shape[0]
    lines = [f"HED-VGG FID at {size} px, {n} validation pictures of {data}; clean sketches, sparse hints, t = 0.",
             "",
             f"Real-picture floor: the validation pictures against {len(floor)} disjoint samples of {n} training "
             f"pictures: FID {np.mean(floor):.1f} (min {min(floor):.1f}, max {max(floor):.1f}).",
             "",
             f"| model | FID (protocol seed {seeds[0]}) | FID over protocol seeds {', '.join(map(str, seeds))} | "
             f"minus {models[0]}, 90% interval | draws below {models[0]} |",
             "|---|---|---|---|---|"]
    first = features[seeds[0]][0]
    for i, name in enumerate(models):
        point = frechet_distance_of_samples(real, features[seeds[0]][i])
        reseeded = [frechet_distance_of_samples(real, features[s][i]) for s in seeds]
        if i == 0:
            difference, share = "–", "–"
        else:
            # the same seed for every model: each is resampled on the same rows
            gap = paired_fid_difference(real, first, features[seeds[0]][i], draws=draws, rng=seed)
            difference = f"{gap['difference']:+.1f} [{gap['low']:+.1f}, {gap['high']:+.1f}]"
            share = f"{100 * gap['share_below']:.0f}%"
        lines.append(f"| {name} | {point:.1f} | {min(reseeded):.1f} – {max(reseeded):.1f} | {difference} | {share} |")
    lines.append(f"\n({draws} bootstrap draws, seed {seed}.)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path.home() / "s2a-runs" / "data" / "faces128")
    parser.add_argument("--model", action="append", default=[], help="a model folder or 'default' (repeatable; "
                        "the first is the one the others are compared with)")
    parser.add_argument("--size", type=int, default=128, help="side the HED-VGG features see (the evaluation's --fid-size)")
    parser.add_argument("--seeds", default="0,1,2", help="protocol seeds (hints, rough sketches); the first is scored "
                        "as the evaluation scores it")
    parser.add_argument("--real-draws", type=int, default=10, help="disjoint training samples for the real floor")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N validation images")
    args = parser.parse_args(argv)
    try:
        report = uncertainty_report(args.data, args.model, args.size, parse_seeds(args.seeds), args.real_draws,
                                    args.draws, args.seed, args.limit, log=lambda m: print(m, file=sys.stderr))
    except ValueError as exc:
        print(f"fid_uncertainty: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
