"""Self-describing model files and resumable training state, written atomically, no pickle.

A saved model is a folder with ``model.safetensors`` and ``config.json``::

    {"format_version": 1, "model_type": "sketch_autoencoder", "config": {...}, "meta": {...}}

``load_model(folder)`` needs no other argument: ``model_type`` picks the class from
``sketch2anime.models.MODEL_CLASSES`` and ``config`` rebuilds its frozen config.

Training state (optimizer moments, step counter, RNG states) lives in a separate file pair
``<name>.safetensors`` + ``<name>.json`` so resuming never depends on pickle either: tensors go to
safetensors, everything else to JSON, linked by key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import from_dict, to_dict

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A model or state file is missing, corrupt, or does not match what it claims to be."""


# ---------------------------------------------------------------------------------------------
# atomic file writes

def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_temporary(path: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.tmp`` beside ``path`` (the name ``remove_stale_temporaries`` knows),
    opened for writing with the permissions a plain write gets (0666 less the umask; mkstemp's
    0600 would make saved models and prepared images private to their writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def _replacing(path: Path, durable: bool = True) -> Iterator[tuple[int, Path]]:
    """Yield ``(fd, tmp)``: the caller writes the temporary and closes ``fd``; then ``tmp`` replaces
    ``path`` in one rename, or is deleted if the block raised."""
    fd, tmp = _open_temporary(path)
    try:
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never half.

    ``durable=False`` skips the fsyncs: readers and a killed process still never see half a file,
    but a power cut may lose the newest content (for files that can be remade, like a prepared
    dataset's images, where an fsync per file would cost more than the work)."""
    path = Path(path)
    with _replacing(path, durable) as (fd, _):
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files that a killed writer left under ``folder``.

    Only a process that owns ``folder`` (the one training run using it) may call this: it cannot
    tell a stale file from another process's write in progress.
    """
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    with _replacing(path) as (fd, tmp):
        os.close(fd)
        contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(contiguous, tmp, metadata=metadata)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing file {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None


# ---------------------------------------------------------------------------------------------
# models

def _model_classes() -> dict[str, tuple[type[nn.Module], type]]:
    from .models import MODEL_CLASSES  # late import: models import nothing from here

    return MODEL_CLASSES


def model_type_of(module: nn.Module) -> str:
    for name, (cls, _) in _model_classes().items():
        if type(module) is cls:
            return name
    raise CheckpointError(f"{type(module).__name__} is not a registered model class")


def save_model(module: nn.Module, directory: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (created, replaced atomically per file)."""
    directory = Path(directory)
    model_type = model_type_of(module)
    config = getattr(module, "config", None)
    if config is None:
        raise CheckpointError(f"{type(module).__name__} has no .config to save")
    state = {k: v for k, v in module.state_dict().items()}
    # Weights first, config last: a folder with a config.json always has matching weights.
    atomic_save_tensors(directory / MODEL_FILE, state, metadata={"model_type": model_type})
    description = {
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "config": to_dict(config),
        "meta": meta or {},
    }
    atomic_write_text(directory / CONFIG_FILE, json.dumps(description, indent=2, sort_keys=True))
    return directory


def read_model_description(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"model folder not found: {directory}")
    description = read_json(directory / CONFIG_FILE)
    if not isinstance(description, dict) or "model_type" not in description:
        raise CheckpointError(f"{directory / CONFIG_FILE} does not describe a model (no model_type)")
    version = description.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} has format_version {version!r}; this sketch2anime reads version {FORMAT_VERSION}"
        )
    return description


def load_model(directory: str | Path, expected_type: str | None = None) -> nn.Module:
    """Rebuild the module saved in ``directory``; errors name the missing/mismatched part."""
    directory = Path(directory)
    description = read_model_description(directory)
    model_type = description["model_type"]
    classes = _model_classes()
    if model_type not in classes:
        raise CheckpointError(f"{directory}: unknown model_type {model_type!r} (known: {', '.join(sorted(classes))})")
    if expected_type is not None and model_type != expected_type:
        raise CheckpointError(f"{directory} holds a {model_type!r} model, expected {expected_type!r}")
    cls, config_cls = classes[model_type]
    settings = description.get("config", {})
    if not isinstance(settings, dict):
        raise CheckpointError(f"{directory / CONFIG_FILE}: config must be an object of settings, "
                              f"got {type(settings).__name__}")
    try:
        config = from_dict(config_cls, settings, model_type)
        # The config's shapes from a module on the meta device, which allocates nothing: a tampered
        # config (base_channels=4096) must fail against the tensors file, not after gigabytes.
        with torch.device("meta"):
            expected = {key: tuple(value.shape) for key, value in cls(config).state_dict().items()}
    except (ValueError, TypeError, RuntimeError) as exc:  # ConfigError, and configs that raise ValueError
        raise CheckpointError(f"{directory / CONFIG_FILE}: {exc}") from None
    state = read_tensors(directory / MODEL_FILE)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{directory}: weights do not match the {model_type} config "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != expected[key]:
            raise CheckpointError(
                f"{directory}: weight {key} has shape {tuple(tensor.shape)}, the config needs {expected[key]}"
            )
        # NaN/inf weights would give NaN pictures (all black once converted to 8 bits).
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{directory / MODEL_FILE}: weight {key} contains NaN or infinite values")
    # Only now is the module built for real: its size is that of the tensors file on disk.
    module = cls(config)
    module.load_state_dict(state)
    module.eval()
    return module


# ---------------------------------------------------------------------------------------------
# training state (resumable, pickle-free)

def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}:{prefix}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}.k", tensors), _flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        tag = "__tuple__" if isinstance(obj, tuple) else "__list__"
        return {tag: [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"cannot store a {type(obj).__name__} in training state at {prefix}")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
    return obj


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Save nested state (tensors, numbers, strings) as ``path.safetensors`` + ``path.json``.

    The JSON is written last and names the tensors file's content hash-free key set, so a reader
    that finds a JSON also finds its tensors; a crash between the two leaves the previous pair.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "state", tensors)
    generation = int(state.get("step", 0)) if isinstance(state.get("step", 0), int) else 0
    tensor_path = path.with_name(f"{path.name}.{generation}.safetensors")
    atomic_save_tensors(tensor_path, tensors)
    atomic_write_text(path.with_name(f"{path.name}.json"), json.dumps({
        "format_version": FORMAT_VERSION,
        "tensors_file": tensor_path.name,
        "tree": tree,
    }))
    # Older generations are now unreferenced.
    for old in path.parent.glob(f"{path.name}.*.safetensors"):
        if old.name != tensor_path.name:
            old.unlink(missing_ok=True)


def load_training_state(path: str | Path) -> dict[str, Any] | None:
    """Return the saved state, or None when there is none yet."""
    path = Path(path)
    index_path = path.with_name(f"{path.name}.json")
    if not index_path.exists():
        return None
    index = read_json(index_path)
    if not isinstance(index, dict) or index.get("format_version") != FORMAT_VERSION:
        version = index.get("format_version") if isinstance(index, dict) else None
        raise CheckpointError(f"{index_path} is not a version-{FORMAT_VERSION} training state (format_version {version!r})")
    name = index.get("tensors_file")
    # A bare file name beside the index; anything else is a damaged or hand-edited index.
    if not isinstance(name, str) or not name or Path(name).name != name or "tree" not in index:
        raise CheckpointError(f"{index_path} does not name its tensors file (tensors_file {name!r})")
    tensors = read_tensors(path.parent / name)
    try:
        return _unflatten(index["tree"], tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{index_path} does not match {name} (missing or malformed entry {exc})") from None


def copy_model_folder(source: str | Path, destination: str | Path) -> None:
    """Copy a saved model folder into place atomically (a temporary sibling renamed)."""
    source, destination = Path(source), Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
