"""Figure cut-out augmentation (data/cutout.py) and its hook in the paired dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import scene
from sketch2anime.data.cutout import cut_out, random_cut_out, random_silhouette
from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset


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
    # the outline is ink on the silhouette's rim: every rim pixel is dark, and the paper well away is not
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
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert 0.15 < min(shares) and max(shares) < 0.85
    assert max(shares) - min(shares) > 0.15  # different shapes, not one template


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for i in range(6):
        scene(80, i).save(src / f"s{i:02d}.png")
    out = tmp_path_factory.mktemp("data") / "ds"
    prepare_dataset(src, out, PrepareConfig(extractors=("detail",), workers=1, val_fraction=0.0, seed=1),
                    progress=False)
    return out


def test_dataset_cuts_picture_and_sketch_together(prepared: Path) -> None:
    plain = PairedSketchDataset(DatasetConfig(root=str(prepared), flip=False, rough_probability=0.0))
    cut = PairedSketchDataset(DatasetConfig(root=str(prepared), flip=False, rough_probability=0.0,
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
    with pytest.raises(ValueError, match="cutout_probability"):
        DatasetConfig(root=str(prepared), cutout_probability=1.5)
