"""A pipeline folder with random weights and the architecture of the real configs.

Until a trained model exists, latency can still be measured: it depends on the network shapes and
the bank size, not on the weights. The folder has exactly the layout ``sketch2anime train``
exports, so ``Sketch2AnimePipeline.from_pretrained`` loads it through the public path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sketch2anime.checkpoint import read_json
from sketch2anime.models.autoencoder import SketchAutoencoder
from sketch2anime.models.generator import HintGenerator
from sketch2anime.models.projection import LatentBank
from sketch2anime.pipeline_format import BANK_STEM, PipelineDescription, write_pipeline_folder
from sketch2anime.training.config import load_experiment
from sketch2anime.training.generator_stage import resolve_autoencoder_dir

from .synthetic import ClusteredGaussian


def build_random_pipeline(folder: Path, generator_config: Path, autoencoder_config: Path, bank_size: int,
                          seed: int = 0, autoencoder_dir: str | None = None) -> tuple[Path, str]:
    """Write a ``sketch2anime`` pipeline into ``folder``; returns ``(folder, label for the table)``.

    The generator is random with ``generator_config``'s [generator] section. The autoencoder and
    bank come from a finished stage-1 run when ``autoencoder_dir`` is given, else the autoencoder
    is random with ``autoencoder_config``'s [autoencoder] section and the bank is ``bank_size``
    synthetic clustered latents.
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    experiment = load_experiment(generator_config)
    if experiment.generator is None:
        raise ValueError(f"{generator_config} has no [generator] section")
    size = experiment.experiment.image_size
    models: dict[str, Any] = {"generator": HintGenerator(experiment.generator)}

    if autoencoder_dir:
        source = resolve_autoencoder_dir(autoencoder_dir)
        models["autoencoder"] = source / "autoencoder"
        bank: LatentBank | Path = source / BANK_STEM
        bank_count = read_json(source / f"{BANK_STEM}.json")["count"]
        label = (f"random generator ({Path(generator_config).name} architecture) + trained autoencoder "
                 f"and bank ({bank_count} latents) from {autoencoder_dir}")
    else:
        ae_config = load_experiment(autoencoder_config).autoencoder
        if ae_config is None:
            raise ValueError(f"{autoencoder_config} has no [autoencoder] section")
        models["autoencoder"] = SketchAutoencoder(ae_config)
        latents = ClusteredGaussian(ae_config.latent_dim, seed=seed).sample(bank_size, seed=seed + 1)
        bank = LatentBank(latents, [f"synthetic{i}" for i in range(bank_size)])
        label = (f"random weights, {Path(generator_config).stem} architecture "
                 f"(synthetic bank of {bank_size} latents)")
    description = PipelineDescription("sketch2anime", size, experiment.generator.hint_downscale,
                                      latent_dim=experiment.generator.latent_dim,
                                      projection_k=experiment.train.projection_k,
                                      training={"benchmark": "random weights"})
    write_pipeline_folder(folder, description, models, bank=bank)
    return folder, label
