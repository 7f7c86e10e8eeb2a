"""Line-style augmentation: the look of the lines changes, where they are does not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sketch2anime.data.dataset import DatasetConfig
from sketch2anime.data.line_style import LineStyleConfig, restyle

OFF = LineStyleConfig(width_probability=0, darkness_probability=0, blur_probability=0, binarise_probability=0,
                      noise_probability=0)


def _sketch() -> np.ndarray:
    sketch = np.full((64, 64), 255, np.uint8)
    sketch[20, 10:50] = 0
    sketch[10:50, 32] = 0
    return sketch


def _only(**changes) -> LineStyleConfig:
    return dataclasses.replace(OFF, **changes)


def test_all_effects_off_is_the_identity() -> None:
    sketch = _sketch()
    assert np.array_equal(restyle(sketch, OFF, np.random.default_rng(0)), sketch)


def test_darkness_lightens_ink_and_greys_paper() -> None:
    out = restyle(_sketch(), _only(darkness_probability=1.0, ink_level=(100, 100), paper_level=(230, 230)),
                  np.random.default_rng(0))
    assert out[20, 20] == 100 and out[5, 5] == 230


def test_width_makes_lines_wider_never_thinner() -> None:
    sketch = _sketch()
    out = restyle(sketch, _only(width_probability=1.0), np.random.default_rng(0))
    ink_before, ink_after = (sketch < 128).sum(), (out < 128).sum()
    assert ink_after > ink_before
    assert np.all(out[sketch < 128] < 128)  # every original ink pixel is still ink


def test_binarise_leaves_two_values_and_blur_softens() -> None:
    blurred = restyle(_sketch(), _only(blur_probability=1.0, blur_sigma=(1.0, 1.0)), np.random.default_rng(0))
    assert 0 < blurred[20, 20] < 255 and blurred[21, 20] < 255  # ink spread to the neighbour row
    binary = restyle(blurred, _only(binarise_probability=1.0, binarise_threshold=(128, 128)), np.random.default_rng(0))
    assert set(np.unique(binary)) <= {0, 255}


def test_lines_stay_where_they_were() -> None:
    sketch = _sketch()
    config = LineStyleConfig(width_probability=1, darkness_probability=1, blur_probability=1, noise_probability=1)
    for seed in range(5):
        out = restyle(sketch, config, np.random.default_rng(seed)).astype(np.float32)
        ink = sketch < 128
        assert out[ink].mean() + 40 < out[~ink].mean()  # lines remain darker than paper, at the same places


def test_same_seed_same_result_and_validation() -> None:
    config = LineStyleConfig(width_probability=1, noise_probability=1)
    a = restyle(_sketch(), config, np.random.default_rng(3))
    b = restyle(_sketch(), config, np.random.default_rng(3))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="ink_level"):
        LineStyleConfig(ink_level=(0, 240), paper_level=(200, 255))
    with pytest.raises(ValueError, match="blur_probability"):
        LineStyleConfig(blur_probability=1.5)
    with pytest.raises(ValueError, match="line_style_probability"):
        DatasetConfig(root="x", line_style_probability=2.0)
    with pytest.raises(ValueError, match="uint8"):
        restyle(np.zeros((4, 4), np.float32), config, np.random.default_rng(0))
