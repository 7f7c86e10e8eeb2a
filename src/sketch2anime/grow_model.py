"""Grow a guided model's generator into a wider / deeper one that draws the same pictures.

    sketch2anime grow default --base-channels 24 --res-blocks 4 --out ~/s2a-runs/default-grown

The new folder holds the same autoencoder, part guide, latent bank and palettes, and a generator
grown by ``models.grow`` (Net2Net: copied channels, split weights, identity blocks), so it draws
what the source draws (to float rounding) until a fine-tune (``experiment.init_generator`` with the
same ``[guided_unet]`` sizes) uses the added capacity. Averaging that fine-tune with this folder
(``sketch2anime interpolate``) is then the same "soup" as with the source model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .checkpoint import CONFIG_FILE, load_model, read_json
from .interpolate import GENERATOR_DIR, check_new_folder, model_folder, write_with_generator
from .models.grow import grow_guided_unet
from .pipeline_format import PipelineDescription


def grow_pipeline(source: str | Path, out: str | Path, base_channels: int | None = None,
                  max_channels: int | None = None, res_blocks: int | None = None, seed: int = 0) -> Path:
    """Write ``out``: the model ``source`` with its generator grown to the given sizes (None keeps one)."""
    folder = model_folder(source)
    out = check_new_folder(out)
    description = PipelineDescription.read(folder)
    if description.pipeline_type != "guided":
        raise ValueError(f"{folder}: only guided models can grow, this one is {description.pipeline_type!r}")
    generator = load_model(folder / GENERATOR_DIR, expected_type="guided_unet")
    old = generator.config
    config = replace(old, base_channels=old.base_channels if base_channels is None else int(base_channels),
                     max_channels=old.max_channels if max_channels is None else int(max_channels),
                     res_blocks=old.res_blocks if res_blocks is None else int(res_blocks))
    if config == old:
        raise ValueError("nothing to grow: give a larger --base-channels, --max-channels or --res-blocks")
    grown = grow_guided_unet(generator, config, seed=seed)
    source_note = {"from": str(folder), "seed": int(seed),
                   "sizes": {"base_channels": [old.base_channels, config.base_channels],
                             "max_channels": [old.max_channels, config.max_channels],
                             "res_blocks": [old.res_blocks, config.res_blocks]}}
    training = {**description.training, "grown": source_note}
    meta = {**read_json(folder / GENERATOR_DIR / CONFIG_FILE).get("meta", {}), "grown": source_note}
    return write_with_generator(folder, description.replace(training=training), grown, meta, out)
