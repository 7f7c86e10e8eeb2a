"""Figure cut-out augmentation (data/cutout.py) and its hook in the paired dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2anime.data.cutout import add_backdrop_hints, cut_out, random_cut_out, random_silhouette
from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset
from sketch2anime.data.hints import HintConfig


def _pair(side: int = 64) -> tuple[np.ndarray, np.ndarray]:
    color = np.zeros((side, side, 3), np.uint8)
    color[..., 2] = 180  # a blue picture filling the frame
    sketch = np.full((side, side), 255, np.uint8)
    sketch[side // 2, :] = 0  # one horizontal line through the middle
    return color, sketch


def _disc(side: int = 64, radius: int = 20) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    return (yy - side // 2) ** 2 + (xx - side // 2) ** 2 <= radius ** 2


def test_cut_out_keeps_the_inside_and_turns_the_outside_to_paper_with_an_outline() -> None:
    color, sketch = _pair()
    disc = _disc()
    page_color, page_sketch = cut_out(color, sketch, disc, outline_width=1, outline_ink=0)
    # outside the silhouette: white paper in the picture, and in the sketch no ink past the pen's
    # anti-aliased edge (the line through the middle is gone there)
    assert (page_color[~disc] == 255).all() and (page_sketch[~_disc(radius=21)] > 245).all()
    # well inside it: the picture and its line unchanged
    core = _disc(radius=17)
    assert np.array_equal(page_color[core], color[core])
    assert np.array_equal(page_sketch[core], sketch[core])
    # the outline is ink on the silhouette's rim: the rim is dark on average
    rim = disc & ~_disc(radius=19)
    assert page_sketch[rim].mean() < 100


def test_cut_out_refuses_bad_input() -> None:
    color, sketch = _pair()
    with pytest.raises(ValueError, match="bool mask"):
        cut_out(color, sketch, _disc().astype(np.uint8))
    with pytest.raises(ValueError, match="bool mask"):
        cut_out(color, sketch, _disc(side=32))
    with pytest.raises(ValueError, match="outline_width"):
        cut_out(color, sketch, _disc(), outline_width=0)
    with pytest.raises(ValueError, match="sketch"):
        cut_out(color, sketch[:32], _disc())
    with pytest.raises(ValueError, match="at least 8x8"):
        random_silhouette(4, 64, np.random.default_rng(0))


def test_random_silhouettes_are_seeded_centred_blobs_of_a_sensible_size() -> None:
    color, sketch = _pair(128)
    shares = []
    for seed in range(30):
        mask = random_silhouette(128, 128, np.random.default_rng(seed))
        again = random_silhouette(128, 128, np.random.default_rng(seed))
        assert np.array_equal(mask, again)
        shares.append(mask.mean())
        assert mask[40:70, 50:78].mean() > 0.5  # the head sits around the upper middle
        assert not mask[:4].any()  # paper above the head
        a = random_cut_out(color, sketch, np.random.default_rng(seed))
        b = random_cut_out(color, sketch, np.random.default_rng(seed))
        assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] is None
    assert 0.15 < min(shares) and max(shares) < 0.85
    assert max(shares) - min(shares) > 0.15  # different shapes, not one template


def test_a_backdrop_fills_the_outside_and_its_dabs_ask_for_it_only_there() -> None:
    color, sketch = _pair()
    disc = _disc()
    page_color, page_sketch = cut_out(color, sketch, disc, backdrop=(10, 200, 90))
    assert (page_color[~disc] == (10, 200, 90)).all() and (page_sketch[~_disc(radius=21)] > 245).all()
    assert np.array_equal(page_color[disc], color[disc])
    # dabs land on the outside at the hint resolution (64 px page, hints at 16 px), keep earlier hints
    hint_rgb = np.zeros((16, 16, 3), np.uint8)
    mask = np.zeros((16, 16), bool)
    hint_rgb[8, 8], mask[8, 8] = (0, 0, 180), True  # a hint on the figure
    for seed in range(10):
        new_rgb, new_mask = add_backdrop_hints(hint_rgb, mask, ~disc, (10, 200, 90), np.random.default_rng(seed))
        added = new_mask & ~mask
        assert added.any()
        assert (new_rgb[added] == (10, 200, 90)).all()
        assert new_mask[8, 8] and (new_rgb[8, 8] == (0, 0, 180)).all()
        inside_small = _disc(16, 5)  # the figure at 16 px: radius 20/4
        assert not (added & inside_small).any()
    with pytest.raises(ValueError, match="backdrop"):
        cut_out(color, sketch, disc, backdrop=(10, 300, 90))
    with pytest.raises(ValueError, match="backdrop_probability"):
        random_cut_out(color, sketch, np.random.default_rng(0), backdrop_probability=2.0)
    _, _, outside, backdrop = random_cut_out(color, sketch, np.random.default_rng(0), backdrop_probability=1.0)
    assert backdrop is not None and outside.any() and outside.dtype == np.bool_


def test_dataset_cuts_picture_and_sketch_together(prepared_scenes: Path) -> None:
    plain = PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), flip=False, rough_probability=0.0))
    cut = PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), flip=False, rough_probability=0.0,
                                            cutout_probability=1.0))
    for index in range(len(plain)):
        a, b = plain[index], cut[index]
        paper = (b["image"] == 1).all(dim=0)
        assert paper[0].all() and paper[:, 0].all()  # the page's top row and left column are paper
        kept = ~paper
        near = torch.nn.functional.max_pool2d(kept[None, None].float(), 5, 1, 2)[0, 0] > 0
        assert (b["sketch"][0][~near] == 1).all()  # no ink on the paper away from the outline
        inner = -torch.nn.functional.max_pool2d(-kept[None, None].float(), 3, 1, 1)[0, 0] > 0
        rim = kept & ~inner
        assert (b["sketch"][0][rim] < -0.3).float().mean() > 0.6  # the outline is inked along the rim
        assert kept.float().mean() > 0.15
        assert (b["image"][:, kept] == a["image"][:, kept]).all()

    backdrop = PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), flip=False, rough_probability=0.0,
                                                 cutout_probability=1.0, cutout_backdrop_probability=1.0,
                                                 hints=HintConfig(stroke_count=(0, 0))))  # only the dabs
    for index in range(len(plain)):
        item = backdrop[index]
        corner = item["image"][:, 0, 0]
        assert not (corner == 1).all()  # a colour, not paper
        assert (item["image"][:, 0, :] == corner[:, None]).all()  # flat along the top row
        hint, mask = item["hint"][:3], item["hint"][3] > 0
        asked = mask & (hint - corner[:, None, None]).abs().amax(dim=0).lt(0.02)
        assert asked.any() and (asked == mask).all()  # the dabs, in the backdrop colour
    with pytest.raises(ValueError, match="cutout_backdrop_probability"):
        DatasetConfig(root=str(prepared_scenes), cutout_backdrop_probability=-0.1)
    with pytest.raises(ValueError, match="cutout_probability"):
        DatasetConfig(root=str(prepared_scenes), cutout_probability=1.5)
