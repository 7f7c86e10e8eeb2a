"""``Upscaler``: a converted anime super-resolution network, tiled, on PIL images; ``sketch2anime upscale``.

Typical use::

    up = Upscaler.from_pretrained("animevideov3-x4")      # from the cache (sketch2anime weights upscaler)
    large = up(Image.open("result.png"))                  # PIL RGB, 4x the size
    large = enlarge(picture, 8, sketch=my_sketch, lines=1.0)   # 4x then 2x, the user's lines multiplied over

Large inputs are cut into tiles of ``tile`` input pixels, each run with ``network.context`` pixels
of real neighbouring image around it and cropped back, so the tiled result equals the untiled one
(up to float rounding) while memory stays bounded.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..checkpoint import read_json, read_tensors
from ..config import from_dict
from ..data.image_io import IMAGE_SUFFIXES, ImageInput, list_images, load_rgb, load_sketch
from .convert import NETWORKS, build_network
from .fetch import CONFIG_FILE, FORMAT_VERSION, MODEL_FILE, UPSCALERS, installed_upscaler

DEFAULT_TILE = 256
# Which shipped networks make each factor: 8x runs the fast 4x, then waifu2x's 2x.
FACTOR_PLANS: dict[int, tuple[str, ...]] = {
    1: (),
    2: ("waifu2x-upconv7-x2",),
    4: ("animevideov3-x4",),
    8: ("animevideov3-x4", "waifu2x-upconv7-x2"),
}


def check_factor(factor: Any) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or int(factor) not in FACTOR_PLANS:
        raise ValueError(f"upscale must be one of {', '.join(str(f) for f in FACTOR_PLANS)}, got {factor!r}")
    return int(factor)


def check_lines(lines: Any) -> float:
    if isinstance(lines, bool) or not isinstance(lines, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(lines) <= 1.0:
        raise ValueError(f"lines must be a number in [0, 1] (0 = off, 1 = the sketch's ink at full strength), got {lines!r}")
    return float(lines)


def prepare_upscaling(factor: Any, lines: Any = 0.0, device: str = "cpu") -> tuple[int, float]:
    """Check ``factor`` and ``lines`` and load the upscalers ``factor`` needs, so that a missing one
    stops a command before any work (MissingWeightsError names the command to run)."""
    factor, lines = check_factor(factor), check_lines(lines)
    for name in FACTOR_PLANS[factor]:
        load_upscaler(name, str(device))
    return factor, lines


def tiled_forward(network: torch.nn.Module, x: torch.Tensor, scale: int, tile: int, context: int) -> torch.Tensor:
    """Run ``network`` ((N, C, H, W) -> (N, C', sH, sW)) tile by tile.

    Each ``tile`` x ``tile`` block gets ``context`` pixels of the real image on every side that has
    one (at the image border the network sees the border exactly as untiled), and only the block's
    own ``scale``x area of the output is kept.
    """
    n, _, height, width = x.shape
    if height <= tile and width <= tile:
        return network(x)
    out: torch.Tensor | None = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            t0, l0 = max(top - context, 0), max(left - context, 0)
            b0, r0 = min(bottom + context, height), min(right + context, width)
            y = network(x[..., t0:b0, l0:r0])
            if out is None:
                out = y.new_empty(n, y.shape[1], height * scale, width * scale)
            out[..., top * scale:bottom * scale, left * scale:right * scale] = \
                y[..., (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    assert out is not None
    return out


class Upscaler:
    """A loaded upscaler folder. ``scale``: the enlargement; ``name``; ``network`` (an nn.Module)."""

    def __init__(self, network: torch.nn.Module, name: str, meta: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu", tile: int = DEFAULT_TILE) -> None:
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 16:
            raise ValueError(f"tile must be an integer >= 16 (input pixels), got {tile!r}")
        self.network = network.to(device).eval()
        self.name = name
        self.meta = meta or {}
        self.device = torch.device(device)
        self.tile = tile

    @property
    def scale(self) -> int:
        return int(self.network.scale)

    @classmethod
    def from_pretrained(cls, name_or_folder: str | Path, device: str | torch.device = "cpu",
                        tile: int = DEFAULT_TILE) -> "Upscaler":
        """A shipped name (``animevideov3-x4``, ``waifu2x-upconv7-x2``: read from the cache) or a folder."""
        folder = installed_upscaler(str(name_or_folder)) if str(name_or_folder) in UPSCALERS else Path(name_or_folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ValueError(f"{folder} is not an upscaler folder (no {CONFIG_FILE}); shipped upscalers: "
                             f"{', '.join(UPSCALERS)} (install with `sketch2anime weights upscaler`)")
        description = read_json(folder / CONFIG_FILE)
        if not isinstance(description, dict) or description.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / CONFIG_FILE}: not an upscaler description of format_version {FORMAT_VERSION}")
        network = description.get("model_type")
        if network not in NETWORKS:
            raise ValueError(f"{folder}: unknown upscaler network {network!r} (known: {', '.join(NETWORKS)})")
        config = from_dict(NETWORKS[network][1], description.get("config", {}))
        module = build_network(network, config, read_tensors(folder / MODEL_FILE))
        meta = description.get("meta", {})
        return cls(module, str(meta.get("name", folder.name)), meta, device, tile)

    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> (N, 3, scale*H, scale*W) in [0, 1], tiled for large inputs."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"upscale_tensor needs an (N, 3, H, W) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        with torch.inference_mode():
            y = tiled_forward(self.network, x.float().to(self.device), self.scale, self.tile, self.network.context)
        return y.clamp(0, 1).cpu()

    def __call__(self, image: ImageInput) -> Image.Image:
        """Any image (path, bytes, PIL, numpy; alpha composited on white) -> PIL RGB, ``scale``x larger."""
        rgb = np.asarray(load_rgb(image), dtype=np.float32) / 255.0
        y = self.upscale_tensor(torch.from_numpy(rgb).permute(2, 0, 1)[None])
        return Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8), "RGB")


@functools.lru_cache(maxsize=8)
def load_upscaler(name: str, device: str = "cpu") -> Upscaler:
    """A shipped upscaler from the cache, loaded once per process (MissingWeightsError names the command)."""
    return Upscaler.from_pretrained(name, device=device)


def multiply_lines(picture: Image.Image, sketch: ImageInput, strength: float = 1.0) -> Image.Image:
    """Lay the sketch's ink over ``picture`` (multiply, as line-art colourists do): crisp lines at any size.

    ``sketch`` (255 paper, 0 ink) is resized to the picture; ``strength`` in [0, 1] fades the lines.
    """
    strength = check_lines(strength)
    lines = load_sketch(sketch)
    if lines.size != picture.size:
        shrinking = lines.size[0] > picture.size[0]
        lines = lines.resize(picture.size, Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC)
    ink = 1.0 - np.asarray(lines, dtype=np.float32)[..., None] / 255.0
    colour = np.asarray(picture.convert("RGB"), dtype=np.float32)
    return Image.fromarray(np.clip(ink_multiply(colour, ink, strength) + 0.5, 0, 255).astype(np.uint8), "RGB")


def ink_multiply(colour, ink, strength: float):
    """The line-art multiply, for numpy arrays and tensors alike: ``colour`` (any scale, paper = its
    maximum) darkened by ``ink`` in [0, 1] (0 paper, 1 full ink) at ``strength`` in [0, 1]."""
    return colour * (1.0 - float(strength) * ink)


def enlarge(picture: ImageInput, factor: int, sketch: ImageInput | None = None, lines: float = 0.0,
            device: str = "cpu") -> Image.Image:
    """``picture`` enlarged ``factor`` times (1, 2, 4, 8) by the shipped upscalers, then, if ``lines``
    > 0, ``sketch`` multiplied over it. Raises MissingWeightsError naming the command to run."""
    factor, lines = check_factor(factor), check_lines(lines)
    image = load_rgb(picture)
    for name in FACTOR_PLANS[factor]:
        image = load_upscaler(name, str(device))(image)
    if lines:
        if sketch is None:
            raise ValueError("lines > 0 needs the sketch whose lines are laid over the result")
        image = multiply_lines(image, sketch, lines)
    return image


@dataclass(frozen=True)
class UpscaleConfig:
    """Everything ``upscale`` needs; mirrors the flags of ``sketch2anime upscale`` (cli.py)."""

    input: Path  # an image, or a folder of them
    out: Path  # an output PNG, or a folder
    scale: int = 4  # through FACTOR_PLANS, unless ``upscaler`` names one
    upscaler: str | None = None  # one upscaler by name or folder
    tile: int = DEFAULT_TILE
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "scale", check_factor(self.scale))
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 16:
            raise ValueError(f"tile must be an integer >= 16 (input pixels), got {self.tile!r}")


def run_upscale(config: UpscaleConfig) -> int:
    """``sketch2anime upscale IN -o OUT [--scale 4 | --upscaler NAME]``; a folder in gives a folder out."""
    source, out = config.input, config.out
    if not source.exists():
        raise ValueError(f"no such image file or folder: {source}")
    if config.upscaler:
        upscaler = Upscaler.from_pretrained(config.upscaler, device=config.device, tile=config.tile)
        run = upscaler
    else:
        run = functools.partial(enlarge, factor=config.scale, device=config.device)
    if source.is_dir():
        jobs = [(path, out / path.relative_to(source).with_suffix(".png")) for path in list_images(source)]
        if not jobs:
            raise ValueError(f"{source} contains no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    else:
        target = out if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir() else out / f"{source.stem}.png"
        jobs = [(source, target)]
    failed = 0
    for path, target in jobs:
        try:
            image = run(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target)
        except ValueError as exc:
            if type(exc).__name__ == "MissingWeightsError":
                raise
            failed += 1
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        print(f"wrote {target} ({image.width}x{image.height})")
    return 1 if failed else 0


SERVER_MAX_SIDE = 1024  # the panel sends 64-512 px results; a 1024 px input already gives 4096 px


def installed_upscalers(device: str = "cpu", max_side: int = SERVER_MAX_SIDE) -> dict[str, Any]:
    """Every shipped upscaler present in the cache, 4x first, as ``PIL -> PIL`` callables for the
    panel's ``/api/upscale`` (inputs over ``max_side`` are refused with a ValueError, i.e. a 400)."""
    found: dict[str, Any] = {}
    for name in sorted(UPSCALERS, key=lambda n: -UPSCALERS[n].scale):
        try:
            upscaler = load_upscaler(name, device)
        except ValueError:  # not installed (MissingWeightsError) or unreadable: the panel goes without
            continue

        def run(image: Image.Image, upscaler: Upscaler = upscaler) -> Image.Image:
            if max(image.size) > max_side:
                raise ValueError(f"the image is {image.width}x{image.height}; the panel enlarges images up to "
                                 f"{max_side} px (use `sketch2anime upscale` for larger ones)")
            return upscaler(image)

        found[name] = run
    return found
