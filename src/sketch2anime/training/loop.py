"""The training loop shared by every stage: engine setup, data stream, resume, cadence.

Engine: one process on the CPU by default, the GPU when present (bf16 autocast there), and
several GPUs or nodes through ``torchrun``, which sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``::

    torchrun --nproc_per_node=4 -m sketch2anime.cli train configs/s2a64.toml

Then ``torch.distributed`` is initialised (NCCL on GPUs, Gloo on CPUs), the trainable networks
are wrapped in ``DistributedDataParallel`` and every rank reads its own shard of each epoch via
``DistributedSampler``; ``data.batch_size`` is per process. Only rank 0 writes files.

Reproducibility: model init, data order (sampler seeded per epoch), per-sample augmentation (the
dataset's own seed + epoch) and the stages' random choices (a dedicated ``torch.Generator``) are
all seeded, and the training state stores every RNG plus the position inside the epoch, so a
resumed run continues with exactly the batches and draws an uninterrupted run would have used.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import CheckpointError, load_training_state, save_training_state
from ..config import ConfigError
from .config import ExperimentConfig, TrainConfig
from .logging import RunLogger, save_sample_grid
from .schedule import lr_factor

STATE_NAME = "train"


# ---------------------------------------------------------------------------------------------
# engine

@dataclass
class Engine:
    device: torch.device
    precision: str  # "fp32" | "bf16"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    channels_last: bool = False  # NHWC activations: what bf16 convolutions on CPUs are fast with

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around a trainable model when running under torchrun."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def setup_engine(train: TrainConfig) -> Engine:
    """Pick device/precision from the config; join the process group under torchrun."""
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    use_cuda = train.device == "cuda" or (train.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed image sizes: let cuDNN pick each convolution's fastest kernel
    precision = train.precision
    if precision == "auto":
        from ..runtime import fastest_cpu_precision

        precision = "bf16" if use_cuda else fastest_cpu_precision()
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Engine(device=device, precision=precision, rank=rank, world_size=world_size, local_rank=local_rank,
                  channels_last=precision == "bf16" and not use_cuda)


def teardown_engine(engine: Engine) -> None:
    if engine.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# RNG state

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ---------------------------------------------------------------------------------------------
# data

class BatchStream:
    """Endless, resumable batches: epoch ``e`` uses ``DistributedSampler`` order seeded by ``e``.

    ``position`` = (epoch, batches already taken in that epoch); restoring it skips exactly those
    batches without loading them.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, engine: Engine, num_workers: int = 0) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.engine = engine
        self.num_workers = num_workers
        self.sampler = DistributedSampler(dataset, num_replicas=engine.world_size, rank=engine.rank,
                                          shuffle=True, seed=seed, drop_last=True)
        self.batches_per_epoch = len(self.sampler) // batch_size
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(dataset)} images, fewer than one batch of {batch_size} per process "
                f"(x{engine.world_size}); lower data.batch_size or add images"
            )
        self.epoch = 0
        self.offset = 0
        self._iterator: Iterator | None = None

    def _start(self) -> None:
        self.sampler.set_epoch(self.epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        indices = list(self.sampler)[self.offset * self.batch_size:]
        # Worker seeds come from this generator, not the global RNG, so resuming mid-epoch does not
        # shift the global torch RNG that the models may use.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=indices, drop_last=True,
                            num_workers=self.num_workers, pin_memory=self.engine.device.type == "cuda",
                            generator=generator, persistent_workers=False)
        self._iterator = iter(loader)

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> dict[str, Any]:
        if self.offset >= self.batches_per_epoch:
            self.epoch += 1
            self.offset = 0
            self._iterator = None
        if self._iterator is None:
            self._start()
        batch = next(self._iterator)  # type: ignore[arg-type]
        self.offset += 1
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self._iterator = None


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# the loop

class Stage(Protocol):
    """What a training stage provides to ``run_training``."""

    stream: BatchStream

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        """One optimisation step on a device batch; returns detached scalar losses."""

    def set_lr_factor(self, factor: float) -> None: ...

    def lr(self) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def sample_columns(self) -> list[torch.Tensor]:
        """Columns of the sample grid for the fixed sample batch."""

    def export(self, folder: Path, final: bool) -> None:
        """Write the pipeline folder (rank 0 only)."""


def state_path(run_dir: Path) -> Path:
    return Path(run_dir) / "state" / STATE_NAME


def has_state(run_dir: Path) -> bool:
    return state_path(run_dir).with_name(f"{STATE_NAME}.json").exists()


def run_training(config: ExperimentConfig, stage: Stage, engine: Engine, run_dir: Path, resume: bool,
                 callback: Callable[[int], None] | None = None) -> int:
    """Train ``stage`` to ``config.train.steps``; returns the final step.

    State is saved every ``checkpoint_every`` steps and at the end; ``callback(step)`` runs after
    each completed step (tests use it to simulate a crash).
    """
    train = config.train
    start = 0
    if resume:
        saved = load_training_state(state_path(run_dir))
        if saved is not None:
            try:
                stage.load_state_dict(saved["stage"])
                stage.stream.restore(saved["data"])
                restore_rng(saved["rng"])
                start = int(saved["step"])
                if hasattr(stage, "step"):
                    stage.step = start
            except (KeyError, RuntimeError, ValueError) as exc:
                raise CheckpointError(f"cannot resume from {state_path(run_dir)}: {exc}") from None
    logger = RunLogger(run_dir, train.steps, start, enabled=engine.is_main, progress=train.progress)
    if resume and start:
        logger.message(f"resumed {run_dir} at step {start}")

    def save_state(step: int) -> None:
        if engine.is_main:
            save_training_state(state_path(run_dir), {
                "step": step, "stage": stage.state_dict(), "data": stage.stream.state(), "rng": capture_rng(),
            })
        engine.barrier()

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}  # per key: some losses (R1) are not computed every step
    count = 0
    window_start = loop_start = time.perf_counter()
    step = start
    try:
        while step < train.steps:
            batch = to_device(next(stage.stream), engine.device)
            stage.set_lr_factor(lr_factor(step, train))
            losses = stage.train_step(batch, step)
            step += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float()
                counts[key] = counts.get(key, 0) + 1
            count += 1
            out_of_time = bool(train.max_minutes) and _all_ranks_out_of_time(loop_start, train.max_minutes, engine)
            last = step == train.steps or out_of_time
            if step % train.log_every == 0 or last:
                means = {k: float(v) / counts[k] for k, v in sums.items()}
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                images_per_s = count * config.data.batch_size * engine.world_size / elapsed
                logger.log(step, means, lr=stage.lr(), images_per_s=images_per_s, epoch=stage.stream.epoch)
                logger.progress(step, means)
                sums, counts, count, window_start = {}, {}, 0, time.perf_counter()
            if engine.is_main and (step % train.sample_every == 0 or last):
                save_sample_grid(Path(run_dir) / "samples" / f"step_{step:07d}.png", stage.sample_columns())
            if step % train.checkpoint_every == 0 or last:
                save_state(step)
                if engine.is_main and not last:
                    stage.export(Path(run_dir) / "model", final=False)
            if engine.is_main and not last and train.snapshot_every and step % train.snapshot_every == 0:
                if step % train.checkpoint_every:  # model/ holds an older step: export this one first
                    stage.export(Path(run_dir) / "model", final=False)
                keep_snapshot(run_dir, step)
            if callback is not None:
                callback(step)
            if out_of_time:
                logger.message(f"stopped at step {step} of {train.steps} after train.max_minutes = "
                               f"{train.max_minutes:g}; state saved, --resume continues")
                break
    finally:
        logger.close()
    if engine.is_main:
        if step == start and _final_export_done(Path(run_dir) / "model", step):
            # Resuming a finished run: its final export is complete (pipeline.json is written last),
            # so it is not redone (for stage 1 that would re-encode the whole latent bank).
            logger.message(f"{run_dir} had already finished at step {step}; its model export is kept")
        else:
            stage.export(Path(run_dir) / "model", final=step == train.steps)
            if train.snapshot_every and step % train.snapshot_every == 0:
                keep_snapshot(run_dir, step)
    engine.barrier()
    return step


def _all_ranks_out_of_time(loop_start: float, max_minutes: float, engine: Engine) -> bool:
    """Whether the time budget is spent; under torchrun every rank stops at the same step."""
    spent = time.perf_counter() - loop_start >= max_minutes * 60.0
    if not engine.distributed:
        return spent
    flag = torch.tensor([1.0 if spent else 0.0], device=engine.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "snapshots" / f"step_{step:07d}"


def keep_snapshot(run_dir: Path, step: int) -> Path:
    """Copy the just-exported ``model/`` to ``snapshots/step_NNNNNNN/`` (complete or absent: copied
    under a temporary name, then renamed; a snapshot left by a killed run is replaced)."""
    target = snapshot_path(run_dir, step)
    partial = target.with_name(target.name + ".partial")
    for stale in (partial, target):
        if stale.exists():
            shutil.rmtree(stale)
    shutil.copytree(Path(run_dir) / "model", partial)
    os.replace(partial, target)
    return target


def _final_export_done(folder: Path, step: int) -> bool:
    from ..pipeline_format import PipelineDescription

    try:
        training = PipelineDescription.read(folder).training
    except (OSError, ValueError):
        return False
    return training.get("final") is True and training.get("step") == step


# ---------------------------------------------------------------------------------------------
# datasets shared by the stages

def training_dataset(config: ExperimentConfig) -> Dataset:
    from ..data.dataset import PairedSketchDataset

    return PairedSketchDataset(config.data.dataset_config(split="train"))


def fixed_sample_batch(config: ExperimentConfig, engine: Engine) -> dict[str, Any]:
    """The same few samples for every grid: the first of ``data.sample_split`` (else of train), epoch 0."""
    from torch.utils.data import default_collate

    from ..data.dataset import PairedSketchDataset

    dataset = None
    if config.data.sample_split != "train":
        try:
            dataset = PairedSketchDataset(config.data.dataset_config(split=config.data.sample_split))
            if len(dataset) == 0:
                dataset = None
        except ValueError:
            dataset = None
    if dataset is None:
        dataset = PairedSketchDataset(config.data.dataset_config(split="train"))
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    count = min(config.data.sample_count, len(dataset))
    batch = default_collate([dataset[i] for i in range(count)])
    return to_device(batch, engine.device)
