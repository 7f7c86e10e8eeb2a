"""Stage 1: the sketch autoencoder, trained to map rough sketches onto their clean versions.

Each batch feeds, per sample, the clean sketch or (with probability ``train.rough_fraction``) its
simulated rough version; the target is always the clean sketch, so the encoder learns to put a
rough sketch near its clean version in latent space. Loss: ``sketch_reconstruction_loss``.

After the last step every clean training sketch (every extractor) is encoded and saved as the
latent bank, ids ``"<image id>/<extractor>"``, next to the model in ``OUTPUT/model/``.

With ``experiment.parts`` the model is the *part autoencoder* of ``models/part_guide.py``: every
sample contributes one crop per part box (eyes, mouth; the right eye mirrored), each moved by up
to ``PART_JITTER`` of the side so the encoder tolerates faces a little off the mean layout. The
export is ``OUTPUT/model/parts/`` without banks (the guided stage encodes its own dataset).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..data.dataset import PairedSketchDataset
from ..data.image_io import sketch_to_tensor
from ..models.autoencoder import AutoencoderConfig, SketchAutoencoder, sketch_reconstruction_loss
from ..models.guide import encode_sketch
from ..models.part_guide import PartGuide, PartLayout, crop_part
from ..models.projection import LatentBank
from ..pipeline_format import (  # noqa: F401  (BANK_STEM: older imports)
    BANK_STEM,
    PipelineDescription,
    write_parts_folder,
    write_pipeline_folder,
)
from .config import ExperimentConfig
from .loop import BatchStream, Engine, fixed_sample_batch, training_dataset
from .schedule import EMA, optimizer_step, set_lr, unwrap


PART_JITTER = 0.03  # of the image side: 4 px at 128 px


def autoencoder_config(config: ExperimentConfig) -> AutoencoderConfig:
    from ..config import ConfigError

    if config.experiment.parts:
        size = PartLayout().part_size
        ae = config.autoencoder or AutoencoderConfig(image_size=size)
        if ae.image_size != size:
            raise ConfigError(f"the part autoencoder draws {size} px parts; set autoencoder.image_size = {size}, "
                              f"not {ae.image_size}")
        return ae
    ae = config.autoencoder or AutoencoderConfig(image_size=config.experiment.image_size)
    if ae.image_size != config.experiment.image_size:
        raise ConfigError(f"autoencoder.image_size {ae.image_size} differs from experiment.image_size "
                          f"{config.experiment.image_size}")
    return ae


def part_crops(sketches: list[torch.Tensor], layout: PartLayout, generator: torch.Generator | None = None
               ) -> list[torch.Tensor]:
    """Each ``(N, 1, S, S)`` tensor -> ``(N * boxes, 1, P, P)`` crops, every box of the layout in turn;
    with ``generator`` each box is moved by one random shift, the same for every tensor."""
    side = sketches[0].shape[-1]
    reach = round(PART_JITTER * side)
    out: list[list[torch.Tensor]] = [[] for _ in sketches]
    for box in layout.boxes:
        shift = (0, 0)
        if generator is not None and reach > 0:
            shift = tuple(int(v) for v in torch.randint(-reach, reach + 1, (2,), generator=generator))
        for crops, sketch in zip(out, sketches):
            crops.append(crop_part(sketch, box, layout.part_size, shift))
    return [torch.cat(crops) for crops in out]


def make_optimizer(params: Any, config: ExperimentConfig, lr: float) -> torch.optim.Optimizer:
    train = config.train
    return torch.optim.AdamW(params, lr=lr, betas=tuple(train.betas), weight_decay=train.weight_decay)


class AutoencoderStage:
    def __init__(self, config: ExperimentConfig, engine: Engine, run_dir: Path) -> None:
        self.config = config
        self.engine = engine
        self.run_dir = run_dir
        train = config.train
        self.model = SketchAutoencoder(autoencoder_config(config)).to(engine.device)
        self.net = engine.wrap(self.model)
        self.optimizer = make_optimizer(self.model.parameters(), config, train.lr)
        self.ema = EMA(self.model, train.ema_decay) if train.ema_decay else None
        self.generator = torch.Generator().manual_seed(config.experiment.seed + 1 + 7919 * engine.rank)
        self.stream = BatchStream(training_dataset(config), config.data.batch_size, config.experiment.seed,
                                  engine, config.data.num_workers)
        self.samples = fixed_sample_batch(config, engine) if engine.is_main else None
        self.layout = PartLayout() if config.experiment.parts else None
        self.step = 0

    # ---- loop interface ---------------------------------------------------------------------

    def set_lr_factor(self, factor: float) -> None:
        set_lr(self.optimizer, self.config.train.lr, factor)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        clean, rough = batch["sketch"], batch["rough_sketch"]
        if self.layout is not None:
            clean, rough = part_crops([clean, rough], self.layout, self.generator)
        use_rough = torch.rand(clean.shape[0], generator=self.generator) < self.config.train.rough_fraction
        inputs = torch.where(use_rough.to(clean.device)[:, None, None, None], rough, clean)
        self.model.train()
        with self.engine.autocast():
            _, logits = self.net(inputs)
        loss = sketch_reconstruction_loss(logits.float(), clean)
        optimizer_step(self.optimizer, loss, self.model.parameters(), self.config.train.grad_clip)
        if self.ema is not None:
            self.ema.update(self.model)
        with torch.no_grad():
            ink_l1 = (torch.tanh(-logits.detach().float() / 2) - clean).abs().mean()  # = |decode_sketch - clean|
        self.step = step + 1
        return {"loss": loss.detach(), "l1": ink_l1}

    def state_dict(self) -> dict[str, Any]:
        state = {"model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        if self.ema is not None:
            if "ema" not in state:
                raise ValueError("the saved state has no EMA weights but train.ema_decay is set")
            self.ema.load_state_dict(state["ema"])

    def eval_model(self) -> SketchAutoencoder:
        return self.ema.model if self.ema is not None else self.model

    @torch.inference_mode()
    def sample_columns(self) -> list[torch.Tensor]:
        """input (clean) | rough | reconstruction of the rough sketch | target (clean)."""
        model = self.eval_model()
        was_training = model.training
        model.eval()
        clean, rough = self.samples["sketch"], self.samples["rough_sketch"]
        if self.layout is not None:
            clean, rough = part_crops([clean, rough], self.layout)
        recon = model.decode_sketch(model.encode(rough))
        model.train(was_training)
        return [clean, rough, recon, clean]

    def export(self, folder: Path, final: bool) -> None:
        """Stage-1 pipeline folder: pipeline.json (type "autoencoder"), autoencoder/, latent bank."""
        if not final:
            return
        model = self.eval_model()
        meta = {"experiment": self.config.experiment.name, "step": self.step}
        if self.layout is not None:
            write_parts_folder(folder, self.layout, model, meta={**meta, "dataset": str(self.config.data.root)})
            return
        bank = encode_training_sketches(model, self.stream.dataset, self.engine.device)
        description = PipelineDescription(
            "autoencoder", self.config.experiment.image_size, self.config.data.hints.downscale,
            latent_dim=model.config.latent_dim, projection_k=self.config.train.projection_k,
            training={**meta, "dataset": str(self.config.data.root), "bank_size": len(bank), "final": True},
        )
        write_pipeline_folder(folder, description, {"autoencoder": model}, bank=bank, meta={"autoencoder": meta})


def training_sketch_batches(dataset: PairedSketchDataset, batch_size: int = 256
                            ) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Every clean training sketch (every extractor) of ``dataset`` in a fixed order, batched:
    ``(ids "<image id>/<extractor>", sketches (B, 1, S, S))``. Whole-face and part banks use this
    one order, so a bank row means the same sketch in every bank."""
    ids: list[str] = []
    pending: list[torch.Tensor] = []
    for index, record in enumerate(dataset.records):
        for extractor in dataset.extractors:
            if not record.sketch_path(extractor):
                continue
            pending.append(sketch_to_tensor(dataset.clean_sketch(index, extractor)))
            ids.append(f"{record.id}/{extractor}")
            if len(pending) >= batch_size:
                yield ids, torch.stack(pending)
                ids, pending = [], []
    if pending:
        yield ids, torch.stack(pending)


@torch.inference_mode()
def encode_training_sketches(model: SketchAutoencoder, dataset: PairedSketchDataset, device: torch.device,
                             batch_size: int = 256) -> LatentBank:
    """Encode every clean sketch (every extractor) of ``dataset`` -> LatentBank ids "<id>/<extractor>".

    Sketches larger than the autoencoder are min-pooled to its size first (``models/guide.py``), so a
    64 px autoencoder can index a 128 px dataset for the guided stage."""
    ids: list[str] = []
    latents: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    for batch_ids, sketches in training_sketch_batches(dataset, batch_size):
        latents.append(encode_sketch(model, sketches.to(device)).cpu())
        ids.extend(batch_ids)
    model.train(was_training)
    if not ids:
        raise ValueError(f"{dataset.root} has no training sketches to build the latent bank from")
    return LatentBank(torch.cat(latents), ids)


@torch.inference_mode()
def encode_training_parts(parts: PartGuide, dataset: PairedSketchDataset, device: torch.device,
                          batch_size: int = 256) -> dict[str, LatentBank]:
    """One bank per part box of every clean training sketch, rows in ``encode_training_sketches``' order."""
    ids: list[str] = []
    latents: dict[str, list[torch.Tensor]] = {name: [] for name in parts.layout.names}
    for batch_ids, sketches in training_sketch_batches(dataset, batch_size):
        for name, z in parts.encode(sketches.to(device)).items():
            latents[name].append(z.cpu())
        ids.extend(batch_ids)
    if not ids:
        raise ValueError(f"{dataset.root} has no training sketches to build the part banks from")
    return {name: LatentBank(torch.cat(rows), list(ids)) for name, rows in latents.items()}


def build(config: ExperimentConfig, engine: Engine, run_dir: Path) -> AutoencoderStage:
    return AutoencoderStage(config, engine, run_dir)
