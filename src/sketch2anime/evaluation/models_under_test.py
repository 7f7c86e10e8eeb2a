"""The models under test, behind one interface (``eval_model.EvalModel``): pipeline folders, the
Gatys style-transfer baseline (``style-transfer``) and the ``oracle`` (returns the target).

A pipeline folder is scored with the model's own colours; ``FOLDER@seed=N`` (N > 0) scores what the
panel's Seed gives instead: hint dabs of a training image's colours (``variations._borrowed_colours``),
only for pipelines that ship training colour schemes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..hint_format import MASK_CHANNEL, resize_hint
from .eval_model import Batch, EvalModel, resize_images
from .protocol import EvaluationProtocol

STYLE_TRANSFER = "style-transfer"
ORACLE = "oracle"
SEED_MARK = "@seed="


def split_colour_seed(source: str) -> tuple[str, int | None]:
    """``"runs/x/model@seed=3"`` -> ``("runs/x/model", 3)``; without the mark, ``(source, None)``."""
    if SEED_MARK not in source:
        return source, None
    path, _, value = source.rpartition(SEED_MARK)
    try:
        seed = int(value)
    except ValueError:
        seed = 0
    if not path or seed < 1:
        raise ValueError(f"--model {source!r}: after {SEED_MARK} give a positive integer (the panel's Seed), "
                         f"e.g. {path or 'default'}{SEED_MARK}1")
    return path, seed


def check_colour_seed(pipe, source: str, colour_seed: int | None) -> None:
    """Refuse ``FOLDER@seed=N`` for a pipeline without training colour schemes: its Seed changes nothing,
    so scoring it would silently report the model's own colours under a Seed's name."""
    if colour_seed is not None and getattr(pipe, "palettes", None) is None:
        raise ValueError(f"--model {source!r}: {pipe.folder} ships no training colour schemes (palettes.*), so its "
                         f"Seed changes nothing; score it without {SEED_MARK}")


def _fit_hint(hint: torch.Tensor, size: int) -> torch.Tensor:
    """Protocol hint -> a model's hint grid; the mask stays binary, colours stay exact."""
    if hint.shape[-1] == size:
        return hint
    resized = resize_hint(hint, size)
    mask = (resized[:, MASK_CHANNEL:MASK_CHANNEL + 1] >= 0.5).to(hint.dtype)
    return torch.cat([resized[:, :MASK_CHANNEL] * mask, mask], dim=1)


def _pipeline_model(source: str, device: str, projections: tuple[float, ...], name: str) -> EvalModel:
    from ..inference import Sketch2AnimePipeline

    folder, colour_seed = split_colour_seed(source)
    pipe = Sketch2AnimePipeline.from_pretrained(folder, device=device)
    check_colour_seed(pipe, source, colour_seed)

    def run(batch: Batch, projection: float | None, seed: int) -> torch.Tensor:
        sketch = resize_images(batch.sketch, pipe.image_size)
        hint = None if batch.hint is None else _fit_hint(batch.hint, pipe.hint_size)
        kwargs = {"projection": projection} if projection is not None else {}
        # ``seed`` is the protocol's; the pipeline's own seed only picks borrowed colours (None: the
        # model's own), and no pipeline here is otherwise stochastic.
        image = pipe.generate_tensors(sketch, hint, seed=colour_seed, **kwargs)["image"]
        return image.float().cpu()  # native size: scored at the dataset and display sizes by the caller

    uses = bool(getattr(pipe, "uses_projection", pipe.pipeline_type == "sketch2anime"))
    label = pipe.pipeline_type if colour_seed is None else \
        f"{pipe.pipeline_type}, Seed {colour_seed}: a training image's colours as extra hint dabs"
    return EvalModel(name=name, source=str(pipe.folder), kind=pipe.pipeline_type, run=run,
                     projections=tuple(projections) if uses else (None,),
                     label=label, info={"image_size": pipe.image_size, "hint_size": pipe.hint_size,
                                        "device": str(pipe.device), "colour_seed": colour_seed})


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
    folder, colour_seed = split_colour_seed(source)
    path = Path(folder)
    base = path.parent.name if path.name == "model" and path.parent.name else path.name or folder
    if path.parent.name == "snapshots" and path.parent.parent.name:  # RUN/snapshots/step_N -> RUN-step_N
        base = f"{path.parent.parent.name}-{path.name}"
    if colour_seed is not None:
        base = f"{base}-seed{colour_seed}"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name
