"""``Sketch2AnimePipeline.variations``: several candidate colourings of one sketch (see its docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from PIL import Image

from .data.image_io import ImageInput
from .geometry import translate
from .pipeline_inputs import (
    check_denoise,
    check_max_side,
    check_output_size,
    check_projection,
    check_seed,
    to_pictures,
)

if TYPE_CHECKING:
    from .inference import Sketch2AnimePipeline


def variations(pipe: "Sketch2AnimePipeline", sketch: ImageInput, hint: ImageInput | None, projection: float,
               count: int, seed: int, output_size: str, max_side: int | None,
               denoise: bool = True) -> list[Image.Image]:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
        raise ValueError(f"count must be an integer between 1 and 64, got {count!r}")
    projection = check_projection(projection)
    output_size = check_output_size(output_size)
    max_side = check_max_side(max_side)
    denoise = check_denoise(denoise)
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("variations need an integer seed, got None")
    sketch_tensor, hint_tensor, size = pipe.prepare(sketch, hint)
    sketch_tensor, hint_tensor = pipe._check_tensors(sketch_tensor, hint_tensor)
    rng = torch.Generator().manual_seed(seed)
    pictures = []
    with torch.inference_mode():
        z0, decoded0 = pipe._latents(sketch_tensor, projection)
        raw = None
        if count > 1 and pipe.uses_projection:  # at t = 0 the guide's latent is the sketch's own
            raw = z0.cpu() if projection == 0 else _raw_latent(pipe, sketch_tensor)
        for index in range(count):
            z, decoded, shifted = z0, decoded0, sketch_tensor
            shift = (0, 0)
            hint_i = hint_tensor
            if index > 0 and pipe.uses_projection:
                z = _varied_latent(pipe, raw, projection, rng)
                decoded = pipe.guide_image(z, sketch_tensor, projection)
                if pipe.palettes is not None:
                    hint_i = _borrowed_colours(pipe, hint_tensor, z, rng)
            elif index > 0:
                shift = tuple(int(v) for v in torch.randint(-3, 4, (2,), generator=rng))
                shifted = translate(sketch_tensor, shift, fill=1.0)
            image = pipe.run_generator(shifted, hint_i, z, decoded, denoise)
            image = translate(image, (-shift[0], -shift[1]), fill=None)
            pipe._check_output(image, decoded)
            result = {"image": image.float().clamp(-1, 1).cpu(), "projected_sketch": None}
            pictures.append(to_pictures(result, size, output_size, max_side)[0])
    return pictures


def _borrowed_colours(pipe: "Sketch2AnimePipeline", hint: torch.Tensor, z: torch.Tensor,
                      rng: torch.Generator) -> torch.Tensor:
    """``hint`` plus dabs of the colour scheme of one of the training images whose sketches are
    nearest to ``z`` (``data/palettes.py``), chosen by ``rng``; the user's hints stay as they are."""
    from .data.palettes import palette_hints

    _, indices = pipe.bank.knn(z.detach().float().cpu(), min(pipe.projection_k, len(pipe.bank)))
    image_ids = []
    for row in range(indices.shape[0]):
        pick = int(indices[row, int(torch.randint(indices.shape[1], (1,), generator=rng))])
        image_ids.append(pipe.bank.ids[pick].split("/", 1)[0])
    rows = pipe.palettes.rows_for(image_ids)
    if any(r is None for r in rows):
        return hint
    thumbnails = pipe.palettes.thumbnails[rows]
    return palette_hints(hint.cpu(), thumbnails, rng).to(hint.device)


def _raw_latent(pipe: "Sketch2AnimePipeline", sketch: torch.Tensor) -> torch.Tensor:
    """The sketch's own latent, unprojected: ``(N, D)`` on the CPU (encoded once for all candidates)."""
    from .models.guide import encode_sketch

    with pipe.autocast():
        return encode_sketch(pipe.autoencoder, sketch).cpu()


def _varied_latent(pipe: "Sketch2AnimePipeline", raw: torch.Tensor, projection: float,
                   rng: torch.Generator) -> torch.Tensor:
    """The sketch's latent ``raw`` (``_raw_latent``), perturbed by 0.1 x the bank's spread, projected
    (strength at least 0.35) onto a random k-subset of its 3k nearest bank latents: ``(N, D)`` on the device."""
    from .models.projection import project

    bank = pipe.bank
    spread = bank.latents.std(0) if len(bank) > 1 else torch.zeros(bank.dim)
    z = raw + 0.1 * spread * torch.randn(raw.shape, generator=rng)
    k = min(pipe.projection_k, len(bank))
    _, indices = bank.knn(z, 3 * k)
    chosen = [pool[torch.randperm(pool.numel(), generator=rng)[:k]] for pool in indices]
    out = project(z, bank, k=k, strength=max(projection, 0.35), reg=pipe.projection_reg, candidates=chosen)
    return out.to(pipe.device)
