"""Zoom-out augmentation (data/zoom.py) and its hook in the paired dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset
from sketch2anime.data.zoom import random_zoom_out, zoom_out


def _pair(side: int = 64) -> tuple[np.ndarray, np.ndarray]:
    color = np.zeros((side, side, 3), np.uint8)
    color[..., 0] = 200  # a red picture filling the frame
    sketch = np.full((side, side), 255, np.uint8)
    sketch[:, side // 2] = 0  # one 1 px vertical line
    return color, sketch


def test_zoom_out_shrinks_onto_white_paper_where_asked() -> None:
    color, sketch = _pair()
    page_color, page_sketch = zoom_out(color, sketch, 0.5, (8, 24))
    assert page_color.shape == color.shape and page_sketch.shape == sketch.shape
    inside = (slice(24, 56), slice(8, 40))
    assert (page_color[inside][..., 0] == 200).all() and (page_color[inside][..., 1:] == 0).all()
    outside = np.ones((64, 64), bool)
    outside[inside] = False
    assert (page_color[outside] == 255).all() and (page_sketch[outside] == 255).all()
    # The 1 px line stays a dark line at half size, not a 50% grey one.
    assert page_sketch[inside].min() == 0
    assert (page_sketch[inside] < 128).any(axis=0).sum() <= 3


def test_zoom_out_at_scale_one_is_the_identity_and_bad_input_is_refused() -> None:
    color, sketch = _pair()
    same_color, same_sketch = zoom_out(color, sketch, 1.0, (0, 0))
    assert np.array_equal(same_color, color) and np.array_equal(same_sketch, sketch)
    with pytest.raises(ValueError, match="scale"):
        zoom_out(color, sketch, 1.5, (0, 0))
    with pytest.raises(ValueError, match="outside"):
        zoom_out(color, sketch, 0.5, (40, 0))
    with pytest.raises(ValueError, match="square"):
        zoom_out(color[:, :32], sketch[:, :32], 0.5, (0, 0))
    with pytest.raises(ValueError, match="sketch"):
        zoom_out(color, sketch[:32], 0.5, (0, 0))


def test_random_zoom_out_is_seeded_and_stays_in_range() -> None:
    color, sketch = _pair()
    for seed in range(20):
        a = random_zoom_out(color, sketch, (0.45, 0.9), np.random.default_rng(seed))
        b = random_zoom_out(color, sketch, (0.45, 0.9), np.random.default_rng(seed))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        kept = int((a[0][..., 1] == 0).sum())  # red pixels: the shrunk picture
        assert 0.4 ** 2 * 64 * 64 <= kept <= 0.91 ** 2 * 64 * 64


def test_dataset_zooms_picture_and_sketch_together(prepared_scenes: Path) -> None:
    plain = PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), flip=False, rough_probability=0.0))
    zoomed = PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), flip=False, rough_probability=0.0,
                                               zoom_out_probability=1.0, zoom_out_scale=(0.5, 0.5)))
    for index in range(len(plain)):
        a, b = plain[index], zoomed[index]
        paper_image = (b["image"] == 1).all(dim=0)  # pure white in every channel
        paper_sketch = b["sketch"][0] == 1
        assert paper_image.float().mean() >= 0.7  # three quarters of the page is blank (a 32 px picture)
        assert bool((paper_sketch | ~paper_image).all())  # no ink on blank page
        assert not torch.equal(a["image"], b["image"])
        # Same item, same hints stream: only the zoom stream is new, so flips/rough/hints match plain's.
        assert a["id"] == b["id"] and a["extractor"] == b["extractor"]
    with pytest.raises(ValueError, match="zoom_out_probability"):
        DatasetConfig(root=str(prepared_scenes), zoom_out_probability=1.5)
    with pytest.raises(ValueError, match="zoom_out_scale"):
        DatasetConfig(root=str(prepared_scenes), zoom_out_scale=(0.9, 0.5))
