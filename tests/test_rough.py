"""Rough-sketch simulation: dropout, partial drawing, thickness, jitter, simplify."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from conftest import draw_face
from sketch2anime.data.detail import DetailFilter, DetailFilterConfig
from sketch2anime.data.rough import ROUGH_PRESETS, RoughSketchConfig, roughen, simplify, stroke_labels

OFF = RoughSketchConfig(dropout_probability=0.0, partial_probability=0.0,
                        thickness_probability=0.0, jitter_probability=0.0)


def only(**changes: object) -> RoughSketchConfig:
    return dataclasses.replace(OFF, **changes)


def strokes_sketch(size: int = 96) -> np.ndarray:
    """Twelve separate strokes (lines and arcs) on white paper."""
    image = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(image)
    s = size / 96
    for i in range(6):
        d.line([8 * s, (8 + 14 * i) * s, 40 * s, (12 + 14 * i) * s], fill=0, width=2)
        d.arc([52 * s, (4 + 14 * i) * s, 88 * s, (14 + 14 * i) * s], 180, 360, fill=0, width=2)
    return np.asarray(image).copy()


@pytest.fixture
def face_sketch() -> np.ndarray:
    return DetailFilter(DetailFilterConfig())(np.asarray(draw_face(128, 0)))


def ink(sketch: np.ndarray) -> np.ndarray:
    return sketch < 128


def test_deterministic_per_seed(face_sketch: np.ndarray) -> None:
    config = RoughSketchConfig.preset("heavy")
    a = roughen(face_sketch, config, np.random.default_rng(3))
    b = roughen(face_sketch, config, np.random.default_rng(3))
    assert np.array_equal(a, b)
    others = [roughen(face_sketch, config, np.random.default_rng(s)) for s in range(4, 8)]
    assert any(not np.array_equal(a, o) for o in others)
    assert a.dtype == np.uint8 and a.shape == face_sketch.shape


def test_all_effects_off_is_identity(face_sketch: np.ndarray) -> None:
    assert np.array_equal(roughen(face_sketch, OFF, np.random.default_rng(0)), face_sketch)


def test_dropout_removes_ink_and_adds_none() -> None:
    sketch = strokes_sketch()
    config = only(dropout_probability=1.0, dropout_share=(0.5, 0.5), segment_length=0.0)
    removed_counts = []
    for seed in range(5):
        out = roughen(sketch, config, np.random.default_rng(seed))
        assert (out >= sketch).all(), "dropout drew new ink"
        assert np.isin(out[out != sketch], [255]).all()
        removed_counts.append(ink(sketch).sum() - ink(out).sum())
        assert ink(out).any()
    assert min(removed_counts) > 0 and np.mean(removed_counts) > 0.2 * ink(sketch).sum()


def test_dropout_removes_whole_strokes() -> None:
    sketch = strokes_sketch()
    out = roughen(sketch, only(dropout_probability=1.0, dropout_share=(0.5, 0.5), segment_length=0.0),
                  np.random.default_rng(1))
    ids, count = stroke_labels(sketch < 250, 0.0, np.random.default_rng(0))
    assert count == 12
    for stroke in range(count):
        kept = ink(out)[ids == stroke]
        assert kept.all() or not kept.any(), "a stroke was only partly erased"


def test_dropout_never_erases_everything() -> None:
    sketch = strokes_sketch()
    out = roughen(sketch, only(dropout_probability=1.0, dropout_share=(1.0, 1.0)), np.random.default_rng(0))
    assert ink(out).any()


def test_partial_keeps_a_subset_of_the_ink(face_sketch: np.ndarray) -> None:
    config = only(partial_probability=1.0, partial_keep=(0.4, 0.4))
    total = ink(face_sketch).sum()
    for seed in range(5):
        out = roughen(face_sketch, config, np.random.default_rng(seed))
        assert (out >= face_sketch).all(), "partial drawing drew new ink"
        kept = ink(out).sum()
        assert 0.3 * total <= kept <= 0.7 * total


def test_partial_is_spatially_coherent() -> None:
    # Drawn progressively, the kept strokes cluster: their bounding box is smaller than the full one.
    sketch = strokes_sketch()
    config = only(partial_probability=1.0, partial_keep=(0.3, 0.3), segment_length=0.0)
    full_extent = np.ptp(np.argwhere(ink(sketch)), axis=0).prod()
    extents = []
    for seed in range(6):
        out = roughen(sketch, config, np.random.default_rng(seed))
        extents.append(np.ptp(np.argwhere(ink(out)), axis=0).prod())
    assert np.mean(extents) < 0.7 * full_extent


def test_jitter_moves_lines(face_sketch: np.ndarray) -> None:
    config = only(jitter_probability=1.0, jitter_amplitude=(8.0, 8.0))
    out = roughen(face_sketch, config, np.random.default_rng(0))
    before, after = ink(face_sketch), ink(out)
    overlap = (before & after).sum() / before.sum()
    assert overlap < 0.8, "lines did not move"
    assert 0.5 < after.sum() / before.sum() < 1.5, "jitter should move ink, not create or erase much"
    # Smooth field: every moved ink pixel stays near some original ink.
    ys, xs = np.nonzero(after)
    original = np.argwhere(before)
    nearest = np.min(np.abs(original[None, :, 0] - ys[:, None]) + np.abs(original[None, :, 1] - xs[:, None]), axis=1)
    assert np.percentile(nearest, 95) <= 12
    still = roughen(face_sketch, only(jitter_probability=1.0, jitter_amplitude=(0.0, 0.0)), np.random.default_rng(0))
    assert np.array_equal(still, face_sketch)


def test_thickness_changes_line_width() -> None:
    sketch = strokes_sketch(128)
    thick = roughen(sketch, only(thickness_probability=1.0, thickness_change=(4.0, 4.0)), np.random.default_rng(0))
    assert ink(thick).sum() > 1.5 * ink(sketch).sum()
    assert (thick <= sketch).all(), "thicker lines must cover the original ones"
    bold = np.asarray(Image.fromarray(sketch).filter(ImageFilter.MinFilter(5)))
    thin = roughen(bold, only(thickness_probability=1.0, thickness_change=(-2.0, -2.0)), np.random.default_rng(0))
    assert ink(thin).sum() < ink(bold).sum()


def outline_with_hatching(size: int = 128) -> np.ndarray:
    """A 1 px face outline (one long line) with ten short hatching dashes inside it."""
    image = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(image)
    d.ellipse([16, 16, size - 16, size - 16], outline=0, width=1)
    for i in range(10):
        x = 40 + 5 * i
        d.line([x, 60, x + 3, 64], fill=0, width=1)
    return np.asarray(image).copy()


def test_simplify_keeps_the_big_lines_with_one_bold_pen() -> None:
    sketch = outline_with_hatching()
    out = simplify(sketch, keep_share=0.8, pen_px=3.0)
    assert set(np.unique(out)) <= {0, 255}, "one black pen, no grey"
    assert not ink(out[56:70, 36:96]).any(), "the short hatching dashes are gone"
    # the outline stays where it was, and its 1 px line is now 3 px wide
    outline = ink(sketch)
    outline[56:70, 36:96] = False
    assert ink(out)[outline].all()
    for row in (32, 100):  # rows that cross only the outline, twice
        assert ink(out[row]).sum() >= 2.5 * ink(sketch[row]).sum() >= 2 * 2.5
    # keeping everything keeps the dashes too; an empty sketch stays empty
    assert ink(simplify(sketch, keep_share=1.0, pen_px=1.0)[56:70, 36:96]).any()
    blank = np.full((32, 32), 255, dtype=np.uint8)
    assert (simplify(blank, 0.8, 3.0) == 255).all()


def test_simplify_in_roughen_only_when_enabled() -> None:
    sketch = outline_with_hatching()
    assert np.array_equal(roughen(sketch, OFF, np.random.default_rng(0)), sketch)
    simple = roughen(sketch, only(simplify_probability=1.0, simplify_keep=(0.8, 0.8), simplify_pen=(6.0, 6.0)),
                     np.random.default_rng(0))
    # pen 6 px at the 256 px reference = 3 px on this 128 px sketch
    assert np.array_equal(simple, simplify(sketch, 0.8, 3.0))
    with pytest.raises(ValueError, match="simplify_probability"):
        RoughSketchConfig(simplify_probability=2.0)
    with pytest.raises(ValueError, match="simplify_pen"):
        RoughSketchConfig(simplify_pen=(0.5, 2.0))


def test_presets_and_validation(face_sketch: np.ndarray) -> None:
    assert set(ROUGH_PRESETS) == {"light", "medium", "heavy", "unfinished"}
    # unfinished: the lines it keeps are the clean sketch's own, and a large share of the ink is gone
    for seed in range(5):
        unfinished = roughen(face_sketch, RoughSketchConfig.preset("unfinished"), np.random.default_rng(seed))
        kept, ink = unfinished < 128, face_sketch < 128
        assert not (kept & ~ink).any()
        assert 0.25 < kept.sum() / ink.sum() < 0.7
    assert RoughSketchConfig.preset("medium") == RoughSketchConfig()
    light, heavy = RoughSketchConfig.preset("light"), RoughSketchConfig.preset("heavy")
    assert light.dropout_share[1] < heavy.dropout_share[1]
    # Heavier settings change the drawing more, on average over seeds.
    def mean_change(config: RoughSketchConfig) -> float:
        return float(np.mean([np.mean(roughen(face_sketch, config, np.random.default_rng(s)) != face_sketch)
                              for s in range(10)]))
    assert mean_change(heavy) > mean_change(light)
    with pytest.raises(ValueError, match="unknown roughness level"):
        RoughSketchConfig.preset("extreme")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dropout_probability"):
        RoughSketchConfig(dropout_probability=1.5)
    with pytest.raises(ValueError, match="partial_keep"):
        RoughSketchConfig(partial_keep=(0.9, 0.1))


def test_blank_and_bad_inputs() -> None:
    blank = np.full((64, 64), 255, dtype=np.uint8)
    out = roughen(blank, RoughSketchConfig.preset("heavy"), np.random.default_rng(0))
    assert (out == 255).all()
    with pytest.raises(ValueError, match="HxW uint8"):
        roughen(np.zeros((64, 64, 3), dtype=np.uint8), RoughSketchConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="HxW uint8"):
        roughen(np.zeros((64, 64), dtype=np.float32), RoughSketchConfig(), np.random.default_rng(0))
