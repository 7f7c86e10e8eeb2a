"""Cel flattening (flatten.py): one colour per closed region, smoothing in open ones, small ones kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sketch2anime.flatten import FlattenConfig, flatten_picture, flatten_tensor
from sketch2anime.flatten import flatten_array as flatten_unit

SIZE = 96


def _sketch() -> Image.Image:
    """A big closed ring (a face), a tiny closed ring (an eye) and open paper around them."""
    sketch = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(sketch)
    draw.ellipse((20, 20, 76, 76), outline=0, width=2)
    draw.ellipse((4, 4, 12, 12), outline=0, width=1)
    return sketch


def _masks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inside = (yy - 48) ** 2 + (xx - 48) ** 2 < 24 ** 2
    eye = (yy - 8) ** 2 + (xx - 8) ** 2 < 2 ** 2
    outside = (yy - 48) ** 2 + (xx - 48) ** 2 > 32 ** 2
    outside &= ~((yy < 16) & (xx < 16))
    return inside, eye, outside


def _blotchy_picture(seed: int = 0) -> np.ndarray:
    """Inside the ring: magenta and green blotches; outside: red on the left fading to blue on the
    right, with pixel hue noise; the eye: a checkerboard."""
    rng = np.random.default_rng(seed)
    picture = np.zeros((SIZE, SIZE, 3), np.float32)
    _, eye, _ = _masks()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inside = (yy - 48) ** 2 + (xx - 48) ** 2 < 27 ** 2  # up to the ring's ink
    blotches = rng.random((SIZE // 8, SIZE // 8)) > 0.3  # mostly magenta: a clear median
    blotches = np.kron(blotches, np.ones((8, 8), bool))
    picture[inside & blotches] = (200, 60, 200)
    picture[inside & ~blotches] = (60, 200, 60)
    ramp = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[None, :]
    background = np.stack([220 * (1 - ramp), np.full_like(ramp, 40), 220 * ramp], -1)
    # hue noise of one lightness (red up where green goes down), as the model's blotches are
    hue_noise = rng.normal(0, 25, (SIZE, SIZE, 1)) * np.array([1.0, -1.0, 0.0], np.float32)
    background = np.broadcast_to(background, (SIZE, SIZE, 3)) + hue_noise
    picture[~inside] = background[~inside]
    checker = ((np.indices((SIZE, SIZE)).sum(0) % 2) * 255).astype(np.float32)[..., None]
    picture[eye] = np.broadcast_to(checker, (SIZE, SIZE, 3))[eye]
    return np.clip(picture, 0, 255)


def flatten_array(picture: np.ndarray, ink: np.ndarray, strength, config: FlattenConfig = FlattenConfig()):
    """flatten.flatten_array on a 0-255 picture (it works in [0, 1])."""
    return flatten_unit(picture / 255.0, ink, strength, config) * 255.0


def _ink() -> np.ndarray:
    return 1.0 - np.asarray(_sketch(), np.float32) / 255.0


def test_closed_regions_become_one_colour_and_strength_blends() -> None:
    picture, ink = _blotchy_picture(), _ink()
    inside, _, _ = _masks()
    full = flatten_array(picture, ink, 1.0)
    assert picture[inside].std(axis=0).max() > 50  # the blotches
    assert full[inside].std(axis=0).max() < 0.05  # one colour
    # the median of the blotches, not some unrelated colour
    assert np.allclose(full[inside][0], np.median(picture[inside], axis=0), atol=20)
    half = flatten_array(picture, ink, 0.5)
    assert np.allclose(half, picture + 0.5 * (full - picture), atol=1e-3)
    assert np.allclose(flatten_array(picture, ink, 0.0), picture, atol=1e-3)


def test_small_regions_keep_the_models_colours() -> None:
    picture, ink = _blotchy_picture(), _ink()
    _, eye, _ = _masks()
    full = flatten_array(picture, ink, 1.0)
    assert np.array_equal(full[eye], picture[eye])
    # with a threshold below the eye's area, the eye is flattened too
    tiny = flatten_array(picture, ink, 1.0, FlattenConfig(min_region=0.001))
    assert tiny[eye].std(axis=0).max() < 0.05


SMOOTH_OPEN = FlattenConfig(open_radius=0.04)


def test_open_regions_keep_the_models_colours_by_default() -> None:
    picture, ink = _blotchy_picture(), _ink()
    inside, _, outside = _masks()
    full = flatten_array(picture, ink, 1.0)
    assert np.allclose(full[outside], picture[outside], atol=1e-3)
    assert full[inside].std(axis=0).max() < 0.05  # while the closed region is still filled


def test_open_regions_are_smoothed_not_filled_flat() -> None:
    picture, ink = _blotchy_picture(), _ink()
    _, _, outside = _masks()
    full = flatten_array(picture, ink, 1.0, SMOOTH_OPEN)
    left, right = outside.copy(), outside.copy()
    left[:, 12:] = False
    right[:, :-12] = False
    # the red-to-blue fade survives (a fill would make both sides one colour) ...
    assert full[left][:, 0].mean() > full[right][:, 0].mean() + 100
    assert full[right][:, 2].mean() > full[left][:, 2].mean() + 100
    # ... the hue noise does not
    noise_before = np.abs(np.diff(picture[30:66, :, 1], axis=1)).mean()
    band = np.abs(np.diff(full[30:66, :, 1], axis=1))[outside[30:66, 1:] & outside[30:66, :-1]]
    assert band.mean() < noise_before / 4


def test_ink_keeps_the_models_line_pixels() -> None:
    picture, ink = _blotchy_picture(), _ink()
    picture[ink > 0.99] = (10, 10, 10)  # the model drew the line dark
    full = flatten_array(picture, ink, 1.0)
    assert np.allclose(full[ink > 0.99], 10, atol=1e-3)


def test_picture_and_tensor_forms_agree() -> None:
    picture = _blotchy_picture()
    sketch = _sketch()
    as_picture = np.asarray(flatten_picture(Image.fromarray(picture.astype(np.uint8)), sketch), np.float32)
    image = torch.from_numpy(picture.astype(np.uint8).astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    lines = torch.from_numpy(np.asarray(sketch, np.float32) / 127.5 - 1.0)[None, None]
    as_tensor = (flatten_tensor(image, lines, 1.0)[0].permute(1, 2, 0).numpy() + 1.0) * 127.5
    assert np.abs(as_picture - as_tensor).max() <= 1.0
    # a larger sketch is resized to the picture
    big = sketch.resize((SIZE * 4, SIZE * 4), Image.Resampling.NEAREST)
    resized = np.asarray(flatten_picture(Image.fromarray(picture.astype(np.uint8)), big), np.float32)
    inside, _, _ = _masks()
    assert resized[inside].std(axis=0).max() < 1.0


def test_bad_input_is_refused() -> None:
    picture, ink = _blotchy_picture(), _ink()
    for bad in (1.5, -0.1, True, "1"):
        with pytest.raises(ValueError, match="flatten must be a number"):
            flatten_array(picture, ink, bad)
    with pytest.raises(ValueError, match="same size"):
        flatten_array(picture, ink[:10], 1.0)
    with pytest.raises(ValueError, match="min_region"):
        FlattenConfig(min_region=2.0)
    with pytest.raises(ValueError, match="sketch at the picture's size"):
        flatten_tensor(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 4, 4))
    blank = flatten_array(picture, np.zeros_like(ink), 1.0)  # no lines: one open region, smoothed
    assert blank.shape == picture.shape and np.isfinite(blank).all()


def _face_sketch() -> Image.Image:
    sketch = Image.new("L", (160, 160), 255)
    draw = ImageDraw.Draw(sketch)
    draw.ellipse((30, 30, 130, 140), outline=0, width=3)  # face
    draw.arc((20, 10, 140, 110), 180, 360, fill=0, width=3)  # hair, open below
    draw.ellipse((55, 70, 70, 85), outline=0, width=2)
    draw.ellipse((90, 70, 105, 85), outline=0, width=2)
    return sketch


def test_pipeline_and_generate_flatten_the_saved_picture(tmp_path: Path) -> None:
    from sketch2anime.cli import main
    from sketch2anime.inference import Sketch2AnimePipeline

    pipe = Sketch2AnimePipeline.from_pretrained("default", device="cpu")
    sketch = _face_sketch()
    plain = pipe(sketch, seed=0)
    flat = pipe(sketch, seed=0, flatten=1.0)
    assert flat.size == plain.size == sketch.size
    expected = np.asarray(flatten_picture(plain, sketch, 1.0), np.int16)
    assert np.abs(np.asarray(flat, np.int16) - expected).max() <= 1
    # inside the face (a closed region) the colours are one, where the model's vary
    face = np.asarray(plain, np.float32)[95:120, 60:100].reshape(-1, 3)
    assert face.std(axis=0).max() > 2.0
    assert np.asarray(flat, np.float32)[95:120, 60:100].reshape(-1, 3).std(axis=0).max() < 0.6
    sketch.save(tmp_path / "face.png")
    assert main(["generate", str(tmp_path / "face.png"), "-o", str(tmp_path / "out.png"), "--seed", "0",
                 "--flatten"]) == 0
    assert np.abs(np.asarray(Image.open(tmp_path / "out.png"), np.int16) - np.asarray(flat, np.int16)).max() <= 1
    assert main(["generate", str(tmp_path / "face.png"), "-o", str(tmp_path / "bad.png"), "--flatten", "2"]) != 0
    assert not (tmp_path / "bad.png").exists()
    with pytest.raises(ValueError, match="flatten must be a number"):
        pipe(sketch, flatten=-0.5)
    # at the model's size and for a list of sketches alike: the same flattening of the same picture
    wide = sketch.resize((200, 160))
    small = pipe(wide, seed=0, output_size="model", flatten=1.0)
    assert small.size[0] == pipe.image_size and small.size != (pipe.image_size, pipe.image_size)
    expected = flatten_picture(pipe(wide, seed=0, output_size="model"), wide, 1.0)
    assert np.array_equal(np.asarray(small), np.asarray(expected))
    many = pipe([wide, wide], seed=0, output_size="model", flatten=1.0)
    # a batch of two may round a pixel differently from one picture (float sums in another order)
    assert all(np.abs(np.asarray(one, np.int16) - np.asarray(small, np.int16)).max() <= 1 for one in many)


def test_thin_lines_of_a_large_sketch_still_close_their_regions() -> None:
    # A 2 px pen ring on a 512 px canvas is half a pixel at 128 px: shrunk as the model reads it
    # (geometry.shrink_sketch) it stays a wall, so the inside is one colour and the outside is not.
    sketch = Image.new("L", (512, 512), 255)
    ImageDraw.Draw(sketch).ellipse((96, 96, 416, 416), outline=0, width=2)
    rng = np.random.default_rng(1)
    picture = np.kron(rng.random((16, 16, 3)) * 255, np.ones((8, 8, 1))).astype(np.uint8)
    flat = np.asarray(flatten_picture(Image.fromarray(picture), sketch, 1.0), np.float32)
    yy, xx = np.mgrid[:128, :128]
    radius = np.hypot(yy - 64, xx - 64)
    assert flat[radius < 35].std(axis=0).max() < 0.6
    assert flat[radius > 45].std(axis=0).max() > 5.0  # the open outside is not filled


def test_open_regions_keep_an_edge_of_lightness_that_no_line_closes() -> None:
    # Dark hair beside light paper with no line between: the guide (the picture's own lightness)
    # keeps the edge, where a plain blur would spread a halo of grey over both sides.
    picture = np.full((SIZE, SIZE, 3), 240.0, np.float32)
    picture[:, : SIZE // 2] = (70, 40, 40)
    full = flatten_array(picture, np.zeros((SIZE, SIZE), np.float32), 1.0, SMOOTH_OPEN)
    assert np.abs(full[:, SIZE // 2 - 2] - (70, 40, 40)).max() < 20
    assert np.abs(full[:, SIZE // 2 + 1] - 240).max() < 20
