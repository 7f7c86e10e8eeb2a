"""``sketch2anime train CONFIG.toml [--set key=value ...] [--dry-run] [--resume]``.

One TOML file per experiment (``configs/``); ``--set section.key=value`` overrides any setting.
The run folder (``experiment.output_dir``, default ``runs/<name>``) receives::

    config.toml / config.json   the resolved config
    metrics.jsonl               one record per logged step (losses, lr, images/s, time)
    samples/step_NNNNNNN.png    sample grids
    state/                      training state for --resume (weights, EMA, optimisers, RNGs, data position)
    model/                      the exported pipeline folder (Sketch2AnimePipeline.from_pretrained)
    snapshots/step_NNNNNNN/     copies of model/ every train.snapshot_every steps (when set)

Several GPUs or machines (DistributedDataParallel; ``data.batch_size`` is per process)::

    torchrun --nproc_per_node=4 -m sketch2anime.cli train configs/s2a64.toml

Stages are a plain dict ``STAGES`` of name -> ``build(config, engine, run_dir) -> Stage``; a new
stage registers one entry there (see ``loop.Stage`` for what it must provide).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import atomic_write_text, remove_stale_temporaries
from ..config import ConfigError
from .config import ExperimentConfig, experiment_from_dict, experiment_to_dict, load_experiment, to_toml
from .run_lock import RunLock


def _build_autoencoder(config: ExperimentConfig, engine: Any, run_dir: Path) -> Any:
    from .autoencoder_stage import build

    return build(config, engine, run_dir)


def _build_generator(config: ExperimentConfig, engine: Any, run_dir: Path) -> Any:
    from .generator_stage import build_sketch2anime

    return build_sketch2anime(config, engine, run_dir)


def _build_guided(config: ExperimentConfig, engine: Any, run_dir: Path) -> Any:
    from .guided_stage import build

    return build(config, engine, run_dir)


def _build_simple_gan(config: ExperimentConfig, engine: Any, run_dir: Path) -> Any:
    from .generator_stage import build_simple_gan

    return build_simple_gan(config, engine, run_dir)


def _build_pix2pix(config: ExperimentConfig, engine: Any, run_dir: Path) -> Any:
    from .pix2pix_stage import build

    return build(config, engine, run_dir)


def _build_cyclegan(config: ExperimentConfig, engine: Any, run_dir: Path) -> Any:
    from .cyclegan_stage import build

    return build(config, engine, run_dir)


STAGES: dict[str, Callable[[ExperimentConfig, Any, Path], Any]] = {
    "autoencoder": _build_autoencoder,
    "generator": _build_generator,
    "guided": _build_guided,
    "simple_gan": _build_simple_gan,
    "pix2pix": _build_pix2pix,
    "cyclegan": _build_cyclegan,
}

# The pipeline_type each stage's exported model/pipeline.json carries (docs/architecture.md,
# "Names"); only used to point a user who types a pipeline type as the stage to the stage's name.
STAGE_PIPELINE_TYPES = {"autoencoder": "autoencoder", "generator": "sketch2anime", "guided": "guided",
                        "simple_gan": "simple_gan", "pix2pix": "pix2pix", "cyclegan": "cyclegan"}


def check_stage(stage: str) -> None:
    """ConfigError unless ``stage`` names a stage; a pipeline type given instead is named as such."""
    if stage in STAGES:
        return
    hint = next((f" ({stage!r} is the pipeline_type that stage {name!r} exports; write stage = {name!r})"
                 for name, kind in STAGE_PIPELINE_TYPES.items() if kind == stage), "")
    raise ConfigError(f"experiment.stage must be one of {', '.join(sorted(STAGES))}, got {stage!r}{hint}")


# Sections whose change makes saved weights/optimiser state meaningless for --resume.
_FIXED_ON_RESUME = ("experiment.stage", "autoencoder", "generator", "guided_unet", "discriminator", "pix2pix", "cyclegan", "patchgan")


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{name}.")
        elif a != b:
            keys.append(name)
    return keys


def _with_current_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's saved config with every setting added since it was written at its default: settings are
    added with a default that keeps the old behaviour (e.g. ``discriminator.scales = 1``), so such a
    run trained with exactly that. A config that no longer parses is compared as it was saved."""
    try:
        return experiment_to_dict(experiment_from_dict(saved))
    except (ConfigError, TypeError, KeyError):
        return saved


def train_experiment(config: ExperimentConfig, resume: bool = False,
                     callback: Callable[[int], None] | None = None) -> Path:
    """Train one experiment; returns the run folder. ``callback(step)`` runs after every step.
    ``ConfigError`` when another process is training in the same folder (``run_lock.py``)."""
    check_stage(config.experiment.stage)
    run_dir = config.output_dir
    resolved = experiment_to_dict(config)
    # Rank 0 only: the ranks of one torchrun job share the folder by design.
    lock = RunLock(run_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        lock.acquire()
    try:
        return _train_locked(config, run_dir, resolved, resume, callback)
    finally:
        lock.release()


def _train_locked(config: ExperimentConfig, run_dir: Path, resolved: dict[str, Any], resume: bool,
                  callback: Callable[[int], None] | None) -> Path:
    from .loop import has_state, run_training, seed_everything, setup_engine, teardown_engine

    stage_name = config.experiment.stage
    if has_state(run_dir):
        if not resume:
            raise ConfigError(
                f"{run_dir} already holds a training run; pass --resume to continue it, or choose another "
                f"folder (--set experiment.output_dir=...) or delete it to start over"
            )
        saved_path = run_dir / "config.json"
        if saved_path.is_file():
            saved = _with_current_defaults(json.loads(saved_path.read_text(encoding="utf-8")))
            changed = _changed_keys(saved, resolved)
            fixed = [k for k in changed if any(k == f or k.startswith(f + ".") for f in _FIXED_ON_RESUME)]
            if fixed:
                raise ConfigError(f"cannot resume {run_dir} with a different model setup (changed: {', '.join(fixed)})")
            if changed:
                print(f"resuming with changed settings: {', '.join(changed)}", file=sys.stderr)

    engine = setup_engine(config.train)
    try:
        seed_everything(config.experiment.seed + engine.rank)
        stage = STAGES[stage_name](config, engine, run_dir)
        if engine.is_main:
            # A run killed mid-write (SIGKILL, power loss) leaves temporary files; this run owns the folder.
            remove_stale_temporaries(run_dir)
            atomic_write_text(run_dir / "config.toml", to_toml(resolved))
            atomic_write_text(run_dir / "config.json", json.dumps(resolved, indent=2))
        run_training(config, stage, engine, run_dir, resume=resume, callback=callback)
    finally:
        teardown_engine(engine)
    return run_dir


def run_experiment(config_path: str | Path, overrides: list[str] | None = None, dry_run: bool = False,
                   resume: bool = False) -> int:
    """CLI entry: load + validate, print (dry run) or train; returns the exit code."""
    config = load_experiment(config_path, overrides or [])
    check_stage(config.experiment.stage)
    if dry_run:
        resolved = experiment_to_dict(config)
        # An empty output_dir means runs/<name>: print the folder the run would really write to.
        resolved["experiment"]["output_dir"] = str(config.output_dir)
        print(to_toml(resolved), end="")
        return 0
    run_dir = train_experiment(config, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        done = _exported_final(run_dir / "model")
        print(f"{'finished' if done else 'stopped'} {config.experiment.name}: model in {run_dir / 'model'}"
              + ("" if done else " (train.max_minutes; --resume continues)"))
    return 0


def _exported_final(folder: Path) -> bool:
    """Whether the run's last export reached train.steps (a time-limited stop exports ``final: false``)."""
    from ..pipeline_format import PipelineDescription

    try:
        return PipelineDescription.read(folder).training.get("final") is not False
    except (OSError, ValueError):
        return True  # no readable export: nothing to tell
