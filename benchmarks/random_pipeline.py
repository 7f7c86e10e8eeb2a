"""A pipeline folder with random weights and the architecture of the real configs.

Until a trained model exists, latency can still be measured: it depends on the network shapes and
the bank size, not on the weights. The folder has exactly the layout ``sketch2anime train``
exports, so ``Sketch2AnimePipeline.from_pretrained`` loads it through the public path.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sketch2anime.checkpoint import atomic_write_text, copy_model_folder, save_model
from sketch2anime.inference import BANK_STEM, PIPELINE_FILE, pipeline_description
from sketch2anime.models.autoencoder import SketchAutoencoder
from sketch2anime.models.generator import HintGenerator
from sketch2anime.models.projection import LatentBank
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
    generator = HintGenerator(experiment.generator)
    save_model(generator, folder / "generator")

    if autoencoder_dir:
        source = resolve_autoencoder_dir(autoencoder_dir)
        copy_model_folder(source / "autoencoder", folder / "autoencoder")
        for suffix in (".safetensors", ".json"):
            (folder / f"{BANK_STEM}{suffix}").write_bytes((source / f"{BANK_STEM}{suffix}").read_bytes())
        bank_count = json.loads((source / f"{BANK_STEM}.json").read_text(encoding="utf-8"))["count"]
        label = (f"random generator ({Path(generator_config).name} architecture) + trained autoencoder "
                 f"and bank ({bank_count} latents) from {autoencoder_dir}")
    else:
        ae_config = load_experiment(autoencoder_config).autoencoder
        if ae_config is None:
            raise ValueError(f"{autoencoder_config} has no [autoencoder] section")
        save_model(SketchAutoencoder(ae_config), folder / "autoencoder")
        latents = ClusteredGaussian(ae_config.latent_dim, seed=seed).sample(bank_size, seed=seed + 1)
        LatentBank(latents, [f"synthetic{i}" for i in range(bank_size)]).save(folder / BANK_STEM)
        label = (f"random weights, {Path(generator_config).stem} architecture "
                 f"(synthetic bank of {bank_size} latents)")
    description = pipeline_description("sketch2anime", size, experiment.generator.hint_downscale,
                                       latent_dim=experiment.generator.latent_dim,
                                       projection_k=experiment.train.projection_k,
                                       training={"benchmark": "random weights"})
    atomic_write_text(folder / PIPELINE_FILE, json.dumps(description, indent=2, sort_keys=True))
    return folder, label
