"""How much does a guided pipeline's generator use its guide? The projection slider's diagnosis.

    python scripts/guide_usage.py [MODEL] [--data ~/s2a-runs/data/faces128] [--limit 48]

The slider only acts through the guide (the decoded latent) and the latent's FiLM modulation. On
the first validation images with heavy-rough sketches and sparse hints (the evaluation's seeded
protocol), this runs the generator on the *rough* sketch with three latents:

* ``user``: the rough sketch's own latent (the slider at t = 0);
* ``projected``: that latent projected fully onto the training bank (t = 1);
* ``clean (oracle)``: the latent of the true clean sketch, which no user can give: the best any
  projection could do, so its SSIM gain over ``user`` bounds what the slider can add to robustness.

For each it prints SSIM against the true image, and how far the guide and the picture move from
the ``user`` row (mean absolute difference, 0-255). A guide that moves a lot while the picture
barely moves means the generator has learnt to ignore the guide.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.evaluation.ssim import ssim
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.guide import encode_sketch
from sketch2anime.models.projection import project


def guide_usage(pipe: Sketch2AnimePipeline, data: Path, limit: int, roughness: str = "heavy") -> list[dict]:
    """One row per latent source: name, ssim, guide_change, image_change (0-255 scale)."""
    if pipe.pipeline_type != "guided":
        raise ValueError(f"guide usage needs a guided pipeline, got pipeline_type {pipe.pipeline_type!r}")
    protocol = EvaluationProtocol(data, ProtocolConfig(hint_levels=("sparse",), roughness=(roughness,), limit=limit))
    indices = list(range(len(protocol)))
    rough = protocol.sketch_tensor(roughness, indices)
    clean = protocol.sketch_tensor("none", indices)
    hint, target = protocol.hint_tensor("sparse", indices), protocol.target_tensor(indices)
    ae = pipe.autoencoder
    rows, first = [], None
    with torch.inference_mode():
        user = encode_sketch(ae, rough)
        # (name, latent, sketch whose parts go into the guide, projection strength of those parts)
        latents = (("user (t = 0)", user, rough, 0.0),
                   ("projected (t = 1)", project(user, pipe.bank, k=pipe.projection_k, strength=1.0,
                                                 reg=pipe.projection_reg), rough, 1.0),
                   ("clean (oracle)", encode_sketch(ae, clean), clean, 0.0))
        for name, z, part_source, t in latents:
            guide = pipe.guide_image(z, part_source, t)
            z_in = z if pipe.generator.config.latent_dim > 0 else None
            image = pipe.generator(rough, guide, hint, z_in).float().clamp(-1, 1)
            if first is None:
                first = (guide, image)
            rows.append({"name": name, "ssim": float(ssim(image, target).mean()),
                         "guide_change": float((guide - first[0]).abs().mean()) * 127.5,
                         "image_change": float((image - first[1]).abs().mean()) * 127.5})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="default")
    parser.add_argument("--data", type=Path, default=Path("~/s2a-runs/data/faces128").expanduser())
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--roughness", default="heavy", choices=("light", "medium", "heavy"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    pipe = Sketch2AnimePipeline.from_pretrained(args.model, device="cpu")
    rows = guide_usage(pipe, args.data, args.limit, args.roughness)
    print(f"{args.model}: {args.limit} validation images, {args.roughness}-rough sketches, sparse hints\n")
    print("| latent given with the rough sketch | SSIM | guide change (/255) | picture change (/255) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['ssim']:.4f} | {row['guide_change']:.1f} | {row['image_change']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
