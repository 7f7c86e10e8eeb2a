"""Stage "cyclegan": the CycleGAN baseline (Zhu et al. 2017) on *unpaired* sketches and colour images.

Networks: two ResNet generators ([cyclegan] section, ``models/cyclegan.py``): G sketch -> colour
(1 -> 3 channels) and F colour -> sketch (3 -> 1), and two unconditional 70x70 PatchGANs
([patchgan], ``in_channels`` set per domain: 3 for colour, 1 for sketch).

Unpaired data: the sketches come from the usual training stream; the colour images come from a
second stream over the same training images, shuffled with another seed (and flipped
independently), so a batch's colour images are not the sketches' own. Sketches are rough with
probability ``train.rough_fraction`` (as for the other models).

Losses as in the paper: least-squares GAN (D: ``0.5 * ((D(real) - 1)^2 + D(fake)^2)``,
G: ``(D(G(x)) - 1)^2``) times ``train.adversarial_weight``, plus ``baseline.cycle_weight``
(lambda = 10) times the L1 cycle losses ``|F(G(x)) - x| + |G(F(y)) - y|``. The identity loss is
left out: it needs G and F to map a domain onto itself, impossible with 1- and 3-channel
domains. The discriminators see generated images through a history pool of
``baseline.pool_size`` (50) images. Adam with ``train.lr`` / ``train.betas`` (2e-4, (0.5, 0.999)).
Random jitter (``baseline.jitter_scale``) as for Pix2Pix, per domain. The learning-rate schedule
is the loop's (``train.lr_schedule``), not the paper's linear decay. The other [train] loss
weights (L1, feature matching, hints, perceptual, R1) are not used: CycleGAN has no paired target.

Hints: CycleGAN cannot use them (there is no hint that belongs to an unpaired sketch); G ignores
its ``hint`` argument. Export: ``model/pipeline.json`` (pipeline_type "cyclegan") + G as
``model/generator/``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import ConfigError
from ..data.image_io import rgb_to_tensor
from ..models.cyclegan import ResnetGenerator, ResnetGeneratorConfig
from ..models.patchgan import PatchGAN
from .autoencoder_stage import make_optimizer
from .config import ExperimentConfig
from .gan_common import GANStageBase
from .loop import BatchStream, Engine, fixed_sample_batch, to_device, training_dataset
from .schedule import EMA, optimizer_step
from .pix2pix_stage import patchgan_config, random_jitter, write_pipeline

_COLOUR_STREAM_TAG = 0xC0102  # separates the colour stream's seeds from the sketch stream's


class UnpairedColours(Dataset):
    """The colour images of a ``PairedSketchDataset`` alone (with their own random flips).

    Items: ``{"image": (3, S, S) in [-1, 1]}``. Shares the base dataset's decoded images.
    """

    def __init__(self, base: Any, seed: int, flip: bool) -> None:
        self.base, self.seed, self.flip = base, seed, flip
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        colour = self.base.color(int(index))
        rng = np.random.default_rng([_COLOUR_STREAM_TAG, self.seed, self.epoch, int(index)])
        if self.flip and rng.random() < 0.5:
            colour = colour[:, ::-1]
        return {"image": rgb_to_tensor(np.ascontiguousarray(colour))}


class ImagePool:
    """History of generated images (Shrivastava et al. 2017): D sees a mix of new and older fakes.

    Until full, new images are stored and returned; then each new image is, with probability 1/2,
    swapped for a random stored one (which is returned instead).
    """

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size, self.generator = size, generator
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) < 0.5:
                slot = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self, like: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.images) if self.images else like.new_zeros((0, *like.shape[1:]))

    def restore(self, stored: torch.Tensor, device: torch.device) -> None:
        self.images = [image.to(device) for image in stored]


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return (fake_logits - 1).pow(2).mean()


class CycleGANStage(GANStageBase):
    def __init__(self, config: ExperimentConfig, engine: Engine, run_dir: Path) -> None:
        self.config, self.engine, self.run_dir = config, engine, run_dir
        train, size = config.train, config.experiment.image_size
        g_cfg = config.cyclegan or ResnetGeneratorConfig(image_size=size)
        if g_cfg.image_size != size:
            raise ConfigError(f"cyclegan.image_size {g_cfg.image_size} differs from experiment.image_size {size}")
        if g_cfg.in_channels != 1 or g_cfg.out_channels != 3:
            raise ConfigError("cyclegan.in_channels/out_channels describe G (sketch -> colour): they must be 1 and 3")
        device = engine.device
        self.G = ResnetGenerator(g_cfg).to(device)
        self.F = ResnetGenerator(dataclasses.replace(g_cfg, in_channels=3, out_channels=1)).to(device)
        self.D_colour = PatchGAN(patchgan_config(config, 3)).to(device)
        self.D_sketch = PatchGAN(patchgan_config(config, 1)).to(device)
        self.nets = {name: engine.wrap(getattr(self, name)) for name in ("G", "F", "D_colour", "D_sketch")}
        self.opt_g = make_optimizer(list(self.G.parameters()) + list(self.F.parameters()), config, train.lr)
        self.opt_d = make_optimizer(list(self.D_colour.parameters()) + list(self.D_sketch.parameters()), config,
                                    train.lr_discriminator or train.lr)
        self.ema = EMA(self.G, train.ema_decay) if train.ema_decay else None
        self.generator = torch.Generator().manual_seed(config.experiment.seed + 5 + 7919 * engine.rank)
        self.pool_colour = ImagePool(config.baseline.pool_size, self.generator)
        self.pool_sketch = ImagePool(config.baseline.pool_size, self.generator)
        dataset = training_dataset(config)
        self.stream = BatchStream(dataset, config.data.batch_size, config.experiment.seed, engine,
                                  config.data.num_workers)
        colours = UnpairedColours(dataset, config.experiment.seed, config.data.flip)
        self.colour_stream = BatchStream(colours, config.data.batch_size, config.experiment.seed + 104_729, engine,
                                         config.data.num_workers)
        self.samples = fixed_sample_batch(config, engine) if engine.is_main else None
        self.step = 0

    # ---- loop interface ---------------------------------------------------------------------

    def inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sketches, unpaired colour images) for one step, jittered independently."""
        clean, rough = batch["sketch"], batch["rough_sketch"]
        use_rough = torch.rand(clean.shape[0], generator=self.generator) < self.config.train.rough_fraction
        sketch = torch.where(use_rough.to(clean.device)[:, None, None, None], rough, clean)
        colour = to_device(next(self.colour_stream), clean.device)["image"]
        scale = self.config.baseline.jitter_scale
        (sketch,) = random_jitter([(sketch, "bilinear")], scale, self.generator)
        (colour,) = random_jitter([(colour, "bilinear")], scale, self.generator)
        return sketch, colour

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        train, nets = self.config.train, self.nets
        sketch, colour = self.inputs(batch)
        for module in (self.G, self.F, self.D_colour, self.D_sketch):
            module.train()

        # Generators: D frozen and used unwrapped.
        self.D_colour.requires_grad_(False)
        self.D_sketch.requires_grad_(False)
        with self.engine.autocast():
            fake_colour = nets["G"](sketch)
            fake_sketch = nets["F"](colour)
            cycle_sketch = nets["F"](fake_colour)
            cycle_colour = nets["G"](fake_sketch)
            adv_colour = lsgan_g_loss(self.D_colour(fake_colour).float())
            adv_sketch = lsgan_g_loss(self.D_sketch(fake_sketch).float())
        cycle = F.l1_loss(cycle_sketch.float(), sketch) + F.l1_loss(cycle_colour.float(), colour)
        g_loss = train.adversarial_weight * (adv_colour + adv_sketch) + self.config.baseline.cycle_weight * cycle
        optimizer_step(self.opt_g, g_loss, list(self.G.parameters()) + list(self.F.parameters()), train.grad_clip)
        if self.ema is not None:
            self.ema.update(self.G)

        # Discriminators on real images and pooled fakes.
        self.D_colour.requires_grad_(True)
        self.D_sketch.requires_grad_(True)
        old_colour = self.pool_colour.query(fake_colour.detach().float())
        old_sketch = self.pool_sketch.query(fake_sketch.detach().float())
        with self.engine.autocast():
            real_c, fake_c = nets["D_colour"](torch.cat([colour, old_colour])).float().chunk(2)
            real_s, fake_s = nets["D_sketch"](torch.cat([sketch, old_sketch])).float().chunk(2)
        d_colour = lsgan_d_loss(real_c, fake_c)
        d_sketch = lsgan_d_loss(real_s, fake_s)
        optimizer_step(self.opt_d, d_colour + d_sketch,
                       list(self.D_colour.parameters()) + list(self.D_sketch.parameters()), train.grad_clip)
        self.step = step + 1
        return {"d_colour": d_colour.detach(), "d_sketch": d_sketch.detach(), "g_adv_colour": adv_colour.detach(),
                "g_adv_sketch": adv_sketch.detach(), "cycle": cycle.detach(), "g_loss": g_loss.detach()}

    def saved_networks(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "F": self.F, "D_colour": self.D_colour, "D_sketch": self.D_sketch}

    def extra_state(self) -> dict[str, Any]:
        size = self.config.experiment.image_size
        return {"colour_stream": self.colour_stream.state(),
                "pool_colour": self.pool_colour.state(torch.zeros(1, 3, size, size)).cpu(),
                "pool_sketch": self.pool_sketch.state(torch.zeros(1, 1, size, size)).cpu()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.colour_stream.restore(state["colour_stream"])
        self.pool_colour.restore(state["pool_colour"], self.engine.device)
        self.pool_sketch.restore(state["pool_sketch"], self.engine.device)

    # ---- samples and export -----------------------------------------------------------------

    @torch.inference_mode()
    def sample_columns(self) -> list[torch.Tensor]:
        """rough sketch | G(sketch) | F(G(sketch)) | target image | F(target image)."""
        rough, image = self.samples["rough_sketch"], self.samples["image"]
        generator = self.eval_generator()
        modes = (generator.training, self.F.training)
        generator.eval()
        self.F.eval()
        output = generator(rough)
        columns = [rough, output, self.F(output), image, self.F(image)]
        generator.train(modes[0])
        self.F.train(modes[1])
        return columns

    def export(self, folder: Path, final: bool) -> None:
        meta = {"experiment": self.config.experiment.name, "step": self.step, "baseline": "cyclegan"}
        write_pipeline(folder, "cyclegan", self.eval_generator(), self.config, meta, final)


def build(config: ExperimentConfig, engine: Engine, run_dir: Path) -> CycleGANStage:
    return CycleGANStage(config, engine, run_dir)
