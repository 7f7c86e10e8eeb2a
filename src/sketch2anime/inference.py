"""Inference: ``Sketch2AnimePipeline`` (sketch + optional RGBA hint -> colour picture).

Beside it: the folder format in ``pipeline_format.py``, the per-type loaders and runners in
``pipeline_types.py``, the argument checks and images in / pictures out in ``pipeline_inputs.py``, the
image geometry (any size <-> the model's square) in ``geometry.py``, device and threads in
``runtime.py`` (their names stay importable from here), the ``generate`` command in ``generate.py``.

A pipeline folder (written by ``sketch2anime train`` or ``save_pretrained``; the format lives in
``pipeline_format.py``) describes itself; no flags are needed::

    MODEL/pipeline.json     {"format_version": 1, "pipeline_type": "sketch2anime" | "simple_gan" | ...,
                             "image_size": 64, "hint_downscale": 4, "projection": {"k": 10, "reg": 0.001}, ...}
    MODEL/autoencoder/      (sketch2anime) the stage-1 sketch autoencoder
    MODEL/generator/        the hint generator
    MODEL/latent_bank.*     (sketch2anime) the training latents for projection

Typical use::

    pipe = Sketch2AnimePipeline.from_pretrained("runs/s2a64/model")
    picture = pipe("my_sketch.png", hint="my_hint.png", projection=0.5)   # PIL RGB, the sketch's size

``precision`` ("fp32", the default; "bf16"; "auto") is what the networks run in: bf16 autocast
measured 1.4x faster per update on an AMD EPYC with AVX-512 BF16, at a mean picture difference under
one 8-bit level (``benchmarks/inference_precision.py``); "auto" times this model's generator both ways at
load and keeps the faster (``runtime.fastest_inference_precision``). The projection always runs in
full precision, so the neighbours chosen do not depend on it.

Inputs of any size and aspect ratio are padded to a square on white, resized to the model size,
and the output is cropped back and resized to the input's size. ``projection`` (0 = follow my
lines, 1 = snap to the nearest training sketches) only applies to pipelines with an autoencoder;
others ignore it.

Adding a pipeline type (e.g. a baseline): register a loader in ``PIPELINE_LOADERS`` (loads its
modules from the folder) and a runner in ``GENERATOR_RUNNERS`` (sketch, hint -> image), both in
``pipeline_types.py``.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .checkpoint import CheckpointError
from .data.image_io import ImageInput
from .flatten import check_flatten, flatten_picture
from .guide_cache import GuideCache
from .part_cache import PartCache
from .pipeline_inputs import (
    call_many,
    check_denoise,
    check_max_side,
    check_output_size,
    check_projection,
    check_seed,
    check_tensors,
    prepare_inputs,
    to_pictures,
)
from .pipeline_format import (  # noqa: F401  (PIPELINE_FILE ... re-exported: older imports)
    BANK_STEM,
    PALETTE_STEM,
    PIPELINE_FILE,
    PIPELINE_FORMAT_VERSION,
    PipelineDescription,
    model_metas,
    pipeline_description,
    read_pipeline_description,
    write_parts_folder,
    write_pipeline_folder,
)

from .pipeline_types import (
    GENERATOR_RUNNERS,
    PIPELINE_LOADERS,
    _check_parts_agree,
    flip_averaged,
    probe_call,
)
from .runtime import (  # noqa: F401  (set_serving_threads: older imports)
    check_inference_precision,
    cpu_has_bf16,
    fastest_inference_precision,
    pick_device,
    set_serving_threads,
)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "pretrained" / "default"


# ---------------------------------------------------------------------------------------------
# finding the folder

def resolve_model_path(path_or_name: str | Path) -> Path:
    """``"default"`` -> the model shipped in the package; a run folder -> its ``model/``."""
    if str(path_or_name) == "default":
        if not (DEFAULT_MODEL_DIR / PIPELINE_FILE).is_file():
            raise ValueError(
                "no default model is installed in this sketch2anime package (expected "
                f"{DEFAULT_MODEL_DIR}). Train one: `sketch2anime train configs/ae64.toml`, then "
                "`sketch2anime train configs/s2a64.toml`, and pass --model runs/s2a64/model "
                "(or copy that folder to the location above)"
            )
        return DEFAULT_MODEL_DIR
    folder = Path(path_or_name).expanduser()
    if (folder / "model" / PIPELINE_FILE).is_file() and not (folder / PIPELINE_FILE).is_file():
        folder = folder / "model"
    if not folder.is_dir():
        raise ValueError(f"model folder not found: {folder}")
    if not (folder / PIPELINE_FILE).is_file():
        raise ValueError(f"{folder} is not a sketch2anime model folder (no {PIPELINE_FILE}); "
                         "pass the model/ folder of a finished `sketch2anime train` run")
    return folder


class Sketch2AnimePipeline:
    """A loaded pipeline folder. Attributes: ``description`` (a ``PipelineDescription``),
    ``pipeline_type``, ``image_size``, ``hint_size``, ``hint_downscale``, ``projection_k``,
    ``projection_reg``, ``device``, ``generator``, ``autoencoder``, ``bank`` and ``palettes`` (or None);
    ``work_scale`` and ``work_base`` on a view made by ``at_scale`` (1 and None on the model itself);
    ``precision`` ("fp32" or "bf16", set by ``set_precision``)."""

    work_scale: int = 1  # set by at_scale(): the generator runs at this multiple of the trained size
    work_base: "Sketch2AnimePipeline | None" = None

    def __init__(self, folder: Path | None, description: PipelineDescription | dict[str, Any],
                 modules: dict[str, Any], device: torch.device, metas: dict[str, dict[str, Any]] | None = None) -> None:
        if isinstance(description, dict):
            description = PipelineDescription.from_dict(description, str(folder))
        self.folder = folder
        self.description = description
        self.pipeline_type: str = description.pipeline_type
        self.image_size: int = description.image_size
        self.hint_downscale: int = description.hint_downscale
        self.hint_size: int = description.hint_size
        self.projection_k: int = description.projection_k
        self.projection_reg: float = description.projection_reg
        self.metas = dict(metas or {})  # per module: what made it, written back by save_pretrained
        self.device = device
        self.generator = modules["generator"].to(device).eval()
        self.autoencoder = modules.get("autoencoder")
        if self.autoencoder is not None:
            self.autoencoder = self.autoencoder.to(device).eval()
        self.bank = modules.get("bank")
        self.palettes = modules.get("palettes")
        # Optional per-part guide (models/part_guide.py): sharp eyes and mouth pasted into the guide.
        self.parts = modules.get("parts")
        if self.parts is not None:
            self.parts = self.parts.to(device).eval()
        self.part_banks = modules.get("part_banks") or {}
        self.part_cache = PartCache()  # unchanged eyes/mouth between panel updates skip the part work
        self.guide_cache = GuideCache()  # an unchanged sketch (a hint stroke) skips the autoencoders
        self.precision = "fp32"
        _check_parts_agree(folder, description, self.generator, self.autoencoder, self.bank)

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path = "default", device: str = "auto",
                        precision: str = "fp32") -> "Sketch2AnimePipeline":
        """Load a pipeline folder (or a run folder containing ``model/``, or ``"default"``);
        ``precision``: see ``set_precision``."""
        check_inference_precision(precision)
        folder = resolve_model_path(path_or_name)
        description = PipelineDescription.read(folder)
        kind = description.pipeline_type
        if kind not in PIPELINE_LOADERS or (kind not in GENERATOR_RUNNERS and kind != "autoencoder"):
            raise ValueError(f"{folder}: pipeline_type {kind!r} is not supported by this sketch2anime "
                             f"(known: {', '.join(sorted(GENERATOR_RUNNERS))})")
        modules = PIPELINE_LOADERS[kind](folder, description)
        pipe = cls(folder, description, modules, pick_device(device), model_metas(folder))
        return pipe.set_precision(precision) if precision != "fp32" else pipe

    def save_pretrained(self, folder: str | Path, bank_storage: str = "float32") -> Path:
        """Write this pipeline as a folder that ``from_pretrained`` loads to identical outputs: the
        mirror of ``from_pretrained``, through the same writer as ``sketch2anime train``'s export.

        Weights are saved as float32 (a float16-stored folder grows but its values are unchanged);
        ``bank_storage="float16"`` halves the latent banks, ``"int8"`` quarters them (as the shipped model
        stores them: it has four banks with the part guide)."""
        if self.work_base is not None:  # a view at another work size: the model is the one trained
            return self.work_base.save_pretrained(folder, bank_storage)
        models = {"generator": self.generator}
        if self.autoencoder is not None:
            models["autoencoder"] = self.autoencoder
        if self.parts is not None:  # before pipeline.json, which write_pipeline_folder writes last
            write_parts_folder(folder, self.parts.layout, self.parts.autoencoder, self.part_banks,
                               meta=self.metas.get("parts/autoencoder", {}), bank_storage=bank_storage)
        return write_pipeline_folder(folder, self.description, models, bank=self.bank, palettes=self.palettes,
                                     meta=self.metas, bank_storage=bank_storage)

    def at_scale(self, factor: int) -> "Sketch2AnimePipeline":
        """This model run at ``factor`` (1, 2 or 4) x its size, sharing the weights: for large, detailed
        line art (full-length characters), at ``factor``² the compute (``sketch2anime.work_scale``)."""
        from .work_scale import at_work_scale

        return at_work_scale(self, factor)

    def set_precision(self, precision: str) -> "Sketch2AnimePipeline":
        """Run the networks in ``precision`` from now on and return the pipeline: "fp32"; "bf16"
        (autocast: convolutions and matmuls in bfloat16, the rest and every output in float32); or
        "auto", which times this model's generator both ways on its device and keeps the faster
        (``runtime.fastest_inference_precision``; fp32 on CPUs without bf16 instructions and on
        CUDA). Work-scale views of the model follow it."""
        check_inference_precision(precision)
        base = self.work_base or self
        if precision == "auto":
            precision = fastest_inference_precision(probe_call(base), base.device)
        elif precision == "bf16" and base.device.type == "cpu" and not cpu_has_bf16():
            # Emulated bf16 ran training steps 17-21x slower on such a CPU (docs/benchmarks.md history).
            warnings.warn("this CPU has no bf16 instructions (avx512_bf16 / amx_bf16): bf16 will be slower "
                          "than fp32 here; use precision 'auto' or 'fp32'", RuntimeWarning, stacklevel=2)
        for pipe in (base, *base.__dict__.get("work_views", {}).values()):
            pipe.precision = precision
            pipe.part_cache.clear()  # its parts were decoded in the other precision
            pipe.guide_cache.clear()
        return self

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the networks run in: bf16 autocast when ``precision`` is "bf16", else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    @property
    def uses_projection(self) -> bool:
        return self.autoencoder is not None and self.bank is not None

    def to(self, device: str | torch.device) -> "Sketch2AnimePipeline":
        """Move the networks to ``device`` ("cpu", "cuda", "cuda:1", "auto"); returns the pipeline.
        The latent bank stays on the CPU, where projection runs. On a work-scale view
        (``at_scale``) the model it views moves, and the view keeps sharing its weights."""
        base = self.work_base
        if base is not None:
            from .work_scale import at_work_scale

            base.to(device)  # drops every view of the old device
            self.__dict__.update(at_work_scale(base, self.work_scale).__dict__)
            base.work_views[self.work_scale] = self  # this object stays the one view at its factor
            return self
        self.device = pick_device(device)
        self.__dict__.pop("work_views", None)  # views at another work size keep their own generators
        self.generator.to(self.device)
        if self.autoencoder is not None:
            self.autoencoder.to(self.device)
        if self.parts is not None:
            self.parts.to(self.device)
            self.part_cache.clear()
        self.guide_cache.clear()
        return self

    # ---- tensor API -------------------------------------------------------------------------

    def _check_tensors(self, sketch: torch.Tensor, hint: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return check_tensors(sketch, hint, self.image_size, self.hint_size, self.device)

    def _seeded(self, seed: int | None) -> contextlib.AbstractContextManager:
        seed = check_seed(seed)
        if seed is None:
            return contextlib.nullcontext()
        devices = [self.device] if self.device.type == "cuda" else []
        stack = contextlib.ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=devices))
        torch.manual_seed(int(seed))
        return stack

    def _latents(self, sketch: torch.Tensor, projection: float) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.uses_projection:
            return None, None
        from .models.guide import encode_sketch
        from .models.projection import project

        key = self.guide_cache.key(sketch, projection, self.projection_k, self.projection_reg, self.precision)
        found = self.guide_cache.get(key)
        if found is not None:
            return found
        with self.autocast():
            z = encode_sketch(self.autoencoder, sketch)
        if projection > 0:
            z = project(z.cpu(), self.bank, k=self.projection_k, strength=projection,
                        reg=self.projection_reg).to(self.device)
        guide = self.guide_image(z, sketch, projection)
        self.guide_cache.put(key, z, guide)
        return z, guide

    def guide_image(self, z: torch.Tensor, sketch: torch.Tensor, projection: float) -> torch.Tensor:
        """The decoded latent ``z (N, D)`` at the model size, with the sketch's parts (projected by
        ``projection``) pasted in when the pipeline has a per-part guide: ``(N, 1, S, S)``."""
        from .models.guide import guide_from_latent

        with self.autocast():
            guide = guide_from_latent(self.autoencoder, z, self.image_size).float()
            if self.parts is None:
                return guide
            # Same result as models.part_guide.guide_with_parts (tests/test_part_cache.py), reusing the
            # parts whose crops did not change since an earlier call.
            decoded = self.part_cache.decoded(self.parts, self.part_banks, sketch, projection, self.projection_k,
                                              self.projection_reg)
        return self.parts.paste(guide, {name: part.float() for name, part in decoded.items()})

    def generate_tensors(self, sketch: torch.Tensor, hint: torch.Tensor | None = None, projection: float = 0.5,
                         seed: int | None = None, denoise: bool = True) -> dict[str, torch.Tensor | None]:
        """sketch ``(N, 1, S, S)`` in [-1, 1], hint ``(N, 4, h, h)`` or None ->
        ``{"image": (N, 3, S, S) in [-1, 1], "projected_sketch": (N, 1, S, S) or None}`` (on CPU).

        ``projected_sketch`` is the autoencoder's decoding of the (projected) latent; None for
        pipeline types without an autoencoder, which also ignore ``projection``. ``denoise`` False
        skips the folder's picture clean-up (``run_generator``).
        """
        projection = check_projection(projection)
        denoise = check_denoise(denoise)
        sketch, hint = self._check_tensors(sketch, hint)
        with torch.inference_mode(), self._seeded(seed):
            z, decoded = self._latents(sketch, projection)
            if seed and self.palettes is not None:  # seed None or 0: the model's own colours
                from .variations import _borrowed_colours

                hint = _borrowed_colours(self, hint, z, torch.Generator().manual_seed(int(seed)))
            image = self.run_generator(sketch, hint, z, decoded, denoise)
        self._check_output(image, decoded)
        return {"image": image.float().clamp(-1, 1).cpu(),
                "projected_sketch": decoded.float().cpu() if decoded is not None else None}

    def run_generator(self, sketch: torch.Tensor, hint: torch.Tensor, z: torch.Tensor | None,
                      decoded: torch.Tensor | None, denoise: bool = True) -> torch.Tensor:
        """This pipeline type's runner (``(N, 3, S, S)`` in about [-1, 1]), then, when ``denoise``,
        the folder's picture clean-up as ``pipeline.json`` asks: the flip average, then the
        bilateral filter (``models/denoise.py``)."""
        runner = GENERATOR_RUNNERS[self.pipeline_type]
        with self.autocast():
            if denoise and self.description.flip_average:
                image = flip_averaged(runner, self, sketch, hint, z, decoded)
            else:
                image = runner(self, sketch, hint, z, decoded)
        image = image.float()
        if denoise and self.description.denoise is not None:
            from .models.denoise import bilateral_denoise

            image = bilateral_denoise(image.float().clamp(-1, 1), self.description.denoise)
        return image

    def _check_output(self, image: torch.Tensor, decoded: torch.Tensor | None = None) -> None:
        # NaN survives clamp() and becomes an all-black 8-bit picture with exit code 0: refuse it.
        for name, tensor in (("picture", image), ("projected sketch", decoded)):
            if tensor is not None and not torch.isfinite(tensor).all():
                raise CheckpointError(f"{self.folder}: the model produced a {name} with NaN or infinite values "
                                      "(damaged or diverged weights?)")

    # ---- image API --------------------------------------------------------------------------

    def prepare(self, sketch: ImageInput, hint: ImageInput | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Any-size inputs -> ``(sketch (1,1,S,S), hint (1,4,h,h), (width, height) of the sketch)``."""
        return prepare_inputs(sketch, hint, self.image_size, self.hint_size, self.hint_downscale)

    def _to_pictures(self, result: dict[str, torch.Tensor | None], size: tuple[int, int],
                     output_size: str = "input", max_side: int | None = None,
                     index: int = 0) -> tuple[Image.Image, Image.Image | None]:
        return to_pictures(result, size, output_size, max_side, index)

    def __call__(self, sketch: ImageInput | list[ImageInput], hint: ImageInput | list[ImageInput] | None = None,
                 projection: float = 0.5, seed: int | None = None, return_projected: bool = False,
                 output_size: str = "input", max_side: int | None = None, upscale: int = 1,
                 lines: float = 0.0, flatten: float = 0.0, denoise: bool = True) -> Any:
        """Colour ``sketch`` (path, PIL or numpy, any size); ``hint`` is an RGBA layer whose alpha marks
        hinted pixels (a layer without any transparent pixel: white = no hint). Returns a PIL RGB image
        of the sketch's size, or with ``output_size="model"`` of the model's resolution (same
        framing), and, with ``return_projected``, the projected sketch as PIL L, or None for
        pipelines without an autoencoder. ``max_side`` caps the longer side of an ``"input"``-size
        result (the server's bound on output work).

        A list of sketches gives a list of results, computed ``BATCH_SIZE`` at a time; ``hint`` is
        then None, one layer for all, or a list with one layer (or None) per sketch.

        ``upscale`` (2, 4 or 8) enlarges the model-resolution result with the anime upscalers (the
        picture is then ``upscale`` x the model's size); ``lines`` in [0, 1] multiplies the sketch's
        own lines over the result (``sketch2anime.upscale.pipeline``); ``flatten`` in [0, 1] gives each
        region the sketch's lines close one colour, the model's median there (``sketch2anime.flatten``);
        ``denoise`` False skips the model's picture clean-up (``pipeline.json``'s ``denoise``).

        ``seed``: for pipelines with training colour schemes (``palettes.*``), any seed other than
        None or 0 borrows the colours of one of the training images whose sketches are nearest to
        yours (dabs where you gave no hint); None or 0 gives the model's own colours."""
        output_size = check_output_size(output_size)
        max_side = check_max_side(max_side)
        flatten = check_flatten(flatten)
        denoise = check_denoise(denoise)
        if upscale != 1 or lines:  # the model's result -> anime upscalers (+ flat colours, the user's lines)
            from .upscale.pipeline import upscaled_call

            return upscaled_call(self, sketch, hint, projection, seed, return_projected, upscale, lines, flatten,
                                 denoise)
        if isinstance(sketch, (list, tuple)):
            return call_many(self, list(sketch), hint, projection, seed, return_projected, output_size, max_side,
                             flatten, denoise)
        sketch_tensor, hint_tensor, size = self.prepare(sketch, hint)
        result = self.generate_tensors(sketch_tensor, hint_tensor, projection, seed, denoise)
        picture, projected = self._to_pictures(result, size, output_size, max_side)
        if flatten:
            picture = flatten_picture(picture, sketch, flatten)
        return (picture, projected) if return_projected else picture

    BATCH_SIZE = 16  # sketches per forward pass when __call__ gets a list (pipeline_inputs.call_many)

    def variations(self, sketch: ImageInput, hint: ImageInput | None = None, projection: float = 0.5,
                   count: int = 4, seed: int = 0, output_size: str = "input",
                   max_side: int | None = None, denoise: bool = True) -> list[Image.Image]:
        """``count`` candidates; the first equals ``self(sketch, hint, projection)``
        (``output_size``, ``max_side`` and ``denoise`` as there).

        With an autoencoder the others re-project the latent onto a random k-subset of its 3k
        nearest training latents (strength at least 0.35) after a small perturbation scaled by the
        bank's spread, so each follows the sketch but borrows from different training sketches.
        Pipelines that ship training colour schemes (``palettes.*``, the guided default model) also
        take, for each candidate, the colours of one of the training images whose sketches are
        nearest as extra hint dabs where the user has not hinted: a deterministic generator gives
        different colourings only through its inputs. Without an autoencoder (simple_gan, ...) the
        sketch is shifted by a few pixels and shifted back, which gives only small differences.
        """
        from .variations import variations

        return variations(self, sketch, hint, projection, count, seed, output_size, max_side, denoise)
