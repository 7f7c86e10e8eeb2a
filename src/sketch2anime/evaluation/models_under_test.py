"""The models under test, behind one interface (``eval_model.EvalModel``): pipeline folders, the
Gatys style-transfer baseline (``style-transfer``) and the ``oracle`` (returns the target).

A pipeline folder is scored with the model's own colours; ``FOLDER@seed=N`` (N > 0) scores what the
panel's Seed gives instead: hint dabs of a training image's colours (``variations._borrowed_colours``),
only for pipelines that ship training colour schemes. ``FOLDER@lines=S`` scores the result with the
user's sketch multiplied over it (``generate --lines S``); ``FOLDER@flat=F`` with one colour per closed
region of the sketch at strength F (``generate --flatten F``, ``flatten.py``); ``FOLDER@precision=bf16``
the model with its networks in bf16 (``generate --precision bf16``); the marks combine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hint_format import MASK_CHANNEL, resize_hint
from ..runtime import INFERENCE_PRECISIONS
from .eval_model import Batch, EvalModel, resize_images
from .protocol import EvaluationProtocol

STYLE_TRANSFER = "style-transfer"
ORACLE = "oracle"
SEED_MARK = "@seed="
LINES_MARK = "@lines="
FLAT_MARK = "@flat="
PRECISION_MARK = "@precision="
MARKS = (SEED_MARK, LINES_MARK, FLAT_MARK, PRECISION_MARK)


@dataclass(frozen=True)
class ModelSpec:
    """A ``--model`` argument taken apart: ``FOLDER[@seed=N][@lines=S][@flat=F][@precision=P]``. colour_seed: the
    panel's Seed N (> 0; None = the model's own colours). lines: the user's sketch multiplied over the
    result at strength S in [0, 1], as ``sketch2anime generate --lines`` does (0 = off). flatten: the
    cel flattening of ``generate --flatten`` at strength F in [0, 1] (0 = off), applied before the lines.
    precision: what the networks run in ("fp32", "bf16" or "auto"; ``Sketch2AnimePipeline.set_precision``)."""

    folder: str
    colour_seed: int | None = None
    lines: float = 0.0
    flatten: float = 0.0
    precision: str = "fp32"

    @property
    def suffix(self) -> str:
        """What the spec adds to a model's name in the tables, e.g. ``-seed2-lines1``."""
        return (f"-seed{self.colour_seed}" if self.colour_seed is not None else "") + \
            (f"-lines{self.lines:g}" if self.lines else "") + (f"-flat{self.flatten:g}" if self.flatten else "") + \
            (f"-{self.precision}" if self.precision != "fp32" else "")


def parse_model_spec(source: str) -> ModelSpec:
    """``"runs/x/model@seed=3@lines=1"`` -> ``ModelSpec("runs/x/model", 3, 1.0)``; marks in any order,
    each at most once; without marks, ``ModelSpec(source)``."""
    from ..flatten import check_flatten
    from ..upscale.upscaler import check_lines

    folder, values = source, {}
    while True:
        cut = max(folder.rfind(mark) for mark in MARKS)
        if cut < 0:
            break
        mark = next(mark for mark in MARKS if folder.startswith(mark, cut))
        if mark in values:
            raise ValueError(f"--model {source!r}: {mark} is given twice")
        folder, values[mark] = folder[:cut], folder[cut + len(mark):]
    colour_seed = None
    if SEED_MARK in values:
        try:
            colour_seed = int(values[SEED_MARK])
        except ValueError:
            colour_seed = 0
        if colour_seed < 1:
            raise ValueError(f"--model {source!r}: after {SEED_MARK} give a positive integer (the panel's Seed), "
                             f"e.g. {folder or 'default'}{SEED_MARK}1")
    def strength(mark: str, what: str, check) -> float:
        if mark not in values:
            return 0.0
        try:
            return check(float(values[mark]))
        except ValueError:
            raise ValueError(f"--model {source!r}: after {mark} give the {what}, a number in [0, 1], "
                             f"e.g. {folder or 'default'}{mark}1") from None

    lines = strength(LINES_MARK, "line strength", check_lines)
    flatten = strength(FLAT_MARK, "flattening strength", check_flatten)
    precision = values.get(PRECISION_MARK, "fp32")
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"--model {source!r}: after {PRECISION_MARK} give one of {', '.join(INFERENCE_PRECISIONS)}, "
                         f"e.g. {folder or 'default'}{PRECISION_MARK}bf16")
    if not folder:
        raise ValueError(f"--model {source!r}: give the model before the marks, e.g. default{LINES_MARK}1")
    return ModelSpec(folder, colour_seed, lines, flatten, precision)


def check_colour_seed(pipe, source: str, colour_seed: int | None) -> None:
    """Refuse ``FOLDER@seed=N`` for a pipeline without training colour schemes: its Seed changes nothing,
    so scoring it would silently report the model's own colours under a Seed's name."""
    if colour_seed is not None and getattr(pipe, "palettes", None) is None:
        raise ValueError(f"--model {source!r}: {pipe.folder} ships no training colour schemes (palettes.*), so its "
                         f"Seed changes nothing; score it without {SEED_MARK}")


def lay_lines(image: torch.Tensor, sketch: torch.Tensor, strength: float) -> torch.Tensor:
    """``image`` (B, 3, S, S) in [-1, 1] with ``sketch`` (B, 1, S, S) in [-1, 1] (paper 1) multiplied
    over it, as ``generate --lines`` does on the saved picture."""
    from ..upscale.upscaler import ink_multiply

    if not strength:
        return image
    ink = (1.0 - (sketch.to(image.dtype) + 1.0) / 2.0).clamp(0.0, 1.0)
    return ink_multiply((image + 1.0) / 2.0, ink, strength) * 2.0 - 1.0


def _fit_hint(hint: torch.Tensor, size: int) -> torch.Tensor:
    """Protocol hint -> a model's hint grid; the mask stays binary, colours stay exact."""
    if hint.shape[-1] == size:
        return hint
    resized = resize_hint(hint, size)
    mask = (resized[:, MASK_CHANNEL:MASK_CHANNEL + 1] >= 0.5).to(hint.dtype)
    return torch.cat([resized[:, :MASK_CHANNEL] * mask, mask], dim=1)


def _pipeline_model(source: str, device: str, projections: tuple[float, ...], name: str) -> EvalModel:
    from ..flatten import flatten_tensor
    from ..inference import Sketch2AnimePipeline

    spec = parse_model_spec(source)
    colour_seed = spec.colour_seed
    pipe = Sketch2AnimePipeline.from_pretrained(spec.folder, device=device, precision=spec.precision)
    check_colour_seed(pipe, source, colour_seed)

    def run(batch: Batch, projection: float | None, seed: int) -> torch.Tensor:
        sketch = resize_images(batch.sketch, pipe.image_size)
        hint = None if batch.hint is None else _fit_hint(batch.hint, pipe.hint_size)
        kwargs = {"projection": projection} if projection is not None else {}
        # ``seed`` is the protocol's; the pipeline's own seed only picks borrowed colours (None: the
        # model's own), and no pipeline here is otherwise stochastic.
        # native size: scored at the dataset and display sizes by the caller
        image = pipe.generate_tensors(sketch, hint, seed=colour_seed, **kwargs)["image"].float().cpu()
        own_lines = resize_images(sketch.float().cpu(), image.shape[-1])
        return lay_lines(flatten_tensor(image, own_lines, spec.flatten), own_lines, spec.lines)

    uses = bool(getattr(pipe, "uses_projection", pipe.pipeline_type == "sketch2anime"))
    label = pipe.pipeline_type if colour_seed is None else \
        f"{pipe.pipeline_type}, Seed {colour_seed}: a training image's colours as extra hint dabs"
    if spec.lines:
        label += f", the sketch's lines multiplied over the result at strength {spec.lines:g}"
    if spec.flatten:
        label += f", one colour per closed region of the sketch at strength {spec.flatten:g}"
    if pipe.precision != "fp32":
        label += f", networks in {pipe.precision}"
    return EvalModel(name=name, source=str(pipe.folder), kind=pipe.pipeline_type, run=run,
                     projections=tuple(projections) if uses else (None,),
                     label=label, info={"image_size": pipe.image_size, "hint_size": pipe.hint_size,
                                        "device": str(pipe.device), "colour_seed": colour_seed,
                                        "lines": spec.lines, "precision": pipe.precision})


def _style_transfer_model(protocol: EvaluationProtocol, device: torch.device, steps: int, seed: int) -> EvalModel:
    from ..data.image_io import load_rgb, resize_square, rgb_to_tensor
    from ..weights import load_pretrained_hed
    from .style_transfer import FEATURES_LABEL, METHOD_LABEL, StyleTransferConfig, pick_style_indices, stylize

    train_paths = protocol.training_color_paths()
    if not train_paths:
        raise ValueError("the style-transfer baseline needs training colour images (the dataset has no train split)")
    hed = load_pretrained_hed().to(device)  # MissingWeightsError names the fetch command
    hed.requires_grad_(False)
    config = StyleTransferConfig(steps=steps)

    def features(x: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
        return hed.features(x, layers)

    def run(batch: Batch, projection: float | None, run_seed: int) -> torch.Tensor:
        size = batch.sketch.shape[-1]
        picks = pick_style_indices(batch.ids, len(train_paths), seed)
        style = torch.stack([rgb_to_tensor(np.asarray(resize_square(load_rgb(train_paths[i]), size)))
                             for i in picks]).to(device)
        generator = torch.Generator().manual_seed(run_seed)
        return stylize(batch.sketch.to(device), style, features, config, generator).float().cpu()

    return EvalModel(name=STYLE_TRANSFER, source=STYLE_TRANSFER, kind="style_transfer", run=run, uses_hints=False,
                     label=METHOD_LABEL, info={"features": FEATURES_LABEL, "steps": steps,
                                               "style_image": "seeded random training colour image per sample id"})


def oracle_model() -> EvalModel:
    """Returns the target image: proves the plumbing (SSIM 1, ΔE00 ~0, FID ~0)."""
    return EvalModel(name=ORACLE, source=ORACLE, kind="oracle", run=lambda batch, p, s: batch.target.clone(),
                     uses_hints=False, label="oracle (returns the target; sanity check)")


def _model_name(source: str, taken: set[str]) -> str:
    spec = parse_model_spec(source)
    path = Path(spec.folder)
    base = path.parent.name if path.name == "model" and path.parent.name else path.name or spec.folder
    if path.parent.name == "snapshots" and path.parent.parent.name:  # RUN/snapshots/step_N -> RUN-step_N
        base = f"{path.parent.parent.name}-{path.name}"
    base += spec.suffix
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name
