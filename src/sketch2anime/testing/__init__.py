"""Tiny untrained pipeline folders for tests, benchmarks and examples, written as ``sketch2anime train`` exports.

``tiny_pipeline`` writes a few-thousand-parameter pipeline that loads and runs in milliseconds
(``benchmarks/random_pipeline.py`` writes the real architectures with the same writer)::

    folder = tiny_pipeline(tmp_path / "model")               # a "sketch2anime" pipeline, 64 px
    pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")

Beside it, shared by the tests and ``scripts/reliability.py``: ``images`` (small pictures and
encoded files drawn with PIL), ``bad_inputs`` (the named bad inputs and fuzzer seeds) and
``training_faults`` (SIGKILL/resume and full-disk campaigns on a tiny training run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..models.autoencoder import AutoencoderConfig, SketchAutoencoder
from ..models.generator import GeneratorConfig, HintGenerator
from ..models.projection import LatentBank
from ..pipeline_format import PipelineDescription, write_pipeline_folder

TINY_KINDS = ("sketch2anime", "simple_gan", "autoencoder")


def tiny_pipeline(folder: str | Path, kind: str = "sketch2anime", image_size: int = 64, latent_dim: int = 16,
                  channels: int = 8, bank_size: int = 24, projection_k: int = 10, decoded_sketch: bool = True,
                  encoded_bank: bool = False, seed: int = 0) -> Path:
    """A tiny untrained pipeline folder of ``kind`` ("sketch2anime", "simple_gan" or "autoencoder").

    ``channels``: the networks' widest layer. The bank holds ``bank_size`` latents, ids
    ``img<i>/detail``: standard normal, or with ``encoded_bank`` the autoencoder's latents of
    random binary sketches (the spread of real latents). ``decoded_sketch``: the generator also
    sees the decoder's sketch. The same arguments give the same folder; torch's global random
    state is left as it was.
    """
    if kind not in TINY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TINY_KINDS)}, got {kind!r}")
    latent = kind != "simple_gan"
    description = PipelineDescription(kind, image_size, 4, latent_dim=latent_dim if latent else None,
                                      projection_k=projection_k)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models: dict[str, Any] = {}
        bank = None
        if latent:
            ae = SketchAutoencoder(AutoencoderConfig(image_size=image_size, latent_dim=latent_dim, base_channels=4,
                                                     max_channels=channels))
            models["autoencoder"] = ae
            if encoded_bank:
                with torch.no_grad():
                    sketches = torch.rand(bank_size, 1, image_size, image_size).mul(2).sub(1).sign()
                    latents = ae.encode(sketches)
            else:
                latents = torch.randn(bank_size, latent_dim)
            bank = LatentBank(latents, [f"img{i}/detail" for i in range(bank_size)])
        if kind != "autoencoder":
            models["generator"] = HintGenerator(GeneratorConfig(
                image_size=image_size, latent_dim=latent_dim, base_channels=4, max_channels=channels, hint_channels=4,
                modulation_hidden=4, conditioning="latent" if latent else "sketch",
                use_decoded_sketch=decoded_sketch))
    return write_pipeline_folder(folder, description, models, bank=bank)
