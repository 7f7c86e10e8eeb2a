"""Half-body figure augmentation (data/figure.py) and its hook in the paired dataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset
from sketch2anime.data.figure import MAX_DETAILS, draw_clothing_details, draw_figure, random_body_parts, random_figure


def _face(side: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A saturated green picture (no cloth or skin is drawn pure green) with one line across it."""
    color = np.zeros((side, side, 3), np.uint8)
    color[..., 1] = 250
    sketch = np.full((side, side), 255, np.uint8)
    sketch[side // 2, :] = 0
    return color, sketch


def _is_face(picture: np.ndarray) -> np.ndarray:
    return (picture[..., 1] > 200) & (picture[..., 0] < 40) & (picture[..., 2] < 40)


def test_the_face_becomes_a_small_head_high_on_the_page_over_a_body() -> None:
    color, sketch = _face()
    for seed in range(12):
        page_color, page_sketch, outside = draw_figure(color, sketch, np.random.default_rng(seed), head_scale=0.5,
                                                       head_x=0.5, head_top=0.05)
        face = _is_face(page_color)
        ys, xs = np.nonzero(face)
        # the head: the face shrunk to about half the page's side, its top near 5% of the page
        assert 0.3 * 64 * 64 < face.sum() < 0.8 * 64 * 64
        assert abs(ys.min() - 6) <= 3 and abs(xs.mean() - 64) <= 3 and ys.max() < 75
        # a body below it: figure (not outside) under the head, but never the face's colour
        below = ~outside[80:]
        assert below[:, 54:74].mean() > 0.75 and not face[80:].any()
        # paper outside the figure, in the picture and in the sketch, away from the outlines' edge
        near = cv2.dilate((~outside).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert (page_color[~near] == 255).all() and (page_sketch[~near] == 255).all()
        assert outside[:4, :20].all() and outside.mean() > 0.2


def test_body_parts_are_flat_colours_with_inked_outlines_also_in_the_picture() -> None:
    color, sketch = _face()
    page_color, page_sketch, outside = draw_figure(color, sketch, np.random.default_rng(3), head_scale=0.4,
                                                   head_x=0.5, head_top=0.05, outline_width=1, outline_ink=0)
    body = ~outside & ~_is_face(page_color)
    body[:60] = False  # below the head only
    inner = cv2.erode(body.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    lines = page_sketch < 128
    # few distinct colours inside the parts (a base and a shadow tone per part), not a texture
    colours = {tuple(c) for c in page_color[inner & ~cv2.dilate(lines.astype(np.uint8), np.ones((3, 3))).astype(bool)]}
    assert len(colours) <= 2 * 8
    # the outlines are drawn in the sketch, and the picture is dark where they are (coloured line art)
    assert lines[60:].sum() > 100
    assert page_color[60:][lines[60:]].mean() < 0.5 * page_color[60:][inner[60:] & ~lines[60:]].mean()


def test_body_parts_are_seeded_and_hang_below_the_neck() -> None:
    for seed in range(20):
        parts = random_body_parts(128, 128, 0.5, 0.4, np.random.default_rng(seed))
        again = random_body_parts(128, 128, 0.5, 0.4, np.random.default_rng(seed))
        assert [r for r, _ in parts] == [r for r, _ in again]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(parts, again))
        roles = [r for r, _ in parts]
        assert "torso" in roles and "neck" in roles and ("skirt" in roles or "leg" in roles)
        union = np.any([m for _, m in parts], axis=0)
        assert not union[:40].any()  # nothing above the neck but the neck's own top
        assert union[60:78, 60:68].mean() > 0.9  # the torso under the neck


def test_random_figures_are_seeded_and_vary() -> None:
    color, sketch = _face()
    heads = []
    for seed in range(10):
        a = random_figure(color, sketch, np.random.default_rng(seed))
        b = random_figure(color, sketch, np.random.default_rng(seed))
        assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] is None
        heads.append(_is_face(a[0]).sum())
    assert max(heads) > 1.5 * min(heads)  # head sizes vary
    page_color, _, outside, backdrop = random_figure(color, sketch, np.random.default_rng(0), backdrop_probability=1.0)
    away = cv2.erode(outside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert backdrop is not None and away.mean() > 0.2 and (page_color[away] == backdrop).all()


def _widest(mask: np.ndarray) -> int:
    return int(mask.any(axis=0).sum())


def test_a_small_build_narrows_the_body_and_a_short_skirt_shows_legs() -> None:
    narrower, legs_seen = 0, 0
    for seed in range(16):
        full = dict(random_body_parts(256, 256, 0.5, 0.25, np.random.default_rng(seed), build=1.0))
        slim = dict(random_body_parts(256, 256, 0.5, 0.25, np.random.default_rng(seed), build=0.5))
        # the same draws with every width halved: the torso's widest row about half as wide
        assert 0.4 < _widest(slim["torso"]) / _widest(full["torso"]) < 0.62
        narrower += 1
        if "skirt" in slim and "leg" in slim:
            legs_seen += 1
            hem = np.nonzero(slim["skirt"].any(axis=1))[0].max()
            assert hem < 0.92 * 256 and slim["leg"][hem + 2:].any() and slim["leg"][-1].any()
    assert narrower == 16 and legs_seen >= 2


def test_whole_figures_have_smaller_heads() -> None:
    color, sketch = _face()

    def head_rows(scales: tuple[float, float]) -> list[int]:
        rows = []
        for seed in range(8):
            page_color, _, _, _ = random_figure(color, sketch, np.random.default_rng(seed), head_scales=scales)
            rows.append(int(_is_face(page_color).any(axis=1).sum()))
        return rows

    whole, half = head_rows((0.2, 0.25)), head_rows((0.5, 0.6))
    assert max(whole) <= 0.26 * 128 and min(half) >= 0.45 * 128


def test_figure_refuses_bad_input() -> None:
    color, sketch = _face()
    with pytest.raises(ValueError, match="head_scale"):
        draw_figure(color, sketch, np.random.default_rng(0), head_scale=1.5)
    with pytest.raises(ValueError, match="outline_width"):
        draw_figure(color, sketch, np.random.default_rng(0), outline_width=0)
    with pytest.raises(ValueError, match="sketch"):
        draw_figure(color, sketch[:64], np.random.default_rng(0))
    with pytest.raises(ValueError, match="16x16"):
        random_body_parts(8, 128, 0.5, 0.4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="backdrop_probability"):
        random_figure(color, sketch, np.random.default_rng(0), backdrop_probability=-1)
    with pytest.raises(ValueError, match="head_scales"):
        random_figure(color, sketch, np.random.default_rng(0), head_scales=(0.1, 0.5))
    with pytest.raises(ValueError, match="build"):
        random_body_parts(128, 128, 0.5, 0.4, np.random.default_rng(0), build=0.0)
    with pytest.raises(ValueError, match="figure_head_scale"):
        DatasetConfig(root="x", figure_head_scale=(0.6, 0.3))


def test_dataset_draws_figures_with_paper_outside(prepared_scenes: Path) -> None:
    plain = PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), flip=False, rough_probability=0.0))
    figures = PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), flip=False, rough_probability=0.0,
                                                figure_probability=1.0, cutout_probability=1.0))
    for index in range(len(plain)):
        a, b = plain[index], figures[index]
        paper = (b["image"] == 1).all(dim=0)
        assert paper[:3, :10].all() and paper[:3, -10:].all()  # the page's top corners are paper
        assert 0.1 < paper.float().mean() < 0.9
        assert not (a["image"] == b["image"]).all(dim=0).all()
        # a figure, not a cut-out of the whole picture: its lower middle is a drawn body, not the scene
        size = b["image"].shape[-1]
        lower = (slice(None), slice(int(size * 0.75), None), slice(size // 2 - 4, size // 2 + 4))
        body, scene = b["image"][lower], a["image"][lower]
        assert (body == scene).all(dim=0).float().mean() < 0.3
    with pytest.raises(ValueError, match="figure_probability"):
        DatasetConfig(root=str(prepared_scenes), figure_probability=1.5)


def test_dataset_passes_its_head_sizes_and_details_to_the_figures(prepared_scenes: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sketch2anime.data.dataset as dataset_module

    seen = []

    def recording(color, sketch, rng, backdrop_probability=0.0, head_scales=(0.35, 0.6), details=0):
        seen.append((tuple(head_scales), details))
        return random_figure(color, sketch, rng, backdrop_probability, head_scales, details)

    monkeypatch.setattr(dataset_module, "random_figure", recording)
    PairedSketchDataset(DatasetConfig(root=str(prepared_scenes), figure_probability=1.0,
                                      figure_head_scale=(0.2, 0.3), figure_details=5))[0]
    assert seen == [((0.2, 0.3), 5)]


def test_figures_are_plain_unless_details_are_asked_for() -> None:
    # configs without figure_details keep their data: plain parts, the generator untouched
    color, sketch = _face()
    for seed in range(4):
        plain = random_figure(color, sketch, np.random.default_rng(seed))
        zero = random_figure(color, sketch, np.random.default_rng(seed), details=0)
        detailed = random_figure(color, sketch, np.random.default_rng(seed), details=6)
        assert all(np.array_equal(a, b) for a, b in zip(plain[:3], zero[:3]))
        assert (detailed[1] < plain[1]).any()


def test_clothing_details_ink_folds_and_marks_inside_the_part_only() -> None:
    side = 96
    part = np.zeros((side, side), np.uint8)
    cv2.ellipse(part, (48, 52), (30, 38), 0, 0, 360, 255, thickness=-1)
    part = part > 0
    inner = cv2.erode(part.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    cloth = np.array([200.0, 60.0, 90.0], np.float32)
    drew_ink = changed_colour = 0
    for seed in range(10):
        page = np.full((side, side, 3), 255.0, np.float32)
        page[part] = cloth
        ink = np.full((side, side), 255, np.uint8)
        draw_clothing_details(part, page, ink, np.random.default_rng(seed), count=6, pen_width=1, pen_ink=0)
        # nothing leaves the part's inside, so its outline stays the only line on its rim
        assert (ink[~inner] == 255).all() and (page[~part] == 255).all()
        lines = ink < 128
        assert lines.sum() >= 8  # at least one fold
        drew_ink += int(lines.sum())
        changed_colour += int((np.abs(page[part] - cloth).sum(axis=1) > 0).sum())
    assert drew_ink > 10 * 40 and changed_colour > 0  # marks in other colours now and then


def test_figures_with_details_carry_more_lines_inside_the_body_also_in_the_picture() -> None:
    color, sketch = _face()
    more_ink = 0
    for seed in range(8):
        plain_color, plain_sketch, plain_outside = draw_figure(color, sketch, np.random.default_rng(seed),
                                                               head_scale=0.3, head_top=0.05)
        page_color, page_sketch, outside = draw_figure(color, sketch, np.random.default_rng(seed), head_scale=0.3,
                                                       head_top=0.05, details=6)
        assert np.array_equal(outside, plain_outside)  # the same figure, details inside it
        assert (page_sketch[outside] == plain_sketch[outside]).all()
        body = ~outside & ~_is_face(page_color)
        body[:45] = False
        more_ink += int((page_sketch[body] < 128).sum()) - int((plain_sketch[body] < 128).sum())
        # coloured line art: the new lines are dark in the picture too
        new_lines = (page_sketch < 64) & (plain_sketch > 250) & body
        if new_lines.any():
            assert page_color[new_lines].mean() < 0.5 * page_color[body & (page_sketch > 250)].mean()
    assert more_ink > 8 * 30


def test_details_are_checked() -> None:
    color, sketch = _face()
    for bad in (-1, MAX_DETAILS + 1, 2.5, True):
        with pytest.raises(ValueError, match="folds per clothing part"):
            draw_figure(color, sketch, np.random.default_rng(0), details=bad)
    with pytest.raises(ValueError, match="figure_details"):
        DatasetConfig(root="x", figure_details=-1)
