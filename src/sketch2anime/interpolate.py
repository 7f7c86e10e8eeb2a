"""Weight interpolation between two fine-tunes of one generator (a "model soup" of two).

Run 4 of the default model (SSIM-leaning) and run 5 (its adversarial fine-tune, FID-leaning) share
their autoencoder, latent bank and palettes and differ only in the generator's weights. Averaging
such weights, ``(1 - alpha) * A + alpha * B``, gives a model between the two on the quality
trade-off without training (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models" /
"Model soups"): it is only meaningful when B was fine-tuned from A (or both from one parent), so
that the two weight sets lie in one basin. This module checks what it can check (same autoencoders
to float16 precision, same part layout, same generator config, tensor names and shapes) and refuses
the rest; banks and palettes are taken from A, so the shipped folder (float16 weights, int8 banks)
mixes with a run fine-tuned from it.

    sketch2anime interpolate RUN4/model RUN5/model --alpha 0.5 --out soup/
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CONFIG_FILE, MODEL_FILE, load_model, read_json, read_tensors, sha256_file
from .data.palettes import PALETTE_STEM
from .pipeline_format import (BANK_STEM, PARTS_DIR, PIPELINE_FILE, PipelineDescription, find_pipeline_folder,
                              has_parts, read_parts_folder, write_parts_folder, write_pipeline_folder)

GENERATOR_DIR = "generator"


def model_folder(path: str | Path) -> Path:
    if str(path) == "default":  # the shipped model, as every other command names it
        from .inference import resolve_model_path

        return resolve_model_path(path)
    folder = find_pipeline_folder(path)
    if folder is None:
        raise ValueError(f"{path} is not a model folder (no {PIPELINE_FILE}, nor in its model/)")
    return folder


def _shared_files(folder: Path) -> dict[str, Path]:
    """Every file of the folder that interpolation copies unchanged, by relative path."""
    skip = {f"{GENERATOR_DIR}/{MODEL_FILE}", f"{GENERATOR_DIR}/{CONFIG_FILE}", PIPELINE_FILE}
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in skip
            and not p.name.startswith(".") and p.name != "MODEL_CARD.md"}


def _is_derived(name: str) -> bool:
    """Latent banks and colour palettes: data computed with the shared autoencoder, copied from A."""
    path = Path(name)
    return ((path.parent == Path(".") and path.stem in (BANK_STEM, PALETTE_STEM))
            or (path.parent == Path(PARTS_DIR) and path.name.startswith("bank_")))


def _same_content(name: str, a: Path, b: Path) -> bool:
    """Files with other bytes that still describe one model: the shipped default stores its weights as
    float16 and its banks as int8 (part banks pruned), while a run fine-tuned from it exports float32
    weights and its own bank copies. Weights must agree to float16 precision; banks and palettes may
    differ: they are copied from A, and only choose projection targets and borrowed colours."""
    if _is_derived(name):
        return True
    if name.endswith(f"/{CONFIG_FILE}"):  # the same architecture; ``meta`` records provenance only
        config_a, config_b = read_json(a), read_json(b)
        return (config_a.get("model_type"), config_a.get("config")) == (config_b.get("model_type"),
                                                                        config_b.get("config"))
    if name.endswith(f"/{MODEL_FILE}"):
        ta, tb = read_tensors(a), read_tensors(b)
        return ta.keys() == tb.keys() and all(
            ta[k].shape == tb[k].shape and torch.allclose(ta[k].float(), tb[k].float(), rtol=1e-3, atol=1e-7)
            for k in ta)
    return False


def check_compatible(a: Path, b: Path) -> tuple[PipelineDescription, PipelineDescription]:
    """Both folders' descriptions; ``ValueError`` unless ``a`` and ``b`` differ only in their generator's weights."""
    da, db = PipelineDescription.read(a), PipelineDescription.read(b)
    for name in ("pipeline_type", "image_size", "hint_downscale", "latent_dim", "projection_k", "projection_reg"):
        if getattr(da, name) != getattr(db, name):
            raise ValueError(f"the two models differ in {name} ({getattr(da, name)!r} vs {getattr(db, name)!r})")
    files_a, files_b = _shared_files(a), _shared_files(b)
    if files_a.keys() != files_b.keys():
        only = sorted(files_a.keys() ^ files_b.keys())
        raise ValueError(f"the two model folders hold different files: {', '.join(only[:5])}")
    for name in files_a:
        if sha256_file(files_a[name]) != sha256_file(files_b[name]) and not _same_content(name, files_a[name],
                                                                                           files_b[name]):
            raise ValueError(f"the two models differ in {name}: interpolation needs one autoencoder (and part "
                             "guide), with only the generator fine-tuned")
    config_a = read_json(a / GENERATOR_DIR / CONFIG_FILE)
    config_b = read_json(b / GENERATOR_DIR / CONFIG_FILE)
    if (config_a.get("model_type"), config_a.get("config")) != (config_b.get("model_type"), config_b.get("config")):
        raise ValueError("the two generators have different architectures (generator/config.json)")
    return da, db


def interpolate_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                      alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` per floating tensor; other tensors must be equal and are kept."""
    if a.keys() != b.keys():
        raise ValueError(f"the generators' weights have different names: {sorted(a.keys() ^ b.keys())[:5]}")
    mixed = {}
    for name, ta in a.items():
        tb = b[name]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            raise ValueError(f"weight {name} differs in shape or dtype: {tuple(ta.shape)} {ta.dtype} vs "
                             f"{tuple(tb.shape)} {tb.dtype}")
        if ta.is_floating_point():
            mixed[name] = torch.lerp(ta.float(), tb.float(), alpha).to(ta.dtype)
        elif torch.equal(ta, tb):
            mixed[name] = ta
        else:
            raise ValueError(f"integer buffer {name} differs between the models and cannot be averaged")
    return mixed


def interpolate_pipelines(a: str | Path, b: str | Path, alpha: float, out: str | Path) -> Path:
    """Write a model folder at ``out`` whose generator is ``(1 - alpha) * A + alpha * B``.

    Everything else (autoencoder, latent bank, palettes, parts) is copied from A, after checking
    that B holds the same autoencoders (to float16 precision) and part layout. ``out`` must not exist yet or be empty (nothing is overwritten).
    Returns the folder.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) \
            or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1] (0 = the first model, 1 = the second), got {alpha!r}")
    folder_a, folder_b = model_folder(a), model_folder(b)
    out = check_new_folder(out)
    description_a, description_b = check_compatible(folder_a, folder_b)
    # Loaded modules hold float32 whatever the files store (the shipped default stores float16).
    generator = load_model(folder_a / GENERATOR_DIR)
    other = load_model(folder_b / GENERATOR_DIR)
    generator.load_state_dict(interpolate_state(generator.state_dict(), other.state_dict(), float(alpha)))
    source: dict[str, Any] = {"a": str(folder_a), "b": str(folder_b), "alpha": float(alpha),
                              "a_experiment": description_a.training.get("experiment"),
                              "b_experiment": description_b.training.get("experiment")}
    # A's dataset and bank size still describe the folder; its experiment and step do not.
    training = {k: v for k, v in description_a.training.items() if k not in ("experiment", "step", "final")}
    training.update(experiment="interpolated", interpolated=source)
    generator_meta = {**read_json(folder_a / GENERATOR_DIR / CONFIG_FILE).get("meta", {}), "interpolated": source}
    return write_with_generator(folder_a, description_a.replace(training=training), generator, generator_meta, out)


def check_new_folder(out: str | Path) -> Path:
    """``out`` as a Path; ``ValueError`` if it exists and is not an empty folder (nothing is overwritten)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder; choose a new output folder")
    return out


def write_with_generator(folder: Path, description: PipelineDescription, generator: torch.nn.Module,
                         generator_meta: dict[str, Any], out: Path) -> Path:
    """Write ``out``: the model folder ``folder`` (autoencoder, parts, bank, palettes) with ``generator``."""
    if has_parts(folder):  # parts first: pipeline.json, written last, marks the folder complete
        layout, _, banks = read_parts_folder(folder)
        write_parts_folder(out, layout, folder / PARTS_DIR / "autoencoder", banks)
    palettes = folder / PALETTE_STEM
    write_pipeline_folder(out, description, {"autoencoder": folder / "autoencoder", GENERATOR_DIR: generator},
                          bank=folder / BANK_STEM,
                          palettes=palettes if palettes.with_suffix(".json").is_file() else None,
                          meta={GENERATOR_DIR: generator_meta})
    return out
