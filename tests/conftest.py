"""Shared fixtures: tiny synthetic images drawn with PIL, temporary folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sketch2anime.evaluation.fid import HED_VGG_LAYERS
from sketch2anime.testing.images import draw_face  # noqa: F401  (tests import it from here)

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
SPRITES = REPO / "tests" / "assets" / "sprites"


def load_script(name: str):
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and two threads fighting over 2 shared cores stall."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def scene(size: int, seed: int) -> Image.Image:
    """draw_face plus random blocks, so that different seeds are not perceptual near duplicates."""
    image = draw_face(size, seed)
    rng = np.random.default_rng(1000 + seed)
    d = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.integers(0, size, 2)
        w, h = rng.integers(size // 6, size // 2, 2)
        d.rectangle([int(x), int(y), int(x + w), int(y + h)], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def prepare_drawings(root: Path, count: int, draw_size: int, size: int, extractors: tuple[str, ...] = ("detail",),
                     val_fraction: float = 0.5, draw=None) -> Path:
    """``count`` pictures drawn at ``draw_size`` (``draw(size, index)``, default draw_face) under
    ``root/images``, prepared at ``size`` into ``root/prepared`` with a validation split."""
    from sketch2anime.data.prepare import PrepareConfig, prepare_dataset

    draw = draw or draw_face
    images = root / "images"
    images.mkdir()
    for i in range(count):
        draw(draw_size, i).save(images / f"face_{i:02d}.png")
    out = root / "prepared"
    prepare_dataset(images, out, PrepareConfig(size=size, extractors=extractors, val_fraction=val_fraction, workers=1),
                    progress=False)
    return out


def prepare_scenes(tmp_path_factory: pytest.TempPathFactory, count: int = 6, size: int = 80) -> Path:
    """A dataset made by ``prepare`` from ``count`` scenes (detail sketches, no validation split)."""
    from sketch2anime.data.prepare import PrepareConfig, prepare_dataset

    src = tmp_path_factory.mktemp("src")
    for i in range(count):
        scene(size, i).save(src / f"s{i:02d}.png")
    out = tmp_path_factory.mktemp("data") / "ds"
    prepare_dataset(src, out, PrepareConfig(extractors=("detail",), workers=1, val_fraction=0.0, seed=1),
                    progress=False)
    return out


@pytest.fixture(scope="module")
def prepared_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_scenes(tmp_path_factory)


@pytest.fixture
def face_rgb() -> np.ndarray:
    return np.asarray(draw_face(64, 0))


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        draw_face(96, i).save(folder / f"face_{i:02d}.png")
    return folder


class EdgeStatistics:
    """A cheap stand-in for the HED-VGG extractor with its layout: five "layers" of 3 channels
    (colour, colour squared, horizontal and vertical edges, detail above a 2x2 blur), pooled."""

    class Body(torch.nn.Module):
        def features(self, x: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
            pooled = torch.nn.functional.avg_pool2d(x, 2)
            detail = x - torch.nn.functional.interpolate(pooled, size=x.shape[-2:], mode="nearest")
            maps = [x, x * x, x.diff(dim=-1).abs(), x.diff(dim=-2).abs(), detail.abs()]
            return maps[:len(layers)]

    def __init__(self) -> None:
        self.model = self.Body()
        self.feature_dim = 15

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        maps = self.model.features(images.double(), HED_VGG_LAYERS)
        return torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1).numpy()
