"""``sketch2anime evaluate``: score models on the validation split under one fixed protocol.

For every model x sketch condition (clean, rough-medium, rough-heavy) x hint level (none, sparse,
dense) x projection strength (sketch2anime pipelines only) one entry of ``metrics.json`` holds:
SSIM (mean, std), PSNR, L1 (at the dataset's size and, ``*_display``, upscaled bicubically to the
display size the user sees), input sensitivity (``sensitivity.py``), FID and KID against the real validation images (with the feature
extractor named), hint adherence (CIEDE2000 median / p90 inside the hint mask), line fidelity
(recall / precision / F of the clean sketch's lines within 2 px of the output's edges, chamfer;
``*_input`` against the sketch actually given) and, for rough conditions, the change against the
same model's clean entry (``delta_vs_clean``, rough minus clean). Inputs come from
``protocol.EvaluationProtocol``, identical for every model.

Each entry belongs to a ``set`` (``sets.py``), reported separately: ``val`` (the validation split,
all conditions), ``heldout-lines`` (the same images sketched by a line style never used in
training, clean only) and, with ``--pairs``, ``sketch-pairs`` (real line art, clean only). Unless
``--no-floors``, the trivial floors of ``floors.py`` (the sketch as output, the mean training image)
and the colour-16 reference are scored on the same inputs and shown in every table.

Pseudo-models besides pipeline folders: ``style-transfer`` (Gatys NST on HED-VGG16 features, not
ImageNet VGG; style = a seeded random training colour image; ignores hints) and ``oracle`` (returns
the target: a plumbing check, must score SSIM 1 and ΔE00 ~0), in ``models_under_test.py``; the
FID/KID feature extractor a run uses is chosen in ``fid.py``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write_bytes, atomic_write_text
from ..runtime import cpu_model
from .eval_model import Batch, EvalModel, resize_images
from .fid import extractor_label, feature_extractor_for
from .floors import FLOOR_NAMES, floor_models
from .models_under_test import ORACLE, STYLE_TRANSFER, _model_name, _pipeline_model, _style_transfer_model, oracle_model
from .protocol import DEFAULT_ROUGHNESS, HINT_LEVELS, EvaluationProtocol, ProtocolConfig, condition_name
from .scoring import PER_IMAGE_KEYS, PSNR_CAP_DB, EntryScores, add_deltas, add_fid_differences, display_scores
from .sensitivity import SENSITIVITY_SIZE, output_change, small_images
from .sets import MAIN_SET, EvalSet, dataset_display, heldout_set, pairs_set

__all__ = ["Batch", "EvalModel", "EvaluateConfig", "add_deltas", "oracle_model", "run_evaluation"]

METRICS_FORMAT_VERSION = 1
FID_CHOICES = ("auto", "inception", "hed-vgg", "none")


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``evaluate`` needs; mirrors the flags of ``sketch2anime evaluate`` (cli.py builds it from
    the arguments and calls ``run_evaluation``)."""

    models: tuple[str, ...]
    data: str
    out: str
    inception_weights: str | None = None
    fid: str = "auto"
    fid_conditions: tuple[str, ...] = ()  # roughness levels that get FID/KID; empty = all
    fid_size: int = 256  # hed-vgg input side (Inception always resizes to 299)
    limit: int | None = None
    seed: int = 0
    device: str = "auto"
    hint_levels: tuple[str, ...] = HINT_LEVELS
    roughness: tuple[str, ...] = DEFAULT_ROUGHNESS
    projections: tuple[float, ...] = (0.0, 0.5, 1.0)
    hint_downscale: int = 4
    batch_size: int = 32
    logs: tuple[str, ...] = ()
    grid_rows: int = 6
    style_steps: int = 200
    kid_subsets: int = 100
    fid_draws: int = 500  # paired bootstrap draws for each model's FID gap to the first model; 0 = off
    floors: bool = True  # score floors.py's trivial outputs alongside the models
    heldout_lines: bool = True  # also score the held-out line style (sets.HELDOUT_SET)
    pairs: str | None = None  # folder with sketch/ + color/ real line-art pairs (sets.PAIRS_SET)
    display_size: int = 256  # side the outputs are also scored at, upscaled bicubically; 0 = off
    table: str | None = None  # also write the model + floors Markdown table here

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("give at least one --model")
        if self.display_size and not 16 <= self.display_size <= 2048:
            raise ValueError(f"--display-size must be 0 (off) or between 16 and 2048 pixels, got {self.display_size}")
        reserved = sorted(set(self.models) & set(FLOOR_NAMES))
        if reserved:
            raise ValueError(f"{reserved[0]!r} is a floor, added automatically (unless --no-floors); "
                             "do not pass it as --model")
        if self.fid not in FID_CHOICES:
            raise ValueError(f"--fid must be one of {', '.join(FID_CHOICES)}, got {self.fid!r}")
        if not self.projections or any(not 0.0 <= p <= 1.0 for p in self.projections):
            raise ValueError(f"projection strengths must lie in [0, 1], got {self.projections}")
        if not 32 <= self.fid_size <= 1024:
            raise ValueError(f"--fid-size must lie between 32 and 1024 pixels, got {self.fid_size}")
        if self.batch_size < 1 or self.grid_rows < 0 or self.style_steps < 1 or self.kid_subsets < 1:
            raise ValueError("batch size, style steps and KID subsets must be >= 1 and grid rows >= 0")
        if self.fid_draws != 0 and not 2 <= self.fid_draws <= 100_000:
            raise ValueError(f"--fid-draws must be 0 (off) or between 2 and 100000, got {self.fid_draws}")


# ---------------------------------------------------------------------------------------------
# the run

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _hardware(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _run_batches(model: EvalModel, roughness: str, projection: float | None, eval_set: EvalSet,
                 config: EvaluateConfig, extractor: Any | None, with_features: bool, device: torch.device,
                 grid_rows: list[int]) -> tuple[dict[str, EntryScores], dict[str, list[torch.Tensor]]]:
    """Run one model on every batch of one sketch condition of a set, for all hint levels at once.

    Models that ignore hints run once per batch and share that output (and its FID features and
    display-size scores) between hint levels. Returns the per-level accumulators and the grid
    rows' outputs (at the dataset size).
    """
    protocol = eval_set.protocol
    levels = protocol.config.hint_levels
    size = protocol.size
    # Display-size scores (SSIM at 256 px costs 4x that at 128) on clean sketches only: they answer
    # "how does it look", the rough conditions' change is read at the dataset size.
    display = eval_set.display if roughness == "none" and eval_set.display is not None \
        and eval_set.display.available else None
    accs = {level: EntryScores(protocol.hint_size, level != "none", with_features) for level in levels}
    grid_outputs: dict[str, list[torch.Tensor]] = {level: [] for level in levels}
    indices_all = list(range(len(protocol)))
    for start in range(0, len(protocol), config.batch_size):
        indices = indices_all[start:start + config.batch_size]
        clean = protocol.sketch_tensor("none", indices)
        sketch = clean if roughness == "none" else protocol.sketch_tensor(roughness, indices)
        target = protocol.target_tensor(indices)
        display_target = display.tensor(indices) if display is not None else None
        ids = [protocol.items[i].id for i in indices]
        output, elapsed, features, shown = None, 0.0, None, None
        for level in levels:
            hint = protocol.hint_tensor(level, indices)
            batch = Batch(sketch, None if level == "none" else hint, target, ids)
            if output is None or model.uses_hints:
                _sync(device)
                tick = time.perf_counter()
                native = model.run(batch, projection, config.seed + start).float().cpu().clamp(-1, 1)
                _sync(device)
                elapsed, features = time.perf_counter() - tick, None
                if native.ndim != 4 or native.shape[:2] != target.shape[:2] or native.shape[-1] != native.shape[-2]:
                    raise ValueError(f"model {model.name} returned images of shape {tuple(native.shape)}; expected "
                                     f"({target.shape[0]}, 3, s, s) square images for targets of shape "
                                     f"{tuple(target.shape)}")
                output = resize_images(native, size)
                shown = display_scores(native, display_target) if display_target is not None else None
            if features is None and with_features and extractor is not None:
                features = extractor(output)
            accs[level].seconds += elapsed
            accs[level].add(output, batch, clean, hint, features, shown)
            rows = [k for k, i in enumerate(indices) if i in grid_rows]
            if rows:
                grid_outputs[level].append(output[rows])
    return accs, grid_outputs


def _load_models(config: EvaluateConfig, protocol: EvaluationProtocol, device: torch.device,
                 log: Any) -> tuple[list[EvalModel], list[dict[str, str]]]:
    """Build the models named in the config; a style-transfer baseline without HED weights is
    skipped with its reason (a finished training run must not be lost to it), anything else raises."""
    models, skipped, taken = [], [], {STYLE_TRANSFER, ORACLE}
    for source in config.models:
        start = time.perf_counter()
        try:
            if source == STYLE_TRANSFER:
                model = _style_transfer_model(protocol, device, config.style_steps, config.seed)
            elif source == ORACLE:
                model = oracle_model()
            else:
                model = _pipeline_model(source, config.device, config.projections, _model_name(source, taken))
        except ValueError as exc:
            if source != STYLE_TRANSFER:
                raise
            skipped.append({"model": source, "reason": str(exc)})
            log(f"evaluate: skipping {source}: {exc}")
            continue
        model.info["load_seconds"] = round(time.perf_counter() - start, 3)
        models.append(model)
    return models, skipped


def _entry(model: EvalModel, set_name: str, roughness: str, level: str, projection: float | None,
           acc: EntryScores, n: int, metrics: dict[str, Any], fid_label: str | None,
           metric_seconds: float) -> dict[str, Any]:
    return {
        "set": set_name, "model": model.name, "model_path": model.source, "pipeline_type": model.kind,
        "condition": condition_name(roughness), "roughness": roughness, "hint_level": level,
        "projection": projection, "n": n, "metrics": metrics,
        "feature_extractor": fid_label if acc.with_features else None,
        "timing": {"generate_seconds": round(acc.seconds, 4), "ms_per_image": round(1000 * acc.seconds / max(n, 1), 3),
                   "shared_with_other_hint_levels": not model.uses_hints,
                   "metric_seconds": round(metric_seconds, 4)},
    }


def _per_image_rows(entry: dict[str, Any], acc: EntryScores, ids: list[str]) -> list[list[Any]]:
    columns = [acc.per_sample(k) if k in acc.values else [""] * len(ids) for k in PER_IMAGE_KEYS]
    projection = "" if entry["projection"] is None else entry["projection"]
    return [[entry["set"], entry["model"], entry["condition"], entry["hint_level"], projection, image_id,
             *(c[k] for c in columns)] for k, image_id in enumerate(ids)]


def _write_per_image(path: Path, rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["set", "model", "condition", "hint_level", "projection", "image_id", *PER_IMAGE_KEYS])
    for row in rows:
        writer.writerow([f"{v:.6g}" if isinstance(v, (float, np.floating)) else v for v in row])
    atomic_write_text(path, buffer.getvalue())


def _eval_sets(config: EvaluateConfig, protocol: EvaluationProtocol, log: Any) -> list[EvalSet]:
    """The main set, the held-out line style and the real pairs, as configured."""
    display = dataset_display(protocol, config.display_size) if config.display_size else None
    if display is not None and not display.available:
        log(f"evaluate: no scores at {config.display_size} px for {config.data}: {display.reason}")
    sets = [EvalSet(MAIN_SET, "Validation split", protocol, display,
                    note=f"sketches from the dataset ({protocol.extractor}), clean and rough")]
    if config.heldout_lines:
        sets.append(heldout_set(protocol, display))
    if config.pairs:
        pairs = pairs_set(config.pairs, protocol.size, protocol.config, config.display_size)
        if pairs.display is not None and not pairs.display.available:
            log(f"evaluate: no scores at {config.display_size} px for {config.pairs}: {pairs.display.reason}")
        sets.append(pairs)
    return sets


def run_evaluation(config: EvaluateConfig, models: list[EvalModel] | None = None, feature_extractor: Any = None,
                   progress: bool = True) -> dict[str, Any]:
    """Evaluate and write ``metrics.json``, ``per_image.csv``, ``report.md``/``.html``, ``grid.png``
    (and ``grid-<set>.png`` for the held-out lines and the real pairs) and training plots into
    ``config.out`` (and the floors table to ``config.table``). ``models`` / ``feature_extractor``
    override what ``config.models`` / ``config.fid`` would build (tests, notebooks); the floors are added either way unless ``config.floors`` is off. Returns the
    metrics dict."""
    from ..runtime import pick_device
    from .floor_report import write_floor_table
    from .report import plot_training_logs, render_grid, write_report

    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(config.out)
    device = pick_device(config.device)
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda text: None)

    protocol = EvaluationProtocol(config.data, ProtocolConfig(
        seed=config.seed, hint_levels=tuple(config.hint_levels), roughness=tuple(config.roughness),
        hint_downscale=config.hint_downscale, limit=config.limit))
    conditions, levels, n = protocol.config.conditions, protocol.config.hint_levels, len(protocol)
    fid_conditions = {"none" if c == "clean" else c for c in config.fid_conditions} or set(conditions)
    unknown = sorted(fid_conditions - set(conditions))
    if unknown:
        raise ValueError(f"--fid-conditions names {unknown[0]!r}, which is not among the evaluated sketch conditions "
                         f"({', '.join(conditions)})")
    log(f"evaluate: {n} of {protocol.val_total} validation images of {config.data}")

    skipped_models: list[dict[str, str]] = []
    if models is None:
        models, skipped_models = _load_models(config, protocol, device, log)
    if config.floors:
        models = list(models) + floor_models(protocol.training_color_paths(), protocol.size)
    sets = _eval_sets(config, protocol, log)
    fid_info: dict[str, Any] = {}
    if feature_extractor is None:
        feature_extractor, fid_info = feature_extractor_for(config, device)
    real_features = None
    if feature_extractor is not None:
        fid_info = {**feature_extractor.describe(), "label": extractor_label(feature_extractor)}
        log(f"evaluate: FID/KID features: {fid_info['label']}")
        real_features = np.concatenate([feature_extractor(protocol.target_tensor(range(s, min(n, s + config.batch_size))))
                                        for s in range(0, n, config.batch_size)])
    else:
        log(f"evaluate: FID/KID skipped: {fid_info['skipped']}")

    # The main grid shows the first images at one hint level, clean and at the heaviest roughness;
    # every other set (held-out lines, real pairs) gets its own grid of clean sketches, so its scores
    # are read against pictures as well.
    grid_level = "sparse" if "sparse" in levels else levels[-1]
    main_grid_conditions = ["none"] + [r for r in conditions if r != "none"][-1:]

    def grid_conditions(eval_set: EvalSet) -> list[str]:
        return main_grid_conditions if eval_set.main else ["none"]

    grid_columns: dict[tuple[str, str], list[tuple[str, torch.Tensor]]] = {}

    entries: list[dict[str, Any]] = []
    entry_features: dict[int, np.ndarray] = {}  # id(entry) -> its FID features, for the paired gaps
    per_image: list[list[Any]] = []
    for eval_set in sets:
        sp = eval_set.protocol
        # Targets at the sensitivity size, once per set: the denominator of every model's ratio.
        target_rows = torch.cat([small_images(sp.target_tensor(range(k, min(len(sp), k + config.batch_size))))
                                 for k in range(0, len(sp), config.batch_size)])
        prefix = "" if eval_set.main else f"[{eval_set.name}] "
        set_grid_rows = list(range(min(config.grid_rows, len(sp))))
        for model in models:
            for roughness in sp.config.conditions:
                # The slider's effect: each strength's outputs against the weakest strength's.
                weakest: dict[str, torch.Tensor] = {}
                for projection in sorted(model.projections, key=lambda p: -1.0 if p is None else p):
                    # FID only on the main set: the other sets are small and share its real images.
                    with_features = eval_set.main and roughness in fid_conditions
                    accs, grid_outputs = _run_batches(model, roughness, projection, eval_set, config,
                                                      feature_extractor, with_features, device, set_grid_rows)
                    for level in levels:
                        tick = time.perf_counter()
                        metrics = accs[level].summary(real_features if eval_set.main else None, config.seed,
                                                      config.kid_subsets, target_rows)
                        small = accs[level].small_outputs()
                        metrics["projection_change"] = output_change(small, weakest[level]) if level in weakest else None
                        weakest.setdefault(level, small)
                        entry = _entry(model, eval_set.name, roughness, level, projection, accs[level], len(sp),
                                       metrics, fid_info.get("label"), time.perf_counter() - tick)
                        entries.append(entry)
                        if metrics["fid"] is not None and model.name not in FLOOR_NAMES:
                            entry_features[id(entry)] = np.concatenate(accs[level].features)
                        per_image += _per_image_rows(entry, accs[level], sp.ids)
                        log(f"evaluate: {prefix}{model.name} {entry['condition']} hints={level}"
                            f"{'' if projection is None else f' projection={projection:g}'}: "
                            f"SSIM {metrics['ssim_mean']:.4f}"
                            + (f" (at {config.display_size} px {metrics['ssim_display_mean']:.4f})"
                               if metrics["ssim_display_mean"] is not None else "")
                            + (f", sensitivity {metrics['sensitivity']:.3f}" if metrics["sensitivity"] is not None else "")
                            + (f", FID {metrics['fid']:.2f}" if metrics["fid"] is not None else "")
                            + (f", change vs weakest projection {255 * metrics['projection_change']:.1f}/255"
                               if metrics["projection_change"] is not None else "")
                            + f" ({entry['timing']['ms_per_image']:.1f} ms/image)")
                    if roughness in grid_conditions(eval_set) and grid_outputs[grid_level]:
                        label = model.name if projection is None else f"{model.name} p={projection:g}"
                        grid_columns.setdefault((eval_set.name, roughness), []).append(
                            (label, torch.cat(grid_outputs[grid_level])))
    add_deltas(entries)
    if real_features is not None and config.fid_draws:
        add_fid_differences(entries, entry_features, real_features, config.fid_draws, config.seed)

    files: dict[str, Any] = {}
    out.mkdir(parents=True, exist_ok=True)
    for eval_set in sets:
        sp = eval_set.protocol
        rows = list(range(min(config.grid_rows, len(sp))))
        conditions_shown = [r for r in grid_conditions(eval_set) if (eval_set.name, r) in grid_columns]
        if not rows or not conditions_shown:
            continue
        sections = [{"title": f"{'' if eval_set.main else eval_set.title + ': '}{condition_name(r)} sketch, "
                              f"{grid_level} hints",
                     "sketch": sp.sketch_tensor(r, rows), "hint": sp.hint_tensor(grid_level, rows),
                     "target": sp.target_tensor(rows), "columns": grid_columns[(eval_set.name, r)]}
                    for r in conditions_shown]
        name = "grid.png" if eval_set.main else f"grid-{eval_set.name}.png"
        buffer = io.BytesIO()
        render_grid(sections).save(buffer, format="PNG")
        atomic_write_bytes(out / name, buffer.getvalue())
        if eval_set.main:
            files["grid"] = name
        else:
            files.setdefault("set_grids", {})[eval_set.name] = name
    plots = plot_training_logs([Path(p) for p in config.logs], out / "plots") if config.logs else []
    if plots:
        files["plots"] = [p.relative_to(out).as_posix() for p in plots]
    _write_per_image(out / "per_image.csv", per_image)
    files["per_image"] = "per_image.csv"

    result = {
        "format_version": METRICS_FORMAT_VERSION,
        "started": started_at,
        "dataset": {"path": str(Path(config.data).resolve()), "image_size": protocol.size},
        "protocol": protocol.describe(),
        "sets": [eval_set.describe() for eval_set in sets],
        "display_size": config.display_size or None,
        "display_scores": "output upscaled bicubically from its native size to display_size vs the true image at "
                          "that size; clean sketches only",
        "sensitivity": {"distance": f"mean absolute difference on the [0, 1] scale between images area-averaged "
                                    f"to {SENSITIVITY_SIZE}x{SENSITIVITY_SIZE}",
                        "definition": "mean pairwise distance of the outputs / of their targets, same pairs"},
        "floors": [m.name for m in models if m.name in FLOOR_NAMES],
        "generation_seed": f"{config.seed} + index of the batch's first image (batch size {config.batch_size})",
        "feature_extractor": fid_info,
        "psnr_cap_db": PSNR_CAP_DB,
        "line_tolerance_px": 2.0,
        "models": [m.describe() for m in models],
        "skipped_models": skipped_models,
        "entries": entries,
        "hardware": _hardware(device),
        "files": files,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()},
        "total_seconds": round(time.perf_counter() - started, 3),
    }
    result = _json_safe(result)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2))
    write_report(out, result)
    if config.table:
        write_floor_table(Path(config.table), result)
        log(f"evaluate: wrote the model + floors table to {config.table}")
    log(f"evaluate: wrote {out / 'metrics.json'} and {out / 'report.md'}")
    return result


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (strict JSON)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value

