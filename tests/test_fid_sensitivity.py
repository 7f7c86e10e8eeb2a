"""scripts/fid_sensitivity.py: the degradations it scores and its per-layer FID columns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import EdgeStatistics, load_script, prepare_drawings
from sketch2anime.evaluation.fid import HED_VGG_LAYERS, make_feature_extractor
from sketch2anime.testing import tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")
fid_sensitivity = load_script("fid_sensitivity")
SIZE = 64


def test_blur_smooths_and_keeps_flat_colour() -> None:
    rng = torch.Generator().manual_seed(0)
    noise = torch.rand(2, 3, 24, 24, generator=rng) * 2 - 1
    light, strong = fid_sensitivity.gaussian_blur(noise, 0.7), fid_sensitivity.gaussian_blur(noise, 1.5)
    assert light.shape == noise.shape
    # a stronger blur leaves less pixel-to-pixel variation
    assert noise.diff(dim=-1).abs().mean() > light.diff(dim=-1).abs().mean() > strong.diff(dim=-1).abs().mean()
    flat = torch.full((1, 3, 16, 16), 0.25)
    assert torch.allclose(fid_sensitivity.gaussian_blur(flat, 1.0), flat, atol=1e-6)


def test_lines_darken_only_where_there_is_ink() -> None:
    picture = torch.full((1, 3, 4, 4), 0.5)
    sketch = torch.ones(1, 1, 4, 4)
    sketch[..., 0, 0] = -1.0  # one black ink pixel on white paper
    out = fid_sensitivity.times_lines(picture, sketch)
    assert torch.allclose(out[..., 0, 0], torch.full((1, 3), -1.0))
    assert torch.allclose(out[..., 1:, :], picture[..., 1:, :])


def test_desaturation_and_round_trip() -> None:
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    grey = fid_sensitivity.desaturate(red, 1.0)
    assert torch.allclose(grey, grey[:, :1].expand_as(grey))  # fully desaturated: R = G = B
    checker = (torch.arange(16).view(1, -1) + torch.arange(16).view(-1, 1)) % 2 * 2.0 - 1
    checker = checker.expand(1, 3, 16, 16).float()
    assert fid_sensitivity.round_trip(checker, 8).abs().max() < 0.1  # 1 px detail does not survive 8 px


def test_per_layer_columns_follow_the_extractor_layout() -> None:
    widths = [4, 5, 6, 7, 8]
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, sum(widths)))
    fake = real.copy()
    third = slice(sum(widths[:2]), sum(widths[:3]))  # relu3_3's columns
    fake[:, third] += 3.0
    row = fid_sensitivity.score_row("shifted relu3_3", real, fake, widths, seed=0)
    assert row["relu3_3"] == pytest.approx(9.0 * widths[2], rel=1e-6)  # a mean shift of 3 in each of 6 columns
    for layer in HED_VGG_LAYERS:
        if layer != "relu3_3":
            assert abs(row[layer]) < 1e-6
    assert row["fid"] == pytest.approx(row["relu3_3"], rel=1e-6)
    table = fid_sensitivity.markdown([row])
    assert "| shifted relu3_3 | 54.0 |" in table and "FID relu5_3" in table


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_drawings(tmp_path_factory.mktemp("fidsens"), 8, 80, SIZE)


def test_the_hed_layout_is_probed_from_the_extractor() -> None:
    extractor = make_feature_extractor("hed-vgg", allow_random_weights=True, hed_input_size=32)
    assert fid_sensitivity.layer_widths(extractor) == [64, 128, 256, 512, 512]
    assert fid_sensitivity.layer_widths(EdgeStatistics()) == [3, 3, 3, 3, 3]


def test_rows_for_the_true_image_changes_and_a_model(dataset: Path, tmp_path: Path) -> None:
    model = tiny_pipeline(tmp_path / "tiny", image_size=SIZE)
    extractor = EdgeStatistics()
    rows = fid_sensitivity.sensitivity_rows(dataset, [str(model)], SIZE, None, 0, extractor=extractor, log=lambda m: None)
    names = [row["name"] for row in rows]
    assert names[:len(fid_sensitivity.TARGET_CHANGES)] == [name for name, _ in fid_sensitivity.TARGET_CHANGES]
    assert names[-2:] == [f"model {model}, t = 0", f"model {model}, unsharp mask 0.5"]
    for row in rows:
        assert all(math.isfinite(row[key]) for key in ("fid", "kid_x1e3", *HED_VGG_LAYERS))
    by_name = {row["name"]: row for row in rows}
    # the same pictures in another order have the same statistics: FID exactly ignores which face is drawn
    blurred = by_name["Gaussian blur 1.0 px"]["fid"]
    assert blurred > by_name["Gaussian blur 0.7 px"]["fid"] > 0.0  # edge statistics fade with the blur
    assert abs(by_name["another validation image (order rotated)"]["fid"]) < 1e-3 * blurred


def test_a_model_of_another_size_is_refused(dataset: Path, tmp_path: Path) -> None:
    model = tiny_pipeline(tmp_path / "tiny128", image_size=128)
    sketch, hint = torch.ones(2, 1, SIZE, SIZE), torch.zeros(2, 4, SIZE // 4, SIZE // 4)
    with pytest.raises(ValueError, match="draws 128 px"):
        fid_sensitivity.model_pictures(str(model), sketch, hint, SIZE)


def test_band_swap_keeps_the_detail_of_one_picture_and_the_layout_of_the_other() -> None:
    checker = ((torch.arange(32).view(1, -1) + torch.arange(32).view(-1, 1)) % 2 * 0.4 - 0.2).expand(1, 3, 32, 32)
    detail = checker.float() + 0.5  # a fine pattern on a light page
    layout = torch.full((1, 3, 32, 32), -0.6)  # a dark, flat page
    swapped = fid_sensitivity.swap_bands(detail, layout, 3.0)
    # the coarse level is the layout's, the pixel-to-pixel pattern is the detail's
    assert abs(float(swapped.mean()) - (-0.6)) < 0.02
    assert torch.allclose(swapped.diff(dim=-1), detail.diff(dim=-1), atol=0.05)
    assert torch.allclose(fid_sensitivity.swap_bands(detail, detail, 3.0), detail, atol=1e-6)
    # the reverse swap is a flat page: the layout picture has no detail to give
    assert float(fid_sensitivity.swap_bands(layout, detail, 3.0).diff(dim=-1).abs().max()) < 0.05
    with pytest.raises(ValueError, match="one shape"):
        fid_sensitivity.swap_bands(detail, layout[..., :16], 3.0)


def test_band_rows_pair_the_first_model_with_the_others_and_the_truth() -> None:
    a, b, c, truth = (torch.full((1, 3, 16, 16), v) for v in (-0.5, 0.0, 0.5, 0.9))
    a = a + ((torch.arange(16) % 2) * 0.2).view(1, 1, 1, 16)  # a's own detail
    rows = fid_sensitivity.band_rows({"A": a, "B": b, "C": c}, truth, 4.0)
    names = [name for name, _ in rows]
    assert names == ["A's detail on the true images' layout (σ 4 px)", "A's detail on B's layout (σ 4 px)",
                     "B's detail on A's layout (σ 4 px)", "A's detail on C's layout (σ 4 px)",
                     "C's detail on A's layout (σ 4 px)"]
    by_name = dict(rows)
    assert abs(float(by_name["A's detail on the true images' layout (σ 4 px)"].mean()) - 0.9) < 0.05
    assert abs(float(by_name["A's detail on C's layout (σ 4 px)"].mean()) - 0.5) < 0.05
    assert abs(float(by_name["C's detail on A's layout (σ 4 px)"].mean()) - float(a.mean())) < 0.05
    assert by_name["A's detail on B's layout (σ 4 px)"].diff(dim=-1).abs().max() > 0.1  # A's stripes survive
    assert all(images.abs().max() <= 1.0 for _, images in rows)


def test_band_rows_are_scored_after_the_models(dataset: Path, tmp_path: Path) -> None:
    first, second = tiny_pipeline(tmp_path / "a", image_size=SIZE), tiny_pipeline(tmp_path / "b", image_size=SIZE, seed=1)
    rows = fid_sensitivity.sensitivity_rows(dataset, [str(first), str(second)], SIZE, None, 0, extractor=EdgeStatistics(),
                                            log=lambda m: None, band_sigmas=(3.0,))
    names = [row["name"] for row in rows]
    assert names[-3:] == [f"{first}'s detail on the true images' layout (σ 3 px)",
                          f"{first}'s detail on {second}'s layout (σ 3 px)",
                          f"{second}'s detail on {first}'s layout (σ 3 px)"]
    assert all(math.isfinite(row["fid"]) for row in rows)


def test_band_sigma_needs_a_model_and_a_sigma_that_fits_the_pictures(dataset: Path, tmp_path: Path, capsys) -> None:
    for argv in (["--band-sigma", "3"], ["--model", "default", "--band-sigma", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            fid_sensitivity.main(["--data", str(dataset), *argv])
        assert exit_info.value.code == 2
    # a blur reaching past the 64 px pictures is refused before any model runs, with the limit named
    model = tiny_pipeline(tmp_path / "tiny", image_size=SIZE)
    assert fid_sensitivity.main(["--data", str(dataset), "--model", str(model), "--band-sigma", "30"]) == 2
    assert "under 21.3" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not fit 16 px"):
        fid_sensitivity.swap_bands(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), 6.0)
