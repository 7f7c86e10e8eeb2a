"""Colour-hint simulation and conversion of user hint layers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conftest import draw_face
from sketch2anime.data.hints import HintConfig, empty_hint, hint_to_tensor, rgba_to_hint, simulate_hints

ALWAYS = HintConfig(empty_probability=0.0)


def block_image(size: int = 64, downscale: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An image made of constant downscale x downscale blocks, and its exact downscaled version."""
    small = np.random.default_rng(seed).integers(0, 256, (size // downscale, size // downscale, 3), dtype=np.uint8)
    return np.kron(small, np.ones((downscale, downscale, 1), dtype=np.uint8)), small


def test_hint_colours_equal_the_downscaled_image_under_the_mask() -> None:
    rgb, small = block_image()
    for seed in range(20):
        hint, mask = simulate_hints(rgb, ALWAYS, np.random.default_rng(seed))
        assert hint.shape == (16, 16, 3) and hint.dtype == np.uint8
        assert mask.shape == (16, 16) and mask.dtype == bool
        assert mask.any()
        assert np.array_equal(hint[mask], small[mask])
        assert (hint[~mask] == 0).all()


def test_hint_resolution_follows_downscale() -> None:
    rgb = np.asarray(draw_face(96, 0))
    hint, mask = simulate_hints(rgb, dataclasses.replace(ALWAYS, downscale=8), np.random.default_rng(0))
    assert hint.shape == (12, 12, 3) and mask.shape == (12, 12)


def test_deterministic_per_seed(face_rgb: np.ndarray) -> None:
    a = simulate_hints(face_rgb, HintConfig(), np.random.default_rng(11))
    b = simulate_hints(face_rgb, HintConfig(), np.random.default_rng(11))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    masks = [simulate_hints(face_rgb, ALWAYS, np.random.default_rng(s))[1] for s in range(5)]
    assert any(not np.array_equal(masks[0], m) for m in masks[1:])


def test_background_and_all_sides_get_hints(face_rgb: np.ndarray) -> None:
    band = np.zeros((16, 16), dtype=bool)
    band[:2], band[-2:], band[:, :2], band[:, -2:] = True, True, True, True
    masks = np.stack([simulate_hints(face_rgb, ALWAYS, np.random.default_rng(s))[1] for s in range(200)])
    assert masks[:, band].any(axis=1).mean() > 0.5, "the border region rarely gets hints"
    for side in (masks[:, :2], masks[:, -2:], masks[:, :, :2], masks[:, :, -2:]):
        assert side.any(axis=(1, 2)).mean() > 0.1
    # background_share=1 puts every stroke's start in the border band.
    config = dataclasses.replace(ALWAYS, background_share=1.0, border_width=0.125, stroke_length=(0.0, 0.0))
    for seed in range(30):
        mask = simulate_hints(face_rgb, config, np.random.default_rng(seed))[1]
        assert mask.any() and not mask[4:12, 4:12].any()


def test_empty_probability(face_rgb: np.ndarray) -> None:
    config = HintConfig(empty_probability=1.0)
    for seed in range(5):
        hint, mask = simulate_hints(face_rgb, config, np.random.default_rng(seed))
        assert not mask.any() and not hint.any()
    empties = [not simulate_hints(face_rgb, HintConfig(empty_probability=0.5), np.random.default_rng(s))[1].any()
               for s in range(200)]
    assert 0.35 < np.mean(empties) < 0.65


def test_stroke_count_radius_and_coverage(face_rgb: np.ndarray) -> None:
    dots = dataclasses.replace(ALWAYS, stroke_count=(3, 3), brush_radius=(0.1, 0.1), stroke_length=(0.0, 0.0))
    for seed in range(10):
        assert 1 <= simulate_hints(face_rgb, dots, np.random.default_rng(seed))[1].sum() <= 3
    big = dataclasses.replace(ALWAYS, stroke_count=(3, 3), brush_radius=(2.5, 2.5), stroke_length=(0.0, 0.0))
    assert np.mean([simulate_hints(face_rgb, big, np.random.default_rng(s))[1].sum() for s in range(10)]) > 20
    capped = dataclasses.replace(ALWAYS, stroke_count=(60, 60), brush_radius=(0.1, 0.1),
                                 stroke_length=(0.0, 0.0), max_coverage=0.05)
    for seed in range(10):
        assert simulate_hints(face_rgb, capped, np.random.default_rng(seed))[1].mean() <= 0.05 + 1 / 256


def test_hint_to_tensor_agrees_with_mask() -> None:
    rgb, small = block_image()
    hint, mask = simulate_hints(rgb, ALWAYS, np.random.default_rng(2))
    tensor = hint_to_tensor(hint, mask)
    assert tensor.shape == (4, 16, 16) and tensor.dtype == torch.float32
    assert torch.equal(tensor[3], torch.from_numpy(mask).float())
    assert (tensor[:3, ~torch.from_numpy(mask)] == 0).all()
    expected = torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1
    m = torch.from_numpy(mask)
    assert torch.allclose(tensor[:3][:, m], expected[:, m])
    assert tensor.min() >= -1 and tensor.max() <= 1
    with pytest.raises(ValueError, match="mask"):
        hint_to_tensor(hint, mask[:8])


def test_rgba_to_hint_gives_the_painted_colour() -> None:
    # A 300x200 canvas: transparent pixels carry a blue colour that must not bleed into the hint.
    canvas = Image.new("RGBA", (300, 200), (0, 0, 255, 0))
    ImageDraw.Draw(canvas).rectangle([60, 40, 180, 150], fill=(200, 30, 40, 255))
    hint = rgba_to_hint(canvas, image_size=64, downscale=4)
    assert hint.shape == (4, 16, 16)
    mask = hint[3].bool()
    # The rectangle spans x 0.2-0.6, y 0.2-0.75 of the canvas: its interior is hinted, far corners not.
    assert mask[5:11, 5:9].all()
    assert not mask[:2, :].any() and not mask[:, 12:].any()
    expected = torch.tensor([200, 30, 40]).float() / 127.5 - 1
    assert torch.allclose(hint[:3][:, mask], expected[:, None].expand(3, int(mask.sum())), atol=1e-4)
    assert (hint[:3][:, ~mask] == 0).all()


def test_rgba_to_hint_accepts_arrays_and_empty_layers() -> None:
    array = np.zeros((40, 40, 4), dtype=np.uint8)
    array[:, :20] = (10, 200, 90, 255)
    hint = rgba_to_hint(array, image_size=32, downscale=4)
    assert hint.shape == (4, 8, 8)
    assert hint[3, :, :4].all() and not hint[3, :, 4:].any()
    assert torch.allclose(hint[1, :, :4], torch.full((8, 4), 200 / 127.5 - 1), atol=1e-4)
    assert torch.equal(rgba_to_hint(np.zeros((50, 70, 4), dtype=np.uint8), 64, 4), empty_hint(64, 4))


def test_empty_hint_and_validation(face_rgb: np.ndarray) -> None:
    assert torch.equal(empty_hint(64, 4), torch.zeros(4, 16, 16))
    assert empty_hint(256, 8).shape == (4, 32, 32)
    with pytest.raises(ValueError, match="downscale"):
        empty_hint(2, 4)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        simulate_hints(face_rgb.astype(np.float32), HintConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="smaller than the hint downscale"):
        simulate_hints(face_rgb[:3, :3], HintConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="brush_radius"):
        HintConfig(brush_radius=(3.0, 1.0))


def test_hint_format_is_one_module_the_networks_follow() -> None:
    from sketch2anime import hint_format
    from sketch2anime.data import hints
    from sketch2anime.models import blocks, pix2pix
    from sketch2anime.models.discriminator import INPUT_LAYOUTS, DiscriminatorConfig
    from sketch2anime.models.guided_unet import HINT_CHANNELS as GUIDED_HINT_CHANNELS
    from sketch2anime.training import logging

    assert pix2pix.HINT_CHANNELS == GUIDED_HINT_CHANNELS == hint_format.HINT_CHANNELS == 4
    assert sorted(INPUT_LAYOUTS) == [3, 4, 7, 8] and INPUT_LAYOUTS[DiscriminatorConfig().in_channels] == (True, True)
    # The old import places give the format module's functions, not copies.
    assert hints.rgba_to_hint is hint_format.rgba_to_hint and hints.hint_to_tensor is hint_format.hint_to_tensor
    assert blocks.resize_hint is hint_format.resize_hint and logging.hint_to_display is hint_format.hint_to_display


def test_hint_display_on_grey_or_over_a_sketch() -> None:
    from sketch2anime.hint_format import DISPLAY_BACKGROUND, hint_to_display

    hint = torch.zeros(1, 4, 2, 2)
    hint[0, :, 0, 0] = torch.tensor([1.0, -1.0, 0.5, 1.0])  # one hinted cell
    shown = hint_to_display(hint, 4)
    assert shown.shape == (1, 3, 4, 4)
    assert torch.equal(shown[0, :, 0, 0], torch.tensor([1.0, -1.0, 0.5])) and torch.equal(shown[0, :, 1, 1], shown[0, :, 0, 0])
    assert torch.all(shown[0, :, 2:, 2:] == DISPLAY_BACKGROUND)
    sketch = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    over = hint_to_display(hint, 4, background=sketch)
    assert torch.equal(over[0, :, :2, :2], shown[0, :, :2, :2]) and torch.equal(over[0, 1, 3], sketch[0, 0, 3])
