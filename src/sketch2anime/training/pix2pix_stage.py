"""Stage "pix2pix": the Pix2Pix baseline (Isola et al. 2017) on paired sketches and colour images.

Networks: the U-Net of ``models/pix2pix.py`` ([pix2pix] section) and a conditional 70x70
PatchGAN ([patchgan], judging the sketch and the image concatenated, 4 channels).
Losses as in the paper: the cGAN loss (``train.adversarial = "nonsaturating"`` is the paper's
BCE form: D minimises BCE on real/fake pairs, halved; G maximises log D(x, G(x))) plus
``train.l1_weight`` (paper: 100) times L1 to the real image. Adam with ``train.lr`` and
``train.betas`` (paper: 2e-4, (0.5, 0.999)). The Sketch2Anime-only settings of [train]
(feature matching, hint, perceptual and R1 weights, latent mix) are not used here.

Inputs, for a fair comparison with the other models: the sketch is the rough one with
probability ``train.rough_fraction`` (else the clean one), and with ``pix2pix.use_hint`` the
U-Net gets the same simulated colour hints. Augmentation: random jitter (resize to
``baseline.jitter_scale`` x size, random crop back; sketch, image and hint share the crop) and
mirroring (the dataset's ``data.flip``).

Export: ``model/pipeline.json`` (pipeline_type "pix2pix") + ``model/generator/``, loadable by
``Sketch2AnimePipeline.from_pretrained``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..hint_format import hint_to_display
from ..models.patchgan import PatchGAN, PatchGANConfig
from ..models.pix2pix import UNetConfig, UNetGenerator, upsample_hint
from ..pipeline_format import PipelineDescription, write_pipeline_folder
from .autoencoder_stage import make_optimizer
from .config import ExperimentConfig
from .gan_common import GANStageBase
from .loop import BatchStream, Engine, fixed_sample_batch, training_dataset
from .schedule import EMA, optimizer_step
from .losses import discriminator_loss, generator_adversarial_loss


def patchgan_config(config: ExperimentConfig, in_channels: int) -> PatchGANConfig:
    """The [patchgan] section (or defaults) for a discriminator judging ``in_channels`` channels."""
    return dataclasses.replace(config.patchgan or PatchGANConfig(), in_channels=in_channels)


def random_jitter(tensors: list[tuple[torch.Tensor, str]], scale: float, generator: torch.Generator) -> list[torch.Tensor]:
    """Pix2Pix's random jitter: resize ``(N, C, S, S)`` tensors to ``round(scale * S)``, crop S back.

    ``tensors`` pairs each batch with its resampling mode ("bilinear" for pictures, "nearest" for
    hint maps so colours and the mask stay exact); all share one random crop per sample.
    """
    size = tensors[0][0].shape[-1]
    big = int(round(size * scale))
    if big <= size:
        return [t for t, _ in tensors]
    n = tensors[0][0].shape[0]
    offsets = torch.randint(0, big - size + 1, (n, 2), generator=generator).tolist()
    out = []
    for tensor, mode in tensors:
        kwargs = {"align_corners": False} if mode == "bilinear" else {}
        large = F.interpolate(tensor, size=(big, big), mode=mode, **kwargs)
        out.append(torch.stack([large[i, :, y:y + size, x:x + size] for i, (y, x) in enumerate(offsets)]))
    return out


def write_pipeline(folder: Path, pipeline_type: str, generator: torch.nn.Module, config: ExperimentConfig,
                   meta: dict[str, Any], final: bool) -> None:
    """``folder/generator`` + ``folder/pipeline.json`` (the JSON last, so it always has weights)."""
    description = PipelineDescription(pipeline_type, config.experiment.image_size, config.data.hints.downscale,
                                      training={**meta, "dataset": str(config.data.root), "final": final})
    write_pipeline_folder(folder, description, {"generator": generator}, meta={"generator": meta})


class Pix2PixStage(GANStageBase):
    def __init__(self, config: ExperimentConfig, engine: Engine, run_dir: Path) -> None:
        self.config, self.engine, self.run_dir = config, engine, run_dir
        train, size = config.train, config.experiment.image_size
        g_cfg = config.pix2pix or UNetConfig(image_size=size)
        if g_cfg.image_size != size:
            raise ConfigError(f"pix2pix.image_size {g_cfg.image_size} differs from experiment.image_size {size}")
        if g_cfg.in_channels != 1 or g_cfg.out_channels != 3:
            raise ConfigError("pix2pix.in_channels must be 1 (sketch) and out_channels 3 (colour image)")
        if config.patchgan is not None and config.patchgan.in_channels != 4:
            raise ConfigError("stage 'pix2pix' judges sketch + image: patchgan.in_channels must be 4 (or unset)")
        device = engine.device
        self.G = UNetGenerator(g_cfg).to(device)
        self.D = PatchGAN(patchgan_config(config, 4)).to(device)
        self.g_net, self.d_net = engine.wrap(self.G), engine.wrap(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), config, train.lr)
        self.opt_d = make_optimizer(self.D.parameters(), config, train.lr_discriminator or train.lr)
        self.ema = EMA(self.G, train.ema_decay) if train.ema_decay else None
        self.generator = torch.Generator().manual_seed(config.experiment.seed + 3 + 7919 * engine.rank)
        self.stream = BatchStream(training_dataset(config), config.data.batch_size, config.experiment.seed,
                                  engine, config.data.num_workers)
        self.samples = fixed_sample_batch(config, engine) if engine.is_main else None
        self.step = 0

    # ---- loop interface ---------------------------------------------------------------------

    def inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(sketch, full-resolution hint or None, image) of a batch: rough/clean mix, then jitter."""
        clean, rough, image = batch["sketch"], batch["rough_sketch"], batch["image"]
        n, size = clean.shape[0], clean.shape[-1]
        use_rough = torch.rand(n, generator=self.generator) < self.config.train.rough_fraction
        sketch = torch.where(use_rough.to(clean.device)[:, None, None, None], rough, clean)
        parts = [(sketch, "bilinear"), (image, "bilinear")]
        if self.G.config.use_hint:
            parts.append((upsample_hint(batch["hint"], n, size, sketch), "nearest"))
        jittered = random_jitter(parts, self.config.baseline.jitter_scale, self.generator)
        return jittered[0], (jittered[2] if self.G.config.use_hint else None), jittered[1]

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        train = self.config.train
        sketch, hint, image = self.inputs(batch)
        self.G.train()
        self.D.train()
        with self.engine.autocast():
            fake = self.g_net(sketch, hint)

        self.D.requires_grad_(True)
        with self.engine.autocast():
            pairs = torch.cat([torch.cat([sketch, image], 1), torch.cat([sketch, fake.detach()], 1)])
            real_logits, fake_logits = self.d_net(pairs).float().chunk(2)
        # The paper halves D's objective to slow it down relative to G.
        d_loss = 0.5 * discriminator_loss(real_logits, fake_logits, train.adversarial)
        optimizer_step(self.opt_d, d_loss, self.D.parameters(), train.grad_clip)

        self.D.requires_grad_(False)  # G step: D used unwrapped, no gradient sync for it
        with self.engine.autocast():
            logits = self.D(torch.cat([sketch, fake], 1)).float()
        adv = generator_adversarial_loss(logits, train.adversarial)
        l1 = F.l1_loss(fake.float(), image)
        g_loss = train.adversarial_weight * adv + train.l1_weight * l1
        optimizer_step(self.opt_g, g_loss, self.G.parameters(), train.grad_clip)
        if self.ema is not None:
            self.ema.update(self.G)
        self.step = step + 1
        return {"d_loss": d_loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean(),
                "g_adv": adv.detach(), "l1": l1.detach(), "g_loss": g_loss.detach()}

    def saved_networks(self) -> dict[str, torch.nn.Module]:
        return {"generator_model": self.G, "discriminator": self.D}

    # ---- samples and export -----------------------------------------------------------------

    @torch.inference_mode()
    def sample_columns(self) -> list[torch.Tensor]:
        """rough sketch | hint | output | target."""
        batch = self.samples
        rough, hint, image = batch["rough_sketch"], batch["hint"], batch["image"]
        generator = self.eval_generator()
        was_training = generator.training
        generator.eval()
        output = generator(rough, hint)
        generator.train(was_training)
        return [rough, hint_to_display(hint, image.shape[-1]), output, image]

    def export(self, folder: Path, final: bool) -> None:
        meta = {"experiment": self.config.experiment.name, "step": self.step, "baseline": "pix2pix"}
        write_pipeline(folder, "pix2pix", self.eval_generator(), self.config, meta, final)


def build(config: ExperimentConfig, engine: Engine, run_dir: Path) -> Pix2PixStage:
    return Pix2PixStage(config, engine, run_dir)
