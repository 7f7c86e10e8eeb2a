"""The pipeline folder: what ``sketch2anime train`` exports and ``Sketch2AnimePipeline.from_pretrained`` reads.

::

    MODEL/pipeline.json     {"format_version": 1, "pipeline_type": "sketch2anime" | "guided" | "simple_gan" | ...,
                             "image_size": 64, "hint_downscale": 4, "latent_dim": 512,
                             "projection": {"k": 10, "reg": 0.001}, "training": {...},
                             "denoise": {"diameter": 7, "sigma_colour": 5.0, "sigma_space": 3.0},  # optional
                             "flip_average": true}  # optional
    MODEL/autoencoder/      save_model folder (pipelines with a latent: sketch2anime, guided, autoencoder)
    MODEL/generator/        save_model folder (every type but the stage-1 "autoencoder")
    MODEL/latent_bank.*     the training latents for projection (pipelines with a latent)
    MODEL/palettes.*        optional colour thumbnails of the training images (``data/palettes.py``)
    MODEL/parts/            optional per-part guide (guided pipelines): see "the parts folder" below

``PipelineDescription`` reads, validates and writes ``pipeline.json``; ``write_pipeline_folder``
is the one writer of a whole folder (training stages, ``Sketch2AnimePipeline.save_pretrained``,
scripts, benchmarks, tests). It writes the modules' folders, the bank and the palettes first and
``pipeline.json`` last, so a folder with a ``pipeline.json`` always has the parts it names.
Training and inference both import this module; neither imports the other.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    CheckpointError,
    atomic_write_bytes,
    atomic_write_text,
    copy_model_folder,
    read_json,
    read_model_description,
    save_model,
)
from .data.palettes import PALETTE_STEM
from .models.denoise import DenoiseConfig
from .models.projection import DEFAULT_K, DEFAULT_REG

if TYPE_CHECKING:
    from torch import nn

    from .data.palettes import PaletteBank
    from .models.part_guide import PartLayout
    from .models.projection import LatentBank

PIPELINE_FILE = "pipeline.json"
PIPELINE_FORMAT_VERSION = 1
BANK_STEM = "latent_bank"
# Parts each pipeline type's folder must hold (types not listed: a generator only).
LATENT_PIPELINE_TYPES = ("sketch2anime", "guided")
_KNOWN_KEYS = {"format_version", "pipeline_type", "image_size", "hint_downscale", "latent_dim", "projection",
               "training", "denoise", "flip_average"}


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class PipelineDescription:
    """The content of ``pipeline.json``.

    ``hint_downscale``: hints are ``(N, 4, image_size // hint_downscale, ...)``. ``latent_dim`` is
    None for pipelines without an autoencoder. ``projection_k`` / ``projection_reg``: the k nearest
    bank latents and the LLE regulariser of ``models.projection.project``. ``training``: what made
    it (experiment, step, dataset, final). ``denoise``: the bilateral clean-up the pipeline applies
    to its pictures (``models/denoise.py``), None for none; an optional key, so folders without it
    read as before. ``flip_average``: the clean-up also averages each picture with the mirror image
    of the picture drawn from the mirrored inputs (optional, False when absent). ``extra``: keys
    this version does not know, kept so that a folder saves back as it was read.
    """

    pipeline_type: str
    image_size: int
    hint_downscale: int
    latent_dim: int | None = None
    projection_k: int = DEFAULT_K
    projection_reg: float = DEFAULT_REG
    training: dict[str, Any] = field(default_factory=dict)
    denoise: DenoiseConfig | None = None
    flip_average: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.pipeline_type, str) or not self.pipeline_type:
            raise ValueError(f"pipeline_type must be a non-empty string, got {self.pipeline_type!r}")
        for name in ("image_size", "hint_downscale", "projection_k"):
            if not _positive_int(getattr(self, name)):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.image_size % self.hint_downscale:  # else hints of 0 px (or a size no generator has)
            raise ValueError(f"hint_downscale must divide image_size, got {self.hint_downscale} for "
                             f"image_size {self.image_size}")
        if self.latent_dim is not None and not _positive_int(self.latent_dim):
            raise ValueError(f"latent_dim must be None or a positive integer, got {self.latent_dim!r}")
        reg = self.projection_reg
        if isinstance(reg, bool) or not isinstance(reg, numbers.Real) or not math.isfinite(reg) or reg < 0:
            raise ValueError(f"projection_reg must be a finite number >= 0, got {reg!r}")
        if not isinstance(self.training, dict) or not isinstance(self.extra, dict):
            raise ValueError("training and extra must be dicts")
        if self.denoise is not None and not isinstance(self.denoise, DenoiseConfig):
            raise ValueError(f"denoise must be a DenoiseConfig or None, got {self.denoise!r}")
        if not isinstance(self.flip_average, bool):
            raise ValueError(f"flip_average must be true or false, got {self.flip_average!r}")
        # Plain Python numbers, so the JSON never holds numpy scalars.
        for name in ("image_size", "hint_downscale", "projection_k"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "projection_reg", float(reg))

    @property
    def hint_size(self) -> int:
        return self.image_size // self.hint_downscale

    @property
    def uses_latent(self) -> bool:
        """Whether the folder holds an autoencoder and a latent bank."""
        return self.pipeline_type in LATENT_PIPELINE_TYPES or self.pipeline_type == "autoencoder"

    def replace(self, **changes: Any) -> "PipelineDescription":
        return dataclasses.replace(self, **changes)

    # ---- dict / file ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        description: dict[str, Any] = {
            **self.extra,
            "format_version": PIPELINE_FORMAT_VERSION,
            "pipeline_type": self.pipeline_type,
            "image_size": self.image_size,
            "hint_downscale": self.hint_downscale,
            "projection": {"k": self.projection_k, "reg": self.projection_reg},
        }
        if self.latent_dim is not None:
            description["latent_dim"] = self.latent_dim
        if self.training:
            description["training"] = self.training
        if self.denoise is not None:
            description["denoise"] = self.denoise.to_dict()
        if self.flip_average:
            description["flip_average"] = True
        return description

    @classmethod
    def from_dict(cls, data: Any, source: str = PIPELINE_FILE) -> "PipelineDescription":
        """Validate a parsed ``pipeline.json``; errors are ``CheckpointError`` naming ``source``."""
        if not isinstance(data, dict) or "pipeline_type" not in data:
            raise CheckpointError(f"{source} does not describe a pipeline (no pipeline_type)")
        version = data.get("format_version")
        if version != PIPELINE_FORMAT_VERSION:
            raise CheckpointError(f"{source} has pipeline format_version {version!r}; this sketch2anime reads "
                                  f"version {PIPELINE_FORMAT_VERSION}")
        for key in ("image_size", "hint_downscale"):
            if not isinstance(data.get(key), int) or isinstance(data.get(key), bool) or data[key] < 1:
                raise CheckpointError(f"{source}: {key} must be a positive integer")
        projection = data.get("projection", {})
        if not isinstance(projection, dict):
            raise CheckpointError(f"{source}: projection must be an object {{\"k\": ..., \"reg\": ...}}")
        try:
            denoise = DenoiseConfig.from_dict(data["denoise"]) if data.get("denoise") is not None else None
            return cls(pipeline_type=data["pipeline_type"], image_size=data["image_size"],
                       hint_downscale=data["hint_downscale"], latent_dim=data.get("latent_dim"),
                       projection_k=projection.get("k", DEFAULT_K), projection_reg=projection.get("reg", DEFAULT_REG),
                       training=data.get("training") or {}, denoise=denoise,
                       flip_average=data.get("flip_average", False),
                       extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS})
        except ValueError as exc:
            raise CheckpointError(f"{source}: {exc}") from None

    @classmethod
    def read(cls, folder: str | Path) -> "PipelineDescription":
        path = Path(folder) / PIPELINE_FILE
        return cls.from_dict(read_json(path), str(path))

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / PIPELINE_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path


# ---------------------------------------------------------------------------------------------
# the folder

def find_pipeline_folder(path: str | Path) -> Path | None:
    """``path`` if it holds ``pipeline.json``, else its ``model/`` if that does (a run folder), else None."""
    folder = Path(path).expanduser()
    if (folder / PIPELINE_FILE).is_file():
        return folder
    if (folder / "model" / PIPELINE_FILE).is_file():
        return folder / "model"
    return None


def model_metas(folder: str | Path) -> dict[str, dict[str, Any]]:
    """``{part: meta}`` of the saved modules in a pipeline folder (what made each: experiment, step)."""
    folder = Path(folder)
    return {part: read_model_description(folder / part).get("meta", {})
            for part in ("autoencoder", "generator", f"{PARTS_DIR}/autoencoder")
            if (folder / part / CONFIG_FILE).is_file()}


def _same_file(a: Path, b: Path) -> bool:
    return b.is_file() and b.stat().st_size == a.stat().st_size and b.read_bytes() == a.read_bytes()


def _copy_stem(source: Path, destination: Path) -> None:
    """``<stem>.safetensors`` then ``<stem>.json`` (the index last), each only when it differs."""
    for suffix in (".safetensors", ".json"):
        src, dst = source.with_name(source.name + suffix), destination.with_name(destination.name + suffix)
        if not _same_file(src, dst):
            atomic_write_bytes(dst, src.read_bytes())


def _copy_model_if_changed(source: Path, destination: Path) -> None:
    # Checkpoint exports re-copy a frozen autoencoder only when it differs (config or weight size).
    same = _same_file(source / CONFIG_FILE, destination / CONFIG_FILE) \
        and (destination / MODEL_FILE).is_file() \
        and (destination / MODEL_FILE).stat().st_size == (source / MODEL_FILE).stat().st_size
    if not same:
        copy_model_folder(source, destination)


def write_pipeline_folder(folder: str | Path, description: PipelineDescription,
                          models: Mapping[str, "nn.Module | Path"],
                          bank: "LatentBank | Path | None" = None, palettes: "PaletteBank | Path | None" = None,
                          meta: Mapping[str, Mapping[str, Any]] | None = None,
                          bank_storage: str = "float32") -> Path:
    """Write a pipeline folder: the modules' folders, the latent bank, the palettes, ``pipeline.json`` last.

    ``models``: part name (``"autoencoder"``, ``"generator"``) -> a module (saved with
    ``meta[part]``) or a saved model folder (copied when it differs: a frozen stage-1 autoencoder).
    ``bank`` / ``palettes``: an object (saved; the bank with ``bank_storage``, "float32", "int8" or
    "float16"), the path stem of files to copy (e.g. ``stage1/latent_bank``), or None to keep
    what the folder already holds. Refuses to write ``pipeline.json`` over a folder that lacks a
    part the description's type needs. Returns ``folder``.
    """
    folder = Path(folder)
    meta = meta or {}
    for part, model in models.items():
        if isinstance(model, (str, Path)):
            _copy_model_if_changed(Path(model), folder / part)
        else:
            save_model(model, folder / part, meta=dict(meta.get(part, {})))
    if bank is not None:
        if isinstance(bank, (str, Path)):
            _copy_stem(Path(bank), folder / BANK_STEM)
        else:
            bank.save(folder / BANK_STEM, storage=bank_storage)
    if palettes is not None:
        if isinstance(palettes, (str, Path)):
            _copy_stem(Path(palettes), folder / PALETTE_STEM)
        else:
            palettes.save(folder / PALETTE_STEM)
    missing = [name for name in required_parts(description) if not (folder / name).exists()]
    if missing:
        raise ValueError(f"a {description.pipeline_type!r} pipeline folder needs {', '.join(missing)}; "
                         f"{folder} lacks it (pass it to write_pipeline_folder)")
    description.write(folder)
    return folder


def required_parts(description: PipelineDescription) -> list[str]:
    """The files and folders (relative names) a folder of this description's type must hold."""
    if description.pipeline_type == "autoencoder":
        return ["autoencoder/config.json", f"{BANK_STEM}.json"]
    if description.pipeline_type in LATENT_PIPELINE_TYPES:
        return ["autoencoder/config.json", "generator/config.json", f"{BANK_STEM}.json"]
    return ["generator/config.json"]


def pipeline_description(pipeline_type: str, image_size: int, hint_downscale: int, latent_dim: int | None = None,
                         projection_k: int = DEFAULT_K, projection_reg: float = DEFAULT_REG,
                         training: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``pipeline.json`` as a dict (older name; ``PipelineDescription(...).to_dict()``)."""
    return PipelineDescription(pipeline_type, image_size, hint_downscale, latent_dim, projection_k, projection_reg,
                               training or {}).to_dict()


def read_pipeline_description(folder: str | Path) -> dict[str, Any]:
    """``pipeline.json`` of ``folder`` as a validated dict (older name; ``PipelineDescription.read``)."""
    return PipelineDescription.read(folder).to_dict()


# ---------------------------------------------------------------------------------------------
# the parts folder (models/part_guide.py)
#
#   MODEL/parts/parts.json       {"format_version": 1, "layout": PartLayout.to_dict()}
#   MODEL/parts/autoencoder/     save_model folder: the part autoencoder
#   MODEL/parts/bank_<box>.*     each box's latent bank (absent in a part-autoencoder run's export:
#                                the guided stage builds them from its own dataset)

PARTS_DIR = "parts"
PARTS_FILE = "parts.json"
PARTS_FORMAT_VERSION = 1


def part_bank_stem(folder: str | Path, box_name: str) -> Path:
    return Path(folder) / PARTS_DIR / f"bank_{box_name}"


def write_parts_folder(folder: str | Path, layout: "PartLayout", autoencoder: "nn.Module | Path",
                       banks: "Mapping[str, LatentBank] | None" = None, meta: Mapping[str, Any] | None = None,
                       bank_storage: str = "float32") -> Path:
    """Write ``folder/parts/``: the part autoencoder (a module, or a saved folder to copy), banks, ``parts.json`` last."""
    parts = Path(folder) / PARTS_DIR
    if isinstance(autoencoder, (str, Path)):
        _copy_model_if_changed(Path(autoencoder), parts / "autoencoder")
    else:
        save_model(autoencoder, parts / "autoencoder", meta=dict(meta or {}))
    for name, bank in (banks or {}).items():
        if name not in layout.names:
            raise ValueError(f"bank for unknown part {name!r}; the layout has {layout.names}")
        bank.save(part_bank_stem(folder, name), storage=bank_storage)
    atomic_write_text(parts / PARTS_FILE, json.dumps({"format_version": PARTS_FORMAT_VERSION,
                                                      "layout": layout.to_dict()}, indent=2, sort_keys=True))
    return parts


def has_parts(folder: str | Path) -> bool:
    return (Path(folder) / PARTS_DIR / PARTS_FILE).is_file()


def read_parts_folder(folder: str | Path, need_banks: bool = True
                      ) -> "tuple[PartLayout, nn.Module, dict[str, LatentBank]]":
    """``(layout, part autoencoder, {box: bank})`` of ``folder/parts/``; CheckpointError when damaged or incomplete."""
    from .checkpoint import load_model
    from .config import ConfigError
    from .models.part_guide import PartLayout
    from .models.projection import LatentBank

    parts = Path(folder) / PARTS_DIR
    data = read_json(parts / PARTS_FILE)
    if not isinstance(data, dict) or data.get("format_version") != PARTS_FORMAT_VERSION:
        raise CheckpointError(f"{parts / PARTS_FILE} is not a version-{PARTS_FORMAT_VERSION} parts description")
    try:
        layout = PartLayout.from_dict(data.get("layout") or {})
    except ConfigError as exc:
        raise CheckpointError(f"{parts / PARTS_FILE}: {exc}") from None
    autoencoder = load_model(parts / "autoencoder", expected_type="sketch_autoencoder")
    if autoencoder.config.image_size != layout.part_size:
        raise CheckpointError(f"{parts}: the part autoencoder is {autoencoder.config.image_size} px, the layout "
                              f"{layout.part_size} px")
    banks = {}
    for name in layout.names:
        stem = part_bank_stem(folder, name)
        if stem.with_suffix(".json").is_file():
            banks[name] = LatentBank.load(stem)
        elif need_banks:
            raise CheckpointError(f"{parts} lacks the latent bank of part {name!r} ({stem.name}.json)")
    return layout, autoencoder, banks
