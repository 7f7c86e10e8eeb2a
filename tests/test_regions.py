"""Regions between a sketch's lines (data/regions.py) and the training loss that asks the generator to
fill each with one colour (training/losses.py: region_flatness_loss)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sketch2anime.config import ConfigError
from sketch2anime.data.regions import line_regions, region_labels
from sketch2anime.training.config import load_experiment
from sketch2anime.training.losses import region_flatness_loss

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _boxes(n: int = 2, size: int = 32) -> torch.Tensor:
    """(n, 1, size, size) sketches: a closed square (rows/cols 8..23) and a small closed 3x3 cell."""
    sketch = torch.ones(n, 1, size, size)
    for lo, hi in ((8, 23), (26, 30)):
        sketch[:, :, lo, lo:hi + 1] = -1
        sketch[:, :, hi, lo:hi + 1] = -1
        sketch[:, :, lo:hi + 1, lo] = -1
        sketch[:, :, lo:hi + 1, hi] = -1
    return sketch


def test_line_regions_tell_closed_from_open_regions() -> None:
    ink = ((1.0 - _boxes(1)[0, 0]) / 2.0).numpy()
    regions = line_regions(ink)
    inside, outside, wall = regions.labels[15, 15], regions.labels[0, 0], regions.labels[8, 15]
    assert wall == 0 and regions.walls[8, 15]
    assert inside != outside and inside > 0 and outside > 0
    assert not regions.touches_edge[inside] and regions.touches_edge[outside]
    assert regions.areas[inside] == (regions.labels == inside).sum() >= 12 * 12
    with pytest.raises(ValueError, match=r"\(H, W\) ink map"):
        line_regions(ink[None])


def test_region_labels_number_regions_across_the_batch_and_drop_small_ones() -> None:
    labels = region_labels(_boxes(2), min_region=0.02)  # 0.02 x 1024 px: the 3x3 cell (9 px) is dropped
    assert labels.shape == (2, 32, 32) and labels.dtype == torch.int64
    assert labels[0, 15, 15] != labels[1, 15, 15]  # the same square in two items: two regions
    assert labels[0, 28, 28] == 0 and labels[0, 8, 15] == 0  # small cell, wall
    assert region_labels(_boxes(2), min_region=0.0)[0, 28, 28] > 0
    assert set(labels[0].unique().tolist()) == {0, int(labels[0, 15, 15]), int(labels[0, 0, 0])}
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        region_labels(torch.ones(2, 3, 32, 32))


def _shaded_target(n: int = 2, size: int = 32) -> torch.Tensor:
    ramp = torch.linspace(-0.4, 0.4, size)
    return ramp.view(1, 1, 1, size).expand(n, 3, size, size).clone()


def test_flatness_loss_punishes_blotches_inside_a_region_but_not_the_targets_own_shading() -> None:
    labels = region_labels(_boxes(), min_region=0.02)
    target = _shaded_target()
    assert region_flatness_loss(target, target, labels).item() == pytest.approx(0.0, abs=1e-7)
    flat = torch.zeros_like(target)  # flatter than the truth: no cost (the mean is L1's business)
    assert region_flatness_loss(flat, target, labels).item() == pytest.approx(0.0, abs=1e-7)
    blotchy = target.clone()
    blotchy[:, 0, 12:16, 10:22] += 0.8  # a red blotch across the middle of the closed square
    assert region_flatness_loss(blotchy, target, labels).item() > 1e-3


def test_flatness_loss_allows_a_colour_change_on_a_line() -> None:
    # Two colours meeting on the sketch's line are two flat regions, not a blotch: no cost. The same
    # change in the middle of the square costs.
    labels = region_labels(_boxes(), min_region=0.02)
    target = torch.zeros(2, 3, 32, 32)
    on_line = target.clone()
    on_line[:, :, 9:23, 9:23] = 0.7  # the square's inside one colour, the outside another
    inside = target.clone()
    inside[:, :, 9:16, 9:23] = 0.7  # half the square
    assert region_flatness_loss(on_line, target, labels).item() == pytest.approx(0.0, abs=1e-5)  # rounding of E[x²] - E[x]²
    assert region_flatness_loss(inside, target, labels).item() > 0.01


def test_flatness_loss_gradient_flattens_the_region() -> None:
    labels = region_labels(_boxes(), min_region=0.02)
    target = torch.zeros(2, 3, 32, 32)
    fake = target.clone()
    fake[:, 1, 10:14, 10:20] = 0.6
    fake.requires_grad_(True)
    before = region_flatness_loss(fake, target, labels)
    before.backward()
    with torch.no_grad():
        stepped = fake - 400.0 * fake.grad  # the gradient is per pixel of the whole batch
    assert region_flatness_loss(stepped, target, labels) < 0.5 * before
    assert fake.grad[:, :, 0:6, 0:6].abs().sum() == 0  # the open region is flat already
    assert region_flatness_loss(fake, target, torch.zeros(2, 32, 32, dtype=torch.int64)).item() == 0.0
    with pytest.raises(ValueError, match="labels"):
        region_flatness_loss(fake, target, labels[:, :16])


@pytest.mark.parametrize("changes, message", [
    (["train.flatness_weight=-1"], "flatness_weight must be 0 or more"),
    (["train.flatness_min_region=1.5"], "flatness_min_region must be a fraction"),
    (['train.flatness_regions="rough"'], "flatness_regions: must be one of 'clean', 'input'"),
])
def test_flatness_settings_are_checked(changes: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_experiment(CONFIGS / "guided128_flatness.toml", changes)


def test_flatness_weight_is_refused_by_stages_that_ignore_it() -> None:
    with pytest.raises(ConfigError, match="only used by the guided stage"):
        load_experiment(CONFIGS / "pix2pix128.toml", ["train.flatness_weight=5"])
    assert load_experiment(CONFIGS / "guided128_flatness.toml").train.flatness_weight > 0
