"""Which bilateral clean-up (models/denoise.py) suits a model? FID, KID and SSIM per setting.

    python scripts/denoise_sweep.py [--model default] [--data ~/s2a-runs/data/faces128]
                                    [--on train] [--count 150] [--setting 7,10,3 ...]

The model draws the evaluation's inputs once (clean sketches, sparse hints, t = 0, the seeded
protocol of ``sketch2anime evaluate``); each ``--setting DIAMETER,SIGMA_COLOUR,SIGMA_SPACE`` is
then applied to those pictures and scored against the true images: FID and KID on HED-VGG16
features at the pictures' size (``evaluation/fid.py``), SSIM, and the filter's time per picture.
The first row is the model without clean-up.

``--on train`` (the default) scores ``--count`` *training* faces (every k-th by id) as if they
were held out, through a scratch copy of the dataset's manifest whose validation split is those
faces (the true validation images are left out of it entirely), so that a setting is chosen
without looking at the validation images the README reports. ``--on val`` scores the validation
split itself. The model has seen the training faces, so read the rows against each other, not
against the evaluation's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from sketch2anime.evaluation.fid import fid_kid, make_feature_extractor
from sketch2anime.evaluation.protocol import VAL_SPLIT, EvaluationProtocol, ProtocolConfig
from sketch2anime.evaluation.ssim import ssim
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.denoise import DenoiseConfig, bilateral_denoise

DEFAULT_SETTINGS = ((7, 5.0, 3.0), (7, 7.0, 3.0), (7, 10.0, 3.0), (7, 15.0, 3.0), (9, 10.0, 4.0), (5, 10.0, 2.0))
MANIFEST = "manifest.jsonl"


def training_faces_as_validation(data: Path, count: int, out: Path) -> list[str]:
    """A dataset at ``out`` (links to ``data``'s folders, a copy of its files) whose validation split
    is ``count`` of ``data``'s training images, every k-th by id; ``data``'s own validation images
    become training images there, so no protocol over ``out`` scores them. Returns the chosen ids."""
    records = [json.loads(line) for line in (data / MANIFEST).read_text().splitlines() if line.strip()]
    training = sorted((r for r in records if r["split"] != VAL_SPLIT), key=lambda r: r["id"])
    if not 2 <= count <= len(training):
        raise ValueError(f"--count must be between 2 and the {len(training)} training images of {data}, got {count}")
    chosen = {r["id"] for r in training[::len(training) // count][:count]}
    out.mkdir(parents=True, exist_ok=True)
    for entry in data.iterdir():
        if entry.name == MANIFEST:
            continue
        target = out / entry.name
        if entry.is_dir():
            os.symlink(entry.resolve(), target)
        else:
            target.write_bytes(entry.read_bytes())
    lines = []
    for record in records:
        record = dict(record, split=VAL_SPLIT if record["id"] in chosen else "train")
        lines.append(json.dumps(record) + "\n")
    (out / MANIFEST).write_text("".join(lines))
    return sorted(chosen)


def sweep_rows(pipe: Sketch2AnimePipeline, protocol: EvaluationProtocol, settings: list[DenoiseConfig],
               extractor, seed: int = 0) -> list[dict]:
    """One row per setting (the first: none): name, fid, kid_x1e3, ssim, ms (filter time per picture)."""
    indices = list(range(len(protocol)))
    target = protocol.target_tensor(indices)
    sketch, hint = protocol.sketch_tensor("none", indices), protocol.hint_tensor("sparse", indices)
    # the raw pictures, whatever the folder ships with
    pictures = pipe.generate_tensors(sketch, hint, projection=0.0, denoise=False)["image"]
    if pictures.shape[-1] != target.shape[-1]:
        raise ValueError(f"the model draws {pictures.shape[-1]} px, the dataset holds {target.shape[-1]} px images")
    real = extractor(target)
    rows = []
    for setting in [None, *settings]:
        start = time.perf_counter()
        cleaned = pictures if setting is None else bilateral_denoise(pictures, setting)
        ms = (time.perf_counter() - start) * 1000.0 / len(pictures)
        scores = fid_kid(real, extractor(cleaned), rng=seed, fid_method="eigh")
        name = "none" if setting is None else f"{setting.diameter}, {setting.sigma_colour:g}, {setting.sigma_space:g}"
        rows.append({"name": name, "fid": float(scores["fid"]), "kid_x1e3": float(scores["kid_mean"]) * 1e3,
                     "ssim": float(ssim(cleaned, target).mean()), "ms": ms})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| clean-up (diameter, colour sigma, space sigma) | FID ↓ | KID×10³ ↓ | SSIM ↑ | ms per picture |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['fid']:.1f} | {r['kid_x1e3']:.0f} | {r['ssim']:.4f} | {r['ms']:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", type=Path, default=Path.home() / "s2a-runs" / "data" / "faces128")
    parser.add_argument("--on", choices=("train", "val"), default="train")
    parser.add_argument("--count", type=int, default=150, help="training faces scored with --on train")
    parser.add_argument("--setting", action="append", default=None, metavar="D,SC,SS",
                        help="a clean-up to score (repeatable; default: a small grid around 7,10,3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        settings = ([DenoiseConfig.from_text(s) for s in args.setting] if args.setting
                    else [DenoiseConfig(*s) for s in DEFAULT_SETTINGS])
        pipe = Sketch2AnimePipeline.from_pretrained(args.model)
        with tempfile.TemporaryDirectory(prefix="s2a-denoise-") as scratch:
            data = args.data
            if args.on == "train":
                data = Path(scratch) / "data"
                training_faces_as_validation(args.data, args.count, data)
            protocol = EvaluationProtocol(data, ProtocolConfig(hint_levels=("sparse",), roughness=("none",)))
            extractor = make_feature_extractor("hed-vgg", hed_input_size=pipe.image_size)
            rows = sweep_rows(pipe, protocol, settings, extractor, args.seed)
    except (ValueError, OSError) as exc:
        print(f"denoise_sweep: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model} on {len(protocol)} {'training' if args.on == 'train' else 'validation'} faces of {args.data}")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
