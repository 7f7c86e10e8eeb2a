"""Stage 2: the hint generator against a PatchGAN discriminator ("generator" and "simple_gan").

Stage "generator" (Sketch2Anime): the generator is conditioned on a latent of the frozen stage-1
encoder. Per sample the latent is that of the clean sketch, of the rough sketch, or the rough
sketch's latent *projected* towards the bank (k nearest training latents, sum-to-one weights,
random strength), in the proportions ``train.latent_mix``, so the generator sees the kind of
latents it gets at inference. A training sample's own bank entries are excluded from its
neighbours (otherwise projection would return the latent unchanged). With
``generator.use_decoded_sketch`` the decoder's sketch of that latent (no gradient) also enters.

Stage "simple_gan": the generator is conditioned on the (rough or clean) sketch itself; no
autoencoder, no projection.

Losses. D: hinge (or non-saturating) on (image, clean sketch, hint) for real and fake pairs, plus
lazy R1 on reals. G: adversarial + L1 to the real image + D feature matching + optional HED-VGG
perceptual loss + the masked hint loss (output at hint resolution vs hint colour where hinted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, load_model
from ..config import ConfigError
from ..hint_format import hint_to_display
from ..models.autoencoder import SketchAutoencoder
from ..models.discriminator import DiscriminatorConfig, make_discriminator
from ..models.generator import GeneratorConfig, HintGenerator
from ..models.projection import LatentBank, project
from ..pipeline_format import BANK_STEM, PIPELINE_FILE, PipelineDescription, find_pipeline_folder, write_pipeline_folder
from .autoencoder_stage import make_optimizer
from .config import ExperimentConfig
from .gan_common import ConditionalGANUpdate, GANStageBase, set_requires_grad
from .loop import BatchStream, Engine, fixed_sample_batch, training_dataset
from .schedule import EMA
from .losses import PerceptualLoss


def resolve_autoencoder_dir(path: str) -> Path:
    """Stage-1 run folder (or its ``model/``) -> the pipeline folder holding autoencoder/ + bank."""
    if not path:
        raise ConfigError("stage 'generator' needs experiment.autoencoder_dir: the stage-1 run folder "
                          "(train it first with an autoencoder config, e.g. configs/ae64.toml)")
    folder = find_pipeline_folder(path)
    if folder is None:
        raise ConfigError(f"experiment.autoencoder_dir {path} holds no trained autoencoder "
                          f"(no {PIPELINE_FILE}); finish the stage-1 run first")
    if not (folder / "autoencoder").is_dir() or not (folder / f"{BANK_STEM}.json").is_file():
        raise ConfigError(f"{folder} lacks autoencoder/ or {BANK_STEM}.json; it is not a finished stage-1 export")
    return folder


class GeneratorStage(GANStageBase, ConditionalGANUpdate):
    def __init__(self, config: ExperimentConfig, engine: Engine, run_dir: Path, mode: str) -> None:
        if mode not in ("sketch2anime", "simple_gan"):
            raise ValueError(f"unknown generator stage mode {mode!r}")
        self.config, self.engine, self.run_dir, self.mode = config, engine, run_dir, mode
        train, size = config.train, config.experiment.image_size
        wanted = "latent" if mode == "sketch2anime" else "sketch"
        gen_cfg = config.generator or GeneratorConfig(image_size=size, conditioning=wanted,
                                                      hint_downscale=config.data.hints.downscale)
        if gen_cfg.conditioning != wanted:
            raise ConfigError(f"stage {config.experiment.stage!r} needs generator.conditioning = {wanted!r}, "
                              f"got {gen_cfg.conditioning!r}")
        if gen_cfg.image_size != size:
            raise ConfigError(f"generator.image_size {gen_cfg.image_size} differs from experiment.image_size {size}")
        if gen_cfg.hint_downscale != config.data.hints.downscale:
            raise ConfigError(f"generator.hint_downscale {gen_cfg.hint_downscale} differs from "
                              f"data.hints.downscale {config.data.hints.downscale}")
        disc_cfg = config.discriminator or DiscriminatorConfig(image_size=size)
        if disc_cfg.image_size != size:
            raise ConfigError(f"discriminator.image_size {disc_cfg.image_size} differs from experiment.image_size {size}")
        device = engine.device

        self.autoencoder: SketchAutoencoder | None = None
        self.bank: LatentBank | None = None
        self.ae_folder: Path | None = None
        if mode == "sketch2anime":
            self.ae_folder = resolve_autoencoder_dir(config.experiment.autoencoder_dir)
            try:
                ae = load_model(self.ae_folder / "autoencoder", expected_type="sketch_autoencoder")
            except CheckpointError as exc:
                raise ConfigError(f"experiment.autoencoder_dir: {exc}") from None
            if ae.config.image_size != size:
                raise ConfigError(f"the autoencoder in {self.ae_folder} is for {ae.config.image_size}px images, "
                                  f"this experiment is {size}px")
            if ae.config.latent_dim != gen_cfg.latent_dim:
                raise ConfigError(f"generator.latent_dim {gen_cfg.latent_dim} must equal the autoencoder's "
                                  f"latent_dim {ae.config.latent_dim} (set generator.latent_dim = {ae.config.latent_dim})")
            self.autoencoder = ae.to(device).eval()
            set_requires_grad(self.autoencoder, False)
            self.bank = LatentBank.load(self.ae_folder / BANK_STEM)
            self.rows_of: dict[str, list[int]] = {}
            for row, bank_id in enumerate(self.bank.ids):
                self.rows_of.setdefault(bank_id.split("/", 1)[0], []).append(row)

        self.perceptual: PerceptualLoss | None = None
        if train.perceptual_weight > 0:
            from ..weights import load_pretrained_hed  # raises MissingWeightsError with the fix

            self.perceptual = PerceptualLoss(load_pretrained_hed(train.hed_weights or None),
                                             tuple(train.perceptual_layers)).to(device)

        self.G = HintGenerator(gen_cfg).to(device)
        self.D = make_discriminator(disc_cfg).to(device)
        self.g_net, self.d_net = engine.wrap(self.G), engine.wrap(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), config, train.lr)
        self.opt_d = make_optimizer(self.D.parameters(), config, train.lr_discriminator or train.lr)
        self.ema = EMA(self.G, train.ema_decay) if train.ema_decay else None
        self.generator = torch.Generator().manual_seed(config.experiment.seed + 2 + 7919 * engine.rank)
        self.stream = BatchStream(training_dataset(config), config.data.batch_size, config.experiment.seed,
                                  engine, config.data.num_workers)
        self.samples = fixed_sample_batch(config, engine) if engine.is_main else None
        self.step = 0

    # ---- conditioning -----------------------------------------------------------------------

    def _project_excluding(self, z: torch.Tensor, ids: list[str], strengths: torch.Tensor) -> torch.Tensor:
        """Blend each latent towards the bank manifold built from neighbours of *other* images."""
        assert self.bank is not None
        exclude = [set(self.rows_of.get(image_id, ())) for image_id in ids]
        out = project(z.detach().float().cpu(), self.bank, k=self.config.train.projection_k,
                      strength=strengths.to(torch.float64), exclude=exclude)
        return out.to(z.device, z.dtype)

    @torch.no_grad()
    def condition(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(cond, generator sketch input) for a training batch, with this stage's random mix."""
        clean, rough = batch["sketch"], batch["rough_sketch"]
        n, train = clean.shape[0], self.config.train
        if self.mode == "simple_gan":
            use_rough = torch.rand(n, generator=self.generator) < train.rough_fraction
            return torch.where(use_rough.to(clean.device)[:, None, None, None], rough, clean), None
        assert self.autoencoder is not None
        mix = torch.tensor(train.latent_mix, dtype=torch.float64)
        choice = torch.multinomial(mix, n, replacement=True, generator=self.generator)  # 0 clean 1 rough 2 proj
        low, high = train.projection_strength
        strengths = low + (high - low) * torch.rand(n, generator=self.generator)
        source = torch.where((choice == 0).to(clean.device)[:, None, None, None], clean, rough)
        z = self.autoencoder.encode(source).float()
        projected = (choice == 2).nonzero().flatten().tolist()
        if projected:
            ids = [str(batch["id"][i]) for i in projected]
            z[projected] = self._project_excluding(z[projected], ids, strengths[projected])
        sketch = self.autoencoder.decode_sketch(z) if self.G.config.use_decoded_sketch else None
        return z, sketch

    # ---- loop interface ---------------------------------------------------------------------

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        image, hint, clean = batch["image"], batch["hint"], batch["sketch"]
        cond, g_sketch = self.condition(batch)
        d_sketch, d_hint = self.d_inputs(clean, hint)
        self.G.train()
        self.D.train()
        with self.engine.autocast():
            fake = self.g_net(cond, hint, g_sketch)
        losses = self.discriminator_update(image, fake, d_sketch, d_hint, step)
        losses.update(self.generator_update(image, fake, d_sketch, d_hint, hint, step))
        self.step = step + 1
        return losses

    def saved_networks(self) -> dict[str, torch.nn.Module]:
        return {"generator_model": self.G, "discriminator": self.D}

    # ---- samples and export -----------------------------------------------------------------

    @torch.inference_mode()
    def sample_columns(self) -> list[torch.Tensor]:
        """sketch (rough) | hint | projected sketch (sketch2anime only) | output | target."""
        batch = self.samples
        rough, hint, image = batch["rough_sketch"], batch["hint"], batch["image"]
        generator = self.eval_generator()
        was_training = generator.training
        generator.eval()
        size = image.shape[-1]
        if self.mode == "simple_gan":
            output = generator(rough, hint)
            columns = [rough, hint_to_display(hint, size), output, image]
        else:
            assert self.autoencoder is not None and self.bank is not None
            z = self.autoencoder.encode(rough).float()
            t = self.config.train.sample_projection
            if t > 0:
                z = project(z.cpu(), self.bank, k=self.config.train.projection_k, strength=t).to(z.device)
            projected = self.autoencoder.decode_sketch(z)
            output = generator(z, hint, projected if generator.config.use_decoded_sketch else None)
            columns = [rough, hint_to_display(hint, size), projected, output, image]
        generator.train(was_training)
        return columns

    def export(self, folder: Path, final: bool) -> None:
        """The self-contained pipeline folder (AE and bank copied in for sketch2anime)."""
        generator = self.eval_generator()
        meta = {"experiment": self.config.experiment.name, "step": self.step}
        models: dict[str, Any] = {"generator": generator}
        bank, latent_dim = None, None
        if self.mode == "sketch2anime":
            assert self.ae_folder is not None and self.autoencoder is not None
            models["autoencoder"] = self.ae_folder / "autoencoder"  # copied only when it differs
            bank = self.ae_folder / BANK_STEM
            latent_dim = self.autoencoder.config.latent_dim
            meta["autoencoder"] = PipelineDescription.read(self.ae_folder).training
        description = PipelineDescription(
            self.mode, self.config.experiment.image_size, self.G.config.hint_downscale, latent_dim=latent_dim,
            projection_k=self.config.train.projection_k,
            training={**meta, "dataset": str(self.config.data.root), "final": final},
        )
        write_pipeline_folder(folder, description, models, bank=bank, meta={"generator": meta})


def build_sketch2anime(config: ExperimentConfig, engine: Engine, run_dir: Path) -> GeneratorStage:
    return GeneratorStage(config, engine, run_dir, "sketch2anime")


def build_simple_gan(config: ExperimentConfig, engine: Engine, run_dir: Path) -> GeneratorStage:
    return GeneratorStage(config, engine, run_dir, "simple_gan")
