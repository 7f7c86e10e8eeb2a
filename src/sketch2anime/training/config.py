"""Experiment configuration: one TOML file per experiment under ``configs/``.

Layout (every key optional unless marked; unknown keys are errors)::

    [experiment]  name, stage ("autoencoder" | "generator" | "simple_gan" | ...), output_dir,
                  seed, image_size, autoencoder_dir (stage "generator": the stage-1 run folder),
                  init_generator (stage "guided": a pipeline folder whose generator starts the run),
                  parts (stage "autoencoder": train the 32 px part autoencoder of
                  models/part_guide.py on eye and mouth crops), parts_dir (stage "guided": the
                  model folder of such a run; the guide then gets sharp parts)
    [data]        PairedSketchDataset settings (root is required; nested [data.rough],
                  [data.hints]) + batch_size, num_workers, sample_count, sample_split
    [autoencoder] AutoencoderConfig  (stage "autoencoder")
    [generator]   GeneratorConfig    (stages "generator", "simple_gan")
    [guided_unet] GuidedUNetConfig   (stage "guided": the default model's generator)
    [discriminator] DiscriminatorConfig
    [pix2pix] UNetConfig, [cyclegan] ResnetGeneratorConfig, [patchgan] PatchGANConfig,
    [baseline] BaselineSection (stages "pix2pix", "cyclegan")
    [train]       TrainConfig below

``image_size`` in ``[experiment]`` is copied into every model section that has an ``image_size``
field and does not set it. Relative paths are relative to the working directory; a missing
``output_dir`` means ``runs/<name>``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import ConfigError, apply_overrides, from_dict, load_config_file, to_dict
from ..data.dataset import DatasetConfig
from ..models.autoencoder import AutoencoderConfig
from ..models.cyclegan import ResnetGeneratorConfig
from ..models.denoise import DenoiseConfig
from ..models.discriminator import DiscriminatorConfig
from ..models.generator import GeneratorConfig
from ..models.guided_unet import GuidedUNetConfig
from ..models.patchgan import PatchGANConfig
from ..models.pix2pix import UNetConfig
from .d_augment import DAugmentConfig
from .losses import ADVERSARIAL_LOSSES

MAX_STEPS = 10**9  # far beyond any run of this project (its configs train 10**3-10**4 steps)


@dataclass(frozen=True)
class ExperimentSection:
    name: str = "experiment"
    stage: str = "autoencoder"
    output_dir: str = ""
    seed: int = 0
    image_size: int = 64
    autoencoder_dir: str = ""
    init_generator: str = ""
    parts: bool = False
    parts_dir: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\"):
            raise ConfigError(f"experiment.name must be a plain folder name, got {self.name!r}")
        if self.image_size < 8:
            raise ConfigError(f"experiment.image_size must be at least 8, got {self.image_size}")


@dataclass(frozen=True)
class DataConfig(DatasetConfig):
    """The dataset's own settings plus how the trainer batches it."""

    batch_size: int = 16
    num_workers: int = 0
    sample_count: int = 8
    sample_split: str = "val"

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be at least 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be 0 or more, got {self.num_workers}")
        if self.sample_count < 1:
            raise ConfigError(f"data.sample_count must be at least 1, got {self.sample_count}")

    def dataset_config(self, **changes: Any) -> DatasetConfig:
        """The plain DatasetConfig part (optionally with e.g. ``split="val"``)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(DatasetConfig)}
        values.update(changes)
        return DatasetConfig(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, losses, logging cadence and engine settings.

    Loss weights: ``l1_weight`` (output vs real image), ``adversarial_weight`` with
    ``adversarial`` = "hinge" | "nonsaturating", ``feature_matching_weight`` (D features),
    ``perceptual_weight`` (HED-VGG features, needs ``sketch2anime weights hed``), ``hint_weight``
    (masked L1 at hint resolution), ``ssim_weight`` (1 - SSIM at the model's size and at the panel's
    2x display size: penalises texture where the true image is flat), ``flatness_weight`` (the
    output's excess colour variance over the true image's inside each region a sketch's lines
    enclose (open to the edge or not), regions of at least ``flatness_min_region`` × the picture;
    guided stage only; the regions
    of the ``flatness_regions`` = "clean" sketch the picture was drawn from, or of the "input" the
    generator saw, rough or not),
    ``flip_consistency_weight`` (guided stage only): L1 between the picture and the mean of it and
    the mirror image of the picture of the mirrored inputs (no gradient through the mirrored pass),
    so one pass learns the calmer picture of the inference-time flip average.
    ``denoise`` ("DIAMETER,SIGMA_COLOUR,SIGMA_SPACE", "" for none; guided stage only): the
    pipeline's bilateral clean-up (``models/denoise.py``) applied to the generator's picture before
    every loss and written into the exported ``pipeline.json``, so the losses judge the picture the
    user is shown, not the raw one.
    ``r1_gamma`` (R1 on real images every ``r1_every`` steps), ``d_augment`` (DiffAugment: shifts
    and cutout of what D sees, real and fake alike; ``training/d_augment.py``).
    Stage 1 feeds a rough sketch instead of the clean one with probability ``rough_fraction``.
    ``threads``: CPU threads for torch (0 keeps torch's default; 1 is fastest on a busy machine).
    ``snapshot_every``: also keep the exported model of every such step as ``snapshots/step_NNNNNNN/``
    (0: only the latest, in ``model/``), so a long run's checkpoints can be scored together and
    the one to ship picked by the evaluation, not by the last step.
    ``max_minutes``: stop after this much wall-clock training time (0: no limit), as a killed run
    would, but cleanly: state saved and the model exported (not marked final), so ``--resume``
    continues to ``steps``. For a lent GPU with a fixed time, or a CPU run that must end with the session.
    Stage 2 draws each sample's latent from the clean sketch, the rough sketch, or a projection of
    the rough sketch's latent, in proportions ``latent_mix`` = (clean, rough, projected), with
    strength uniform in ``projection_strength`` and ``projection_k`` neighbours.
    """

    steps: int = 1000
    lr: float = 2e-4
    lr_discriminator: float | None = None
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: float | None = None
    ema_decay: float | None = None

    l1_weight: float = 10.0
    adversarial: Literal["hinge", "nonsaturating"] = "hinge"
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 10.0
    perceptual_weight: float = 0.0
    perceptual_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")
    hint_weight: float = 10.0
    ssim_weight: float = 0.0
    flatness_weight: float = 0.0
    flatness_min_region: float = 0.005
    flatness_regions: Literal["clean", "input"] = "clean"
    flip_consistency_weight: float = 0.0
    denoise: str = ""
    r1_gamma: float = 0.0
    r1_every: int = 16
    d_augment: DAugmentConfig = field(default_factory=DAugmentConfig)

    rough_fraction: float = 0.5
    latent_mix: tuple[float, float, float] = (0.25, 0.25, 0.5)
    projection_k: int = 10
    projection_strength: tuple[float, float] = (0.2, 1.0)
    sample_projection: float = 0.5

    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    snapshot_every: int = 0
    max_minutes: float = 0.0
    progress: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int = 0
    hed_weights: str = ""

    def __post_init__(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
                raise ConfigError(f"train.{name} must be {'0 or more' if allow_zero else 'positive'}, got {value!r}")

        for name in ("steps", "lr", "log_every", "sample_every", "checkpoint_every", "r1_every", "projection_k"):
            positive(name)
        for name in ("weight_decay", "warmup_steps", "l1_weight", "adversarial_weight", "feature_matching_weight",
                     "perceptual_weight", "hint_weight", "ssim_weight", "flatness_weight", "flip_consistency_weight",
                     "r1_gamma", "snapshot_every", "max_minutes"):
            positive(name, allow_zero=True)
        # Counts of steps beyond any real run (1e20) are typos; they would also overflow int64 tensors.
        for name in ("steps", "warmup_steps", "log_every", "sample_every", "checkpoint_every", "snapshot_every",
                     "r1_every"):
            if getattr(self, name) > MAX_STEPS:
                raise ConfigError(f"train.{name} must be at most {MAX_STEPS:,}, got {getattr(self, name)!r}")
        if not 0.0 <= self.flatness_min_region <= 1.0:
            raise ConfigError(f"train.flatness_min_region must be a fraction of the picture in [0, 1], "
                              f"got {self.flatness_min_region!r}")
        if self.denoise:
            try:
                DenoiseConfig.from_text(self.denoise)
            except ValueError as exc:
                raise ConfigError(f"train.denoise: {exc}") from None
        if self.threads < 0:
            raise ConfigError(f"train.threads must be 0 (torch's default) or more, got {self.threads}")
        if self.lr_discriminator is not None:
            positive("lr_discriminator")
        if self.grad_clip is not None:
            positive("grad_clip")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must lie in (0, 1), got {self.ema_decay}")
        if self.adversarial not in ADVERSARIAL_LOSSES:
            raise ConfigError(f"train.adversarial must be one of {ADVERSARIAL_LOSSES}, got {self.adversarial!r}")
        if not 0.0 <= self.rough_fraction <= 1.0:
            raise ConfigError(f"train.rough_fraction must lie in [0, 1], got {self.rough_fraction}")
        if len(self.latent_mix) != 3 or min(self.latent_mix) < 0 or sum(self.latent_mix) <= 0:
            raise ConfigError(f"train.latent_mix must be 3 non-negative weights (clean, rough, projected) "
                              f"with a positive sum, got {list(self.latent_mix)}")
        low_high = self.projection_strength
        if len(low_high) != 2 or not 0.0 <= low_high[0] <= low_high[1] <= 1.0:
            raise ConfigError(f"train.projection_strength must be [low, high] with 0 <= low <= high <= 1, "
                              f"got {list(low_high)}")
        if not 0.0 <= self.sample_projection <= 1.0:
            raise ConfigError(f"train.sample_projection must lie in [0, 1], got {self.sample_projection}")


@dataclass(frozen=True)
class BaselineSection:
    """[baseline]: Pix2Pix / CycleGAN stage settings (see training/pix2pix_stage.py, cyclegan_stage.py).

    jitter_scale: random-crop augmentation, resize to ``jitter_scale`` x size then crop back (paper
    286/256 ~ 1.12; 1 = off). cycle_weight: CycleGAN's lambda. pool_size: CycleGAN's history of
    generated images shown to the discriminators (0 = off).
    """

    jitter_scale: float = 1.12
    cycle_weight: float = 10.0
    pool_size: int = 50

    def __post_init__(self) -> None:
        if not 1.0 <= self.jitter_scale <= 2.0:
            raise ConfigError(f"baseline.jitter_scale must lie in [1, 2], got {self.jitter_scale}")
        if self.cycle_weight < 0:
            raise ConfigError(f"baseline.cycle_weight must be 0 or more, got {self.cycle_weight}")
        if self.pool_size < 0:
            raise ConfigError(f"baseline.pool_size must be 0 or more, got {self.pool_size}")


@dataclass(frozen=True)
class ExperimentConfig:
    experiment: ExperimentSection
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    autoencoder: AutoencoderConfig | None = None
    generator: GeneratorConfig | None = None
    guided_unet: GuidedUNetConfig | None = None
    discriminator: DiscriminatorConfig | None = None
    pix2pix: UNetConfig | None = None
    cyclegan: ResnetGeneratorConfig | None = None
    patchgan: PatchGANConfig | None = None
    baseline: BaselineSection = field(default_factory=BaselineSection)

    def __post_init__(self) -> None:
        # Only the guided stage reads these: elsewhere they would be silently ignored.
        for name, off in (("flatness_weight", "0"), ("flip_consistency_weight", "0"), ("denoise", '""')):
            if getattr(self.train, name) and self.experiment.stage != "guided":
                raise ConfigError(f"train.{name} is only used by the guided stage, not by stage "
                                  f"{self.experiment.stage!r}: set it to {off}")

    @property
    def output_dir(self) -> Path:
        return Path(self.experiment.output_dir or Path("runs") / self.experiment.name)


MODEL_SECTIONS = {"autoencoder": AutoencoderConfig, "generator": GeneratorConfig, "guided_unet": GuidedUNetConfig,
                  "discriminator": DiscriminatorConfig,
                  "pix2pix": UNetConfig, "cyclegan": ResnetGeneratorConfig}


def experiment_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a nested dict (TOML content with overrides applied) into an ExperimentConfig."""
    raw = json.loads(json.dumps(raw))
    for section in ("experiment", "data"):
        if not isinstance(raw.get(section), dict):
            raise ConfigError(f"the config needs an [{section}] section")
    image_size = raw["experiment"].get("image_size", ExperimentSection.image_size)
    for section, cls in MODEL_SECTIONS.items():
        value = raw.get(section)
        if isinstance(value, dict) and "image_size" in {f.name for f in dataclasses.fields(cls)}:
            value.setdefault("image_size", image_size)
    try:
        return from_dict(ExperimentConfig, raw)
    except ConfigError:
        raise
    except ValueError as exc:  # a component config's own validation
        raise ConfigError(str(exc)) from None


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read ``path`` (TOML, resolving its ``base``), apply ``section.key=value`` overrides, validate."""
    raw = apply_overrides(load_config_file(path), list(overrides))
    try:
        return experiment_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def experiment_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain dict of the config with unset (None) values dropped, ready for TOML or JSON."""
    def prune(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: prune(v) for k, v in value.items() if v is not None}
        return value

    return prune(to_dict(config))


# ---------------------------------------------------------------------------------------------
# TOML output (tomllib reads only; the resolved config is simple enough to write by hand)

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write a {type(value).__name__} to TOML")


def to_toml(data: dict[str, Any]) -> str:
    """Nested dict -> TOML text (tables for nested dicts, inline values otherwise)."""
    lines: list[str] = []

    def emit(table: dict[str, Any], prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{key} = {_toml_value(value)}")
        if prefix and (scalars or not tables):
            lines.append("")
        for key, value in tables.items():
            emit(value, f"{prefix}.{key}" if prefix else key)

    emit(data, "")
    return "\n".join(lines).rstrip() + "\n"
