"""Per-type loading and running of a pipeline folder: the registries ``PIPELINE_LOADERS`` (folder ->
modules) and ``GENERATOR_RUNNERS`` (sketch, hint -> image), the runner wrappers (the flip average,
the timing probe), and the check that a folder's parts agree.

Adding a pipeline type (e.g. a baseline): register a loader and a runner here. ``inference.py``
re-exports these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from .checkpoint import CheckpointError, load_model
from .pipeline_format import BANK_STEM, PALETTE_STEM, PipelineDescription, has_parts, read_parts_folder

if TYPE_CHECKING:
    from .inference import Sketch2AnimePipeline


def _load_sketch2anime(folder: Path, description: PipelineDescription) -> dict[str, Any]:
    from .models.projection import LatentBank

    return {
        "autoencoder": load_model(folder / "autoencoder", expected_type="sketch_autoencoder"),
        "generator": load_model(folder / "generator", expected_type="hint_generator"),
        "bank": LatentBank.load(folder / BANK_STEM),
    }


def _load_guided(folder: Path, description: PipelineDescription) -> dict[str, Any]:
    from .models.projection import LatentBank

    return {
        "autoencoder": load_model(folder / "autoencoder", expected_type="sketch_autoencoder"),
        "generator": load_model(folder / "generator", expected_type="guided_unet"),
        "bank": LatentBank.load(folder / BANK_STEM),
        "palettes": _load_palettes(folder),
        **_load_parts(folder),
    }


def _load_parts(folder: Path) -> dict[str, Any]:
    """``{"parts": PartGuide, "part_banks": {box: bank}}`` when the folder has a per-part guide, else {}."""
    from .models.part_guide import PartGuide

    if not has_parts(folder):
        return {}
    layout, autoencoder, banks = read_parts_folder(folder)
    return {"parts": PartGuide(layout, autoencoder), "part_banks": banks}


def _load_palettes(folder: Path) -> Any:
    from .data.palettes import PaletteBank

    return PaletteBank.load(folder / PALETTE_STEM) if (folder / f"{PALETTE_STEM}.json").is_file() else None


def _load_generator_only(folder: Path, description: PipelineDescription) -> dict[str, Any]:
    return {"generator": load_model(folder / "generator")}


def _load_autoencoder_only(folder: Path, description: PipelineDescription) -> dict[str, Any]:
    raise ValueError(f"{folder} holds only a stage-1 sketch autoencoder, which cannot colour sketches; "
                     "train the generator on it (stage 'generator', e.g. configs/s2a64.toml) and use that run's model/")


def _run_latent_generator(pipe: "Sketch2AnimePipeline", sketch: torch.Tensor, hint: torch.Tensor,
                          z: torch.Tensor | None, decoded: torch.Tensor | None) -> torch.Tensor:
    generator = pipe.generator
    return generator(z, hint, decoded if generator.config.use_decoded_sketch else None)


def _run_guided_generator(pipe: "Sketch2AnimePipeline", sketch: torch.Tensor, hint: torch.Tensor,
                          z: torch.Tensor | None, decoded: torch.Tensor | None) -> torch.Tensor:
    generator = pipe.generator
    return generator(sketch, decoded, hint, z if generator.config.latent_dim > 0 else None)


def _run_sketch_generator(pipe: "Sketch2AnimePipeline", sketch: torch.Tensor, hint: torch.Tensor,
                          z: torch.Tensor | None, decoded: torch.Tensor | None) -> torch.Tensor:
    return pipe.generator(sketch, hint)


PIPELINE_LOADERS: dict[str, Callable[[Path, PipelineDescription], dict[str, Any]]] = {
    "sketch2anime": _load_sketch2anime,
    "guided": _load_guided,
    "simple_gan": _load_generator_only,
    "autoencoder": _load_autoencoder_only,
    "pix2pix": _load_generator_only,
    "cyclegan": _load_generator_only,
}
GENERATOR_RUNNERS: dict[str, Callable[..., torch.Tensor]] = {
    "sketch2anime": _run_latent_generator,
    "guided": _run_guided_generator,
    "simple_gan": _run_sketch_generator,
    "pix2pix": _run_sketch_generator,
    "cyclegan": _run_sketch_generator,
}


def _check_parts_agree(folder: Path | None, description: PipelineDescription, generator: Any, autoencoder: Any,
                       bank: Any) -> None:
    """pipeline.json, the modules' configs and the bank must tell the same sizes: a folder whose parts
    disagree would skip every sketch or fail in the middle of a forward pass."""
    gen = getattr(generator, "config", None)
    if getattr(gen, "image_size", description.image_size) != description.image_size:
        raise CheckpointError(f"{folder}: generator is for {gen.image_size}px, "
                              f"pipeline.json says {description.image_size}px")
    if getattr(gen, "hint_downscale", description.hint_downscale) != description.hint_downscale:
        raise CheckpointError(f"{folder}: generator/config.json has hint_downscale {gen.hint_downscale}, "
                              f"pipeline.json says {description.hint_downscale}")
    if autoencoder is None:
        return
    latent = autoencoder.config.latent_dim
    if description.latent_dim is not None and description.latent_dim != latent:
        raise CheckpointError(f"{folder}: pipeline.json has latent_dim {description.latent_dim}, "
                              f"autoencoder/config.json says {latent}")
    # A generator fed by latents must take the autoencoder's (0: guided without a latent input).
    uses_latent = getattr(gen, "conditioning", "latent") == "latent" and getattr(gen, "latent_dim", 0) > 0
    if uses_latent and gen.latent_dim != latent:
        raise CheckpointError(f"{folder}: generator/config.json has latent_dim {gen.latent_dim}, "
                              f"autoencoder/config.json says {latent}")
    if bank is not None and bank.dim != latent:
        raise CheckpointError(f"{folder}: the latent bank holds {bank.dim}-dim latents, "
                              f"autoencoder/config.json says {latent}")


def flip_averaged(runner: Any, pipe: "Sketch2AnimePipeline", sketch: torch.Tensor, hint: torch.Tensor,
                  z: torch.Tensor | None, decoded: torch.Tensor | None) -> torch.Tensor:
    """The mean of the runner's picture and the mirror image of its picture of the mirrored sketch,
    hints and guide (one batch of 2N; the latent is kept: the generator saw flipped drawings with
    their own latents in training; recomputing it for the mirrored sketch scored within 0.002 SSIM on
    the validation faces): ``(N, 3, S, S)``.
    Where the generator hedges (speckle, blotches of another hue) the two pictures disagree and the
    mean settles it; what the drawing fixes, both agree on."""
    n = sketch.shape[0]
    both = runner(pipe, torch.cat([sketch, sketch.flip(-1)]), torch.cat([hint, hint.flip(-1)]),
                  None if z is None else torch.cat([z, z]),
                  None if decoded is None else torch.cat([decoded, decoded.flip(-1)])).float()
    return (both[:n] + both[n:].flip(-1)) / 2


def probe_call(pipe: "Sketch2AnimePipeline") -> Callable[[], torch.Tensor]:
    """One generator pass of ``pipe`` on a blank 1-sample input, for timing (``set_precision("auto")``)."""
    s = pipe.image_size
    sketch = torch.ones(1, 1, s, s, device=pipe.device)
    hint = torch.zeros(1, 4, pipe.hint_size, pipe.hint_size, device=pipe.device)
    z = torch.zeros(1, pipe.autoencoder.config.latent_dim, device=pipe.device) \
        if pipe.autoencoder is not None else None
    runner = GENERATOR_RUNNERS[pipe.pipeline_type]
    return lambda: runner(pipe, sketch, hint, z, sketch if z is not None else None)
