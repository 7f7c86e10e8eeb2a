"""Stage "guided": the Sketch2Anime guided U-Net on a frozen sketch autoencoder.

Per training sample (N images of side S, the autoencoder at its own side A <= S):

* the *user sketch* is the dataset's ``rough_sketch`` (roughened, partial and restyled with the
  data section's probabilities, else the clean sketch);
* the latent ``z`` is, in the proportions ``train.latent_mix`` = (clean, user, projected): the
  clean sketch's latent (the guide then shows the true forms, which teaches the generator to take
  missing or rough parts from the guide), the user sketch's latent (what inference gives at
  t = 0), or the user latent projected towards the bank with a random strength in
  ``train.projection_strength`` (what inference gives at t > 0; the image's own bank rows are
  excluded, or projection would return the true sketch);
* the *guide* is the autoencoder's decoding of ``z`` upsampled to S (``models/guide.py``).

The generator sees user sketch + guide + hint (+ z). Losses: L1 to the real image, the masked hint
loss, hinge GAN against a PatchGAN that judges (image, clean sketch, hint), discriminator feature
matching, optional HED-VGG perceptual loss and lazy R1. Augmentation beyond the dataset's flips:
Pix2Pix-style random jitter (``baseline.jitter_scale``) shared by image, sketches and hint.

The latent bank is built once from the training set's clean sketches (all extractors) with the
frozen encoder, saved in the run folder and reused on resume; the export is a complete pipeline
folder (pipeline_type "guided") with 16 px colour thumbnails of the training images
(``data/palettes.py``), which Seed and Variations borrow colour schemes from.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, load_model
from ..config import ConfigError
from ..data.palettes import PaletteBank
from ..data.regions import region_labels
from ..hint_format import hint_to_display, hint_upsampled, resize_hint
from ..models.denoise import DenoiseConfig, bilateral_denoise
from ..models.discriminator import DiscriminatorConfig, make_discriminator
from ..models.guide import encode_sketch, guide_from_latent
from ..models.guided_unet import GuidedUNet, GuidedUNetConfig, recentre_latent_modulation
from ..models.part_guide import PartGuide, guide_with_parts
from ..models.projection import LatentBank, project
from ..pipeline_format import (
    BANK_STEM,
    PALETTE_STEM,
    PipelineDescription,
    has_parts,
    part_bank_stem,
    read_parts_folder,
    write_parts_folder,
    write_pipeline_folder,
)
from .autoencoder_stage import encode_training_parts, encode_training_sketches, make_optimizer
from .config import ExperimentConfig
from .gan_common import ConditionalGANUpdate, GANStageBase, set_requires_grad
from .generator_stage import resolve_autoencoder_dir
from .loop import BatchStream, Engine, fixed_sample_batch, training_dataset
from .schedule import EMA
from .losses import PerceptualLoss
from .pix2pix_stage import random_jitter

PIPELINE_TYPE = "guided"


class GuidedStage(GANStageBase, ConditionalGANUpdate):
    def __init__(self, config: ExperimentConfig, engine: Engine, run_dir: Path) -> None:
        self.config, self.engine, self.run_dir = config, engine, run_dir
        train, size = config.train, config.experiment.image_size
        device = engine.device
        self.ae_folder = resolve_autoencoder_dir(config.experiment.autoencoder_dir)
        try:
            ae = load_model(self.ae_folder / "autoencoder", expected_type="sketch_autoencoder")
        except CheckpointError as exc:
            raise ConfigError(f"experiment.autoencoder_dir: {exc}") from None
        if size % ae.config.image_size != 0:
            raise ConfigError(f"the autoencoder in {self.ae_folder} works at {ae.config.image_size}px; the "
                              f"experiment's {size}px must be a whole multiple of that")
        g_cfg = config.guided_unet or GuidedUNetConfig(image_size=size, hint_downscale=config.data.hints.downscale,
                                                       latent_dim=ae.config.latent_dim)
        if g_cfg.image_size != size:
            raise ConfigError(f"guided_unet.image_size {g_cfg.image_size} differs from experiment.image_size {size}")
        if g_cfg.hint_downscale != config.data.hints.downscale:
            raise ConfigError(f"guided_unet.hint_downscale {g_cfg.hint_downscale} differs from "
                              f"data.hints.downscale {config.data.hints.downscale}")
        if g_cfg.latent_dim not in (0, ae.config.latent_dim):
            raise ConfigError(f"guided_unet.latent_dim must be 0 or the autoencoder's {ae.config.latent_dim}, "
                              f"got {g_cfg.latent_dim}")
        disc_cfg = config.discriminator or DiscriminatorConfig(image_size=size)
        if disc_cfg.image_size != size:
            raise ConfigError(f"discriminator.image_size {disc_cfg.image_size} differs from experiment.image_size {size}")

        self.autoencoder = ae.to(device).eval()
        set_requires_grad(self.autoencoder, False)
        self.stream = BatchStream(training_dataset(config), config.data.batch_size, config.experiment.seed,
                                  engine, config.data.num_workers)
        self.bank = self._load_or_build_bank()
        self.rows_of: dict[str, set[int]] = {}
        for row, bank_id in enumerate(self.bank.ids):
            self.rows_of.setdefault(bank_id.split("/", 1)[0], set()).add(row)
        self.parts, self.part_banks = self._load_parts(config.experiment.parts_dir)

        self.perceptual: PerceptualLoss | None = None
        if train.perceptual_weight > 0:
            from ..weights import load_pretrained_hed  # raises MissingWeightsError with the fix

            self.perceptual = PerceptualLoss(load_pretrained_hed(train.hed_weights or None),
                                             tuple(train.perceptual_layers)).to(device)
        self.G = GuidedUNet(g_cfg)
        if config.experiment.init_generator:
            initial = initial_generator(config.experiment.init_generator, g_cfg)
            old_mean = foreign_latent_mean(config.experiment.init_generator, self.autoencoder)
            if old_mean is not None:
                recentre_latent_modulation(initial, old_mean)
                if engine.is_main:
                    print(f"init_generator was trained on another autoencoder than {self.ae_folder}: "
                          "its latent modulation starts at its bank's mean latent and relearns z")
            self.G.load_state_dict(initial.state_dict())
        self.G.to(device)
        self.D = make_discriminator(disc_cfg).to(device)
        if engine.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.g_net, self.d_net = engine.wrap(self.G), engine.wrap(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), config, train.lr)
        self.opt_d = make_optimizer(self.D.parameters(), config, train.lr_discriminator or train.lr)
        self.ema = EMA(self.G, train.ema_decay) if train.ema_decay else None
        self.denoise = DenoiseConfig.from_text(train.denoise) if train.denoise else None
        self.generator = torch.Generator().manual_seed(config.experiment.seed + 5 + 7919 * engine.rank)
        self.samples = fixed_sample_batch(config, engine) if engine.is_main else None
        self.step = 0

    def _load_or_build_bank(self) -> LatentBank:
        stem = self.run_dir / "bank" / BANK_STEM
        if stem.with_suffix(".json").is_file():
            return LatentBank.load(stem)
        bank = encode_training_sketches(self.autoencoder, self.stream.dataset, self.engine.device)
        if self.engine.is_main:
            bank.save(stem)
        return bank

    def _load_parts(self, parts_dir: str) -> tuple[PartGuide | None, dict[str, LatentBank]]:
        """The frozen part guide of ``experiment.parts_dir`` and its banks over this run's dataset
        (built once, kept in ``RUN/bank/parts/``, rows in the whole-face bank's order)."""
        if not parts_dir:
            return None, {}
        folder = Path(parts_dir).expanduser()
        if not has_parts(folder) and has_parts(folder / "model"):
            folder = folder / "model"
        if not has_parts(folder):
            raise ConfigError(f"experiment.parts_dir {parts_dir} holds no parts/ folder: train one with "
                              "configs/ae_parts.toml and pass its model folder")
        try:
            layout, part_ae, _ = read_parts_folder(folder, need_banks=False)
        except CheckpointError as exc:
            raise ConfigError(f"experiment.parts_dir: {exc}") from None
        self.parts_folder = folder
        parts = PartGuide(layout, part_ae).to(self.engine.device).eval()
        set_requires_grad(parts, False)
        cache = self.run_dir / "bank"
        if all(part_bank_stem(cache, name).with_suffix(".json").is_file() for name in layout.names):
            banks = {name: LatentBank.load(part_bank_stem(cache, name)) for name in layout.names}
        else:
            banks = encode_training_parts(parts, self.stream.dataset, self.engine.device)
            if self.engine.is_main:
                write_parts_folder(cache, layout, part_ae, banks)
        for name, bank in banks.items():
            if bank.ids != self.bank.ids:
                raise ConfigError(f"the part bank {name!r} in {cache} does not match this run's sketches; "
                                  "delete RUN/bank and start again")
        return parts, banks

    # ---- conditioning -----------------------------------------------------------------------

    @torch.no_grad()
    def condition(self, clean: torch.Tensor, user: torch.Tensor, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(z (N, D), guide (N, 1, S, S)) with this stage's random mix of latent sources."""
        n, train = clean.shape[0], self.config.train
        mix = torch.tensor(train.latent_mix, dtype=torch.float64)
        choice = torch.multinomial(mix, n, replacement=True, generator=self.generator)  # 0 clean, 1 user, 2 projected
        low, high = train.projection_strength
        strengths = low + (high - low) * torch.rand(n, generator=self.generator, dtype=torch.float64)
        source = torch.where((choice == 0).to(clean.device)[:, None, None, None], clean, user)
        z = encode_sketch(self.autoencoder, source)
        rows = (choice == 2).nonzero().flatten().tolist()
        if rows:
            exclude = [self.rows_of.get(ids[i], set()) for i in rows]
            projected = project(z[rows].cpu(), self.bank, k=train.projection_k, strength=strengths[rows],
                                exclude=exclude)
            z[rows] = projected.to(z.device, z.dtype)
        guide = guide_from_latent(self.autoencoder, z, clean.shape[-1])
        if self.parts is not None:
            part_strength = torch.where(choice == 2, strengths, torch.zeros_like(strengths))
            guide = guide_with_parts(self.parts, self.part_banks, source, guide, part_strength, train.projection_k,
                                     exclude=[self.rows_of.get(i, set()) for i in ids])
        return z, guide

    def _jitter(self, image: torch.Tensor, clean: torch.Tensor, user: torch.Tensor,
                hint: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scale = self.config.baseline.jitter_scale
        if scale <= 1.0:
            return image, clean, user, hint
        size, hint_size = image.shape[-1], hint.shape[-1]
        image, clean, user, full = random_jitter(
            [(image, "bilinear"), (clean, "bilinear"), (user, "bilinear"), (hint_upsampled(hint, size), "nearest")],
            scale, self.generator)
        small = resize_hint(full, hint_size)
        mask = (small[:, 3:4] >= 0.5).to(small.dtype)  # hints stay binary, as users draw them
        return image, clean, user, torch.cat([small[:, :3] * mask, mask], dim=1)

    # ---- loop interface ---------------------------------------------------------------------

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        image, clean, user, hint = self._jitter(batch["image"], batch["sketch"], batch["rough_sketch"], batch["hint"])
        z, guide = self.condition(clean, user, [str(i) for i in batch["id"]])
        latent = z if self.G.config.latent_dim > 0 else None
        d_sketch, d_hint = self.d_inputs(clean, hint)
        self.G.train()
        self.D.train()
        with self.engine.autocast():
            fake = self.g_net(self.as_input(user), self.as_input(guide), hint, latent)
        fake = self.shown(fake)
        losses = self.discriminator_update(image, fake, d_sketch, d_hint, step)
        regions = None
        train = self.config.train
        if train.flatness_weight > 0:
            # The true picture's colours follow the clean lines; a rough sketch's regions straddle them.
            lines = clean if train.flatness_regions == "clean" else user
            regions = region_labels(lines, train.flatness_min_region)
        mirrored = None
        if train.flip_consistency_weight > 0:
            with torch.no_grad(), self.engine.autocast():
                mirrored = self.g_net(self.as_input(user.flip(-1)), self.as_input(guide.flip(-1)), hint.flip(-1),
                                      latent)
            mirrored = self.shown(mirrored.float()).flip(-1)
        losses.update(self.generator_update(image, fake, d_sketch, d_hint, hint, step, regions, mirrored))
        self.step = step + 1
        return losses

    def shown(self, picture: torch.Tensor) -> torch.Tensor:
        """The generator's ``(N, 3, S, S)`` picture as the exported pipeline shows it: through the
        ``train.denoise`` clean-up when set (differentiable, so the losses train through it)."""
        return picture if self.denoise is None else bilateral_denoise(picture, self.denoise)

    def saved_networks(self) -> dict[str, torch.nn.Module]:
        return {"generator_model": self.G, "discriminator": self.D}

    # ---- samples and export -----------------------------------------------------------------

    @torch.inference_mode()
    def sample_columns(self) -> list[torch.Tensor]:
        """user sketch | hint | guide at t = sample_projection | output | target."""
        batch = self.samples
        user, hint, image = batch["rough_sketch"], batch["hint"], batch["image"]
        generator = self.eval_generator()
        was_training = generator.training
        generator.eval()
        size = image.shape[-1]
        z = encode_sketch(self.autoencoder, user)
        t = self.config.train.sample_projection
        if t > 0:
            z = project(z.cpu(), self.bank, k=self.config.train.projection_k, strength=t).to(z.device)
        guide = guide_from_latent(self.autoencoder, z, size)
        if self.parts is not None:
            guide = guide_with_parts(self.parts, self.part_banks, user, guide, t, self.config.train.projection_k)
        output = self.shown(generator(user, guide, hint, z if generator.config.latent_dim > 0 else None))
        generator.train(was_training)
        return [user, hint_to_display(hint, size), guide, output.float(), image]

    def export(self, folder: Path, final: bool) -> None:
        """A complete pipeline folder: autoencoder/, latent_bank.*, generator/, pipeline.json (last)."""
        generator = self.eval_generator()
        meta = {"experiment": self.config.experiment.name, "step": self.step}
        # Bank and palettes never change during a run: written by the first export, then kept.
        bank = None if (folder / f"{BANK_STEM}.json").is_file() else self.bank
        palettes = None
        if not (folder / f"{PALETTE_STEM}.json").is_file():
            dataset = self.stream.dataset
            palettes = PaletteBank.from_images([dataset.color(i) for i in range(len(dataset))],
                                               [r.id for r in dataset.records])
        description = PipelineDescription(
            PIPELINE_TYPE, self.config.experiment.image_size, self.G.config.hint_downscale,
            latent_dim=self.autoencoder.config.latent_dim, projection_k=self.config.train.projection_k,
            training={**meta, "dataset": str(self.config.data.root), "final": final,
                      "autoencoder": str(self.ae_folder), "bank_size": len(self.bank)},
            denoise=self.denoise,
        )
        if self.parts is not None and not has_parts(folder):  # before pipeline.json: a folder never lacks its parts
            write_parts_folder(folder, self.parts.layout, self.parts_folder / "parts" / "autoencoder",
                               self.part_banks, bank_storage="float16")
        write_pipeline_folder(folder, description, {"autoencoder": self.ae_folder / "autoencoder", "generator": generator},
                              bank=bank, palettes=palettes, meta={"generator": meta}, bank_storage="float16")


def initial_generator(path: str, expected: GuidedUNetConfig) -> GuidedUNet:
    """The generator of a pipeline folder (or a ``generator/`` model folder) to fine-tune from.

    Only the generator carries over: the discriminator and optimiser start afresh, and a resumed
    run ignores this (its checkpoint wins). Its config must equal the run's ``[guided_unet]``, except
    for ``image_size``: the network is fully convolutional, so a 128 px model starts a 256 px run
    with the same weights (hints keep their downscale, so they grow with the image).
    """
    folder = Path(path).expanduser()
    if (folder / "generator").is_dir():
        folder = folder / "generator"
    try:
        model = load_model(folder, expected_type="guided_unet")
    except CheckpointError as exc:
        raise ConfigError(f"experiment.init_generator: {exc}") from None
    if replace(model.config, image_size=expected.image_size) != expected:
        raise ConfigError(f"experiment.init_generator: {folder} holds a generator built as {model.config}, "
                          f"but this run's [guided_unet] is {expected} (only image_size may differ; to start a "
                          "wider or deeper generator from it, write a grown copy with `sketch2anime grow`)")
    if model.config.image_size == expected.image_size:
        return model
    resized = GuidedUNet(expected)
    resized.load_state_dict(model.state_dict())  # strict: the same tensors at every size
    return resized


def foreign_latent_mean(path: str, autoencoder: torch.nn.Module) -> torch.Tensor | None:
    """Mean latent ``(D,)`` of the bank in pipeline folder ``path`` when its autoencoder differs from ``autoencoder``.

    None when the folder has the same autoencoder, or no autoencoder and bank to tell (a bare
    ``generator/`` folder: its latents are assumed to be this run's).
    """
    folder = Path(path).expanduser()
    stem = folder / BANK_STEM
    if not (folder / "autoencoder").is_dir() or not stem.with_suffix(".json").is_file():
        return None
    try:
        old = load_model(folder / "autoencoder", expected_type="sketch_autoencoder").state_dict()
        bank = LatentBank.load(stem)
    except CheckpointError as exc:
        raise ConfigError(f"experiment.init_generator: {exc}") from None
    new = autoencoder.state_dict()
    if old.keys() == new.keys() and all(torch.equal(old[k], new[k].to(old[k].device)) for k in old):
        return None
    return bank.latents.mean(dim=0)


def build(config: ExperimentConfig, engine: Engine, run_dir: Path) -> GuidedStage:
    return GuidedStage(config, engine, run_dir)
