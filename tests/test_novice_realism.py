"""scripts/novice_realism.py: realism of the results for novice face drawings (no true picture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_script
from sketch2anime.testing import tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


def _flat(rgb: tuple[int, int, int], size: int = 8) -> torch.Tensor:
    return (torch.tensor(rgb, dtype=torch.float32) / 127.5 - 1)[:, None, None].expand(3, size, size)


def test_colour_split_tells_a_hedge_from_one_colouring() -> None:
    script = load_script("novice_realism")
    magenta, green, brown, grey = _flat((200, 60, 170)), _flat((60, 170, 80)), _flat((140, 90, 50)), _flat((128, 128, 128))
    half = torch.cat([magenta[:, :4], green[:, 4:]], dim=1)
    quarter = torch.cat([magenta[:, :6], green[:, 6:]], dim=1)
    split = script.colour_split(torch.stack([half, quarter, magenta, brown, grey]))
    assert split[0] == pytest.approx(0.5)
    assert split[1] == pytest.approx(0.25)
    assert split[2] == 0 and split[3] == 0  # one family of colours, warm or cool
    assert split[4] == 0  # grey has no colour to split


def test_results_follow_the_drawings_and_hints(tmp_path: Path) -> None:
    script = load_script("novice_realism")
    folder = tiny_pipeline(tmp_path / "tiny", image_size=128)
    results, adherence = script.model_results(str(folder), count=3, projection=0.5)
    assert list(results) == list(script.CONDITIONS)
    assert set(adherence) == {"hair", "background"} and all(np.isfinite(v) and v >= 0 for v in adherence.values())
    for images in results.values():
        assert images.shape == (3, 3, 128, 128) and float(images.min()) >= -1 and float(images.max()) <= 1
    # different characters give different pictures, and the hint layer reaches the picture
    no_hints = results[script.CONDITIONS[0]]
    assert float((no_hints[0] - no_hints[1]).abs().mean()) > 1e-4
    assert float((results[script.CONDITIONS[1]] - no_hints).abs().mean()) > 1e-4


def test_the_hint_layer_splits_into_the_hair_stroke_and_the_background_dabs() -> None:
    script = load_script("novice_realism")
    from sketch2anime.hint_format import rgba_to_hint

    hair, background = (40, 90, 220), (250, 230, 200)
    layer = script.hint_layer(256, hair, background)
    whole = rgba_to_hint(layer, 128, 4)
    hair_part, background_part = script.split_hint(layer, hair, 128, 4)
    on_hair, on_background = hair_part[3] > 0.5, background_part[3] > 0.5
    assert on_hair.any() and on_background.any() and not (on_hair & on_background).any()
    assert torch.equal(on_hair | on_background, whole[3] > 0.5)  # nothing lost, nothing added
    blue = torch.tensor(hair, dtype=torch.float32) / 127.5 - 1
    cream = torch.tensor(background, dtype=torch.float32) / 127.5 - 1
    assert (hair_part[:3, on_hair] - blue[:, None]).abs().max() < 0.1
    assert (background_part[:3, on_background] - cream[:, None]).abs().max() < 0.1
    # the dabs sit in the top corners, the stroke across the top of the head
    assert on_background[:4].any() and not on_background[:, 8:24].any()
    assert on_hair[:, 8:24].any()


def test_centre_crop_keeps_the_middle() -> None:
    script = load_script("novice_realism")
    images = torch.zeros(2, 3, 10, 10)
    images[:, :, 2:8, 2:8] = 1.0  # a bright middle in a dark frame
    middle = script.centre_crop(images, 0.6)
    assert middle.shape == (2, 3, 6, 6) and bool((middle == 1).all())
    assert torch.equal(script.centre_crop(images, 1.0), images)


def test_a_seed_on_a_model_without_colour_schemes_is_refused(tmp_path: Path) -> None:
    """``FOLDER@seed=N`` on a pipeline without palettes would report its own colours under a Seed's name."""
    script = load_script("novice_realism")
    folder = tiny_pipeline(tmp_path / "tiny", image_size=64)
    with pytest.raises(ValueError, match="no training colour schemes"):
        script.model_results(f"{folder}@seed=1", count=1, projection=0.5)


def test_kid_difference_table_compares_every_later_model_with_the_first() -> None:
    script = load_script("novice_realism")
    rng = np.random.default_rng(0)
    real = rng.random((40, 8))
    features = {"default": {"no hints": rng.random((20, 8))}, "worse": {"no hints": rng.random((20, 8)) + 0.5}}
    table = script.kid_difference_table(real, features)
    row = next(line for line in table.splitlines() if line.startswith("| worse | no hints |"))
    delta, interval = row.split("|")[3].strip(), row.split("|")[4].strip()
    low, high = (float(x) for x in interval.strip("[]").split(","))
    assert float(delta) > 0 and 0 < low < float(delta) < high  # further from the reals than the first
    assert "| default |" not in table
