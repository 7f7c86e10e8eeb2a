"""The default model shipped in the package: it loads by name, runs on any size, and follows hints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sketch2anime.inference import DEFAULT_MODEL_DIR, Sketch2AnimePipeline

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "pipeline.json").is_file(),
                                reason="no default model in this checkout")


@pytest.fixture(scope="module")
def pipe() -> Sketch2AnimePipeline:
    torch.set_num_threads(1)
    return Sketch2AnimePipeline.from_pretrained("default", device="cpu")


def face_sketch(size: int = 512) -> Image.Image:
    image = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(image)
    s = size / 512
    d.arc([80 * s, 60 * s, 432 * s, 480 * s], 0, 180, fill=0, width=int(6 * s))  # jaw
    d.arc([80 * s, 60 * s, 432 * s, 400 * s], 180, 360, fill=0, width=int(6 * s))  # hair
    for cx in (186, 326):
        d.ellipse([(cx - 34) * s, 260 * s, (cx + 34) * s, 340 * s], outline=0, width=int(6 * s))
    d.line([226 * s, 400 * s, 286 * s, 400 * s], fill=0, width=int(6 * s))
    return image


def test_shipped_model_is_small_and_self_describing() -> None:
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 50_000_000
    assert (DEFAULT_MODEL_DIR / "MODEL_CARD.md").is_file()
    assert not list(DEFAULT_MODEL_DIR.rglob("*.pt")) and not list(DEFAULT_MODEL_DIR.rglob("*.pkl"))


def test_default_model_colours_a_sketch_of_any_size(pipe: Sketch2AnimePipeline) -> None:
    for size in (64, 300, 512):
        out = pipe(face_sketch(size), seed=0)
        assert out.size == (size, size) and out.mode == "RGB"
    array = np.asarray(pipe(face_sketch(), seed=0), dtype=np.float32)
    assert array.std() > 10, "a trained model paints a picture, not a flat page"
    assert np.abs(array[..., 0] - array[..., 2]).mean() > 3, "and in colour, not grey"


@pytest.mark.parametrize("colour", [(40, 80, 230), (230, 60, 140)])
def test_hair_hint_steers_the_hinted_region(pipe: Sketch2AnimePipeline, colour: tuple[int, int, int]) -> None:
    hint = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    ImageDraw.Draw(hint).rectangle([160, 100, 352, 160], fill=colour + (255,))
    plain = np.asarray(pipe(face_sketch(), None, seed=0), dtype=np.float32)[100:160, 160:352]
    hinted = np.asarray(pipe(face_sketch(), hint, seed=0), dtype=np.float32)[100:160, 160:352]
    target = np.asarray(colour, dtype=np.float32)
    before = np.linalg.norm(plain.mean((0, 1)) - target)
    after = np.linalg.norm(hinted.mean((0, 1)) - target)
    assert after < 0.5 * before, f"hint {colour}: mean colour distance {before:.0f} -> {after:.0f}"


def test_projection_changes_the_preview(pipe: Sketch2AnimePipeline) -> None:
    _, raw = pipe(face_sketch(), projection=0.0, seed=0, return_projected=True)
    _, full = pipe(face_sketch(), projection=1.0, seed=0, return_projected=True)
    assert raw is not None and full is not None
    assert np.abs(np.asarray(raw, np.float32) - np.asarray(full, np.float32)).mean() > 1
