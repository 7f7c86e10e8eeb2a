"""Sketch extractors (detail filter, XDoG) and the extractor registry."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import draw_face
from sketch2anime.data.detail import DetailFilter, DetailFilterConfig
from sketch2anime.data.extractors import (
    EXTRACTORS,
    extractor_params,
    make_extractor,
    parse_extractor_params,
)
from sketch2anime.data.xdog import XDoG, XDoGConfig

LOCAL = ("detail", "xdog")


@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("size", [64, 128])
def test_extractor_output_is_a_sketch(name: str, size: int) -> None:
    rgb = np.asarray(draw_face(size, 3))
    sketch = make_extractor(name)(rgb)
    assert sketch.dtype == np.uint8 and sketch.shape == (size, size)
    ink = np.count_nonzero(sketch < 128)
    assert np.count_nonzero(sketch > 200) > 0.6 * sketch.size  # mostly paper
    assert ink > 0.01 * sketch.size  # but the face is drawn


@pytest.mark.parametrize("name", LOCAL)
def test_extractor_keeps_non_square_size(name: str) -> None:
    rgb = np.asarray(draw_face(96, 1).crop((0, 0, 96, 72)))
    assert make_extractor(name)(rgb).shape == (72, 96)


@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("value", [255, 90])
def test_extractor_on_blank_image_is_blank(name: str, value: int) -> None:
    rgb = np.full((64, 64, 3), value, dtype=np.uint8)
    assert (make_extractor(name)(rgb) == 255).all()


@pytest.mark.parametrize("name", LOCAL)
def test_extractor_rejects_bad_input(name: str) -> None:
    extractor = make_extractor(name)
    with pytest.raises(ValueError, match="uint8"):
        extractor(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        extractor(np.zeros((32, 32, 4), dtype=np.uint8))


@pytest.mark.parametrize("name", LOCAL)
def test_extract_batch_matches_single_calls(name: str) -> None:
    images = [np.asarray(draw_face(64, s)) for s in range(3)]
    extractor = make_extractor(name)
    batch = extractor.extract_batch(images, rng=np.random.default_rng(5))
    single_rng = np.random.default_rng(5)
    assert all(np.array_equal(b, extractor(i, single_rng)) for b, i in zip(batch, images))


def _line_and_specks(size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A long horizontal line plus scattered 2x2 specks; returns rgb, line-zone and speck-zone masks."""
    image = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(image)
    d.line([10, size // 2, size - 10, size // 2], fill="black", width=2)
    rng = np.random.default_rng(0)
    specks = np.zeros((size, size), dtype=bool)
    # Specks on a jittered 12 px grid so that they never touch each other or the line.
    for gy in list(range(8, size // 2 - 14, 12)) + list(range(size // 2 + 14, size - 8, 12)):
        for gx in range(8, size - 8, 12):
            if rng.random() < 0.5:
                continue
            x, y = gx + int(rng.integers(0, 3)), gy + int(rng.integers(0, 3))
            d.rectangle([x, y, x + 1, y + 1], fill="black")
            specks[y - 4:y + 6, x - 4:x + 6] = True
    line_zone = np.zeros((size, size), dtype=bool)
    line_zone[size // 2 - 6:size // 2 + 7, :] = True
    return np.asarray(image), line_zone, specks


def test_detail_drops_short_lines_and_keeps_long_ones() -> None:
    rgb, line_zone, speck_zone = _line_and_specks()
    sketch = DetailFilter(DetailFilterConfig())(rgb)
    ink = sketch < 128
    assert not ink[~line_zone].any(), "specks survived the minimum line length"
    covered_columns = ink[line_zone.any(axis=1)].any(axis=0)[12:-12]
    assert covered_columns.mean() > 0.95, "the long line was dropped"
    # Control: without the length filter the same specks do show up, so the filter is what removed them.
    raw = DetailFilter(DetailFilterConfig(min_line_length=0))(rgb) < 128
    assert raw[speck_zone & ~line_zone].sum() > 100


def test_detail_line_width_scales_ink() -> None:
    rgb = np.asarray(draw_face(128, 2))
    thin = np.count_nonzero(DetailFilter(DetailFilterConfig(line_width=1))(rgb) < 128)
    thick = np.count_nonzero(DetailFilter(DetailFilterConfig(line_width=6))(rgb) < 128)
    assert thick > 1.5 * thin


def test_xdog_finds_the_edges_of_a_shape() -> None:
    image = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(image).rectangle([28, 28, 67, 67], fill=(40, 40, 40))
    sketch = XDoG(XDoGConfig())(np.asarray(image))
    ink = sketch < 128
    yy, xx = np.mgrid[:96, :96]
    # Distance to the rectangle's outline (Chebyshev distance to the square's border).
    dist = np.abs(np.maximum(np.abs(yy - 47.5), np.abs(xx - 47.5)) - 20.0)
    assert ink.sum() > 100
    assert ink[dist > 3].sum() == 0, "ink away from the edges (filled interior or noise)"
    border = dist < 1
    near_ink = np.zeros_like(ink)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near_ink |= np.roll(np.roll(ink, dy, 0), dx, 1)
    assert near_ink[border].mean() > 0.9, "edges of the shape are missing"


def test_xdog_sigma_choice() -> None:
    rgb = np.asarray(draw_face(128, 4))
    xdog = XDoG(XDoGConfig(sigmas=(0.3, 0.5, 0.9)))
    assert np.array_equal(xdog(rgb), xdog(rgb, sigma=0.3))  # no rng: the first
    picks = {xdog.pick_sigma(np.random.default_rng(s)) for s in range(30)}
    assert picks == {0.3, 0.5, 0.9}
    assert np.array_equal(xdog(rgb, np.random.default_rng(7)), xdog(rgb, np.random.default_rng(7)))
    assert np.count_nonzero(xdog(rgb, sigma=0.9) < 128) > np.count_nonzero(xdog(rgb, sigma=0.3) < 128)
    single = XDoG(XDoGConfig(sigma=0.7, sigmas=()))
    assert single.pick_sigma(np.random.default_rng(0)) == 0.7


def test_registry_contents_and_lazy_hed() -> None:
    assert set(EXTRACTORS) == {"detail", "xdog", "hed"}
    assert EXTRACTORS["detail"] == (DetailFilter, DetailFilterConfig)
    assert EXTRACTORS["xdog"] == (XDoG, XDoGConfig)
    code = ("import sys, sketch2anime.data.extractors as e; "
            "assert 'hed' in e.EXTRACTORS; e.make_extractor('detail'); "
            "print([m for m in sys.modules if m.startswith('sketch2anime') and 'hed' in m])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_make_extractor_rejects_unknown_names_and_params() -> None:
    with pytest.raises(ValueError, match=r"unknown sketch extractor 'canny'.*detail, xdog, hed"):
        make_extractor("canny")
    with pytest.raises(ValueError, match=r"detail\.min_length.*min_line_length"):
        make_extractor("detail", min_length=3)
    with pytest.raises(ValueError, match="canny_low"):
        make_extractor("detail", canny_low="many")
    with pytest.raises(ValueError, match="canny_low <= canny_high"):
        make_extractor("detail", canny_low=200, canny_high=100)
    with pytest.raises(ValueError, match="sigmas"):
        make_extractor("xdog", sigmas=[0.3, -1.0])


def test_make_extractor_coerces_and_round_trips_params() -> None:
    detail = make_extractor("detail", min_line_length="12", line_width=3)
    assert detail.name == "detail"
    assert detail.config.min_line_length == 12.0 and detail.config.line_width == 3.0
    xdog = make_extractor("xdog", sigmas="0.3,0.6")
    assert xdog.config.sigmas == (0.3, 0.6)
    for extractor in (detail, xdog):
        params = extractor_params(extractor)
        assert json.loads(json.dumps(params)) == params
        assert make_extractor(extractor.name, **params).config == extractor.config


def test_parse_extractor_params() -> None:
    parsed = parse_extractor_params(["detail.min_line_length=12", "xdog.sigmas=0.3,0.5",
                                     "xdog.phi=100.5", "detail.blur_sigma = 2"])
    assert parsed == {"detail": {"min_line_length": 12, "blur_sigma": 2}, "xdog": {"sigmas": "0.3,0.5", "phi": 100.5}}
    assert make_extractor("xdog", **parsed["xdog"]).config.sigmas == (0.3, 0.5)
    assert parse_extractor_params(["xdog.sigmas=[0.4, 0.6]"]) == {"xdog": {"sigmas": [0.4, 0.6]}}
    assert parse_extractor_params([]) == {}
    for bad in ["detail", "min_line_length=3", "detail.=3", "detail.a.b=3"]:
        with pytest.raises(ValueError, match="EXTRACTOR.KEY=VALUE"):
            parse_extractor_params([bad])
    with pytest.raises(ValueError, match="unknown sketch extractor 'canny'"):
        parse_extractor_params(["canny.low=3"])
