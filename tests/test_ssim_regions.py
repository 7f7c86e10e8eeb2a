"""scripts/ssim_regions.py and the SSIM factors it splits: where a picture loses SSIM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import load_script, prepare_drawings
from sketch2anime.evaluation.ssim import ssim, ssim_terms, window_statistics
from sketch2anime.testing import tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")
ssim_regions = load_script("ssim_regions")
SIZE = 64


def test_ssim_is_the_product_of_its_two_factors() -> None:
    rng = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 24, 24, generator=rng) * 2 - 1
    b = (a + 0.3 * torch.randn(2, 3, 24, 24, generator=rng)).clamp(-1, 1)
    luminance, structure = ssim_terms(a, b)
    assert luminance.shape == structure.shape == (2, 3, 14, 14)
    assert torch.allclose((luminance * structure).mean(dim=(1, 2, 3)), ssim(a, b), atol=1e-12)
    # a flat grey against a flat white: the brightness differs, the (absent) structure matches
    grey, white = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)
    luminance, structure = ssim_terms(grey, white)
    assert luminance.max() < 0.9 and torch.allclose(structure, torch.ones_like(structure))
    mean, variance = window_statistics(torch.full((1, 1, 16, 16), 0.25))
    assert torch.allclose(mean, torch.full_like(mean, 0.25)) and variance.abs().max() < 1e-12


def page(size: int = 48) -> torch.Tensor:
    """White paper with a textured red square (the figure) in the middle, (1, 3, size, size) in [-1, 1]."""
    image = torch.ones(1, 3, size, size)
    stripes = (torch.arange(16) % 4 < 2).float().view(1, 16) * 0.6 - 0.3
    image[:, 0, 16:32, 16:32] = 0.5 + stripes
    image[:, 1:, 16:32, 16:32] = -0.6 + stripes
    return image


def test_the_paper_and_the_figure_are_told_apart() -> None:
    target = page()
    paper = ssim_regions.paper_mask(target)
    assert paper.shape == (1, 1, 38, 38)
    assert paper[0, 0, 0, 0] and not paper[0, 0, 19, 19]  # corner window on paper, centre window on the square
    # flattening the figure loses structure in the figure only
    flat_figure = target.clone()
    flat_figure[..., 16:32, 16:32] = target[..., 16:32, 16:32].mean(dim=(2, 3), keepdim=True)
    row = ssim_regions.region_scores(flat_figure, target, paper)
    assert row["paper_ssim"] > 0.99  # windows at the paper's edge see a little of the square
    assert row["figure_structure"] < 0.8 and row["figure_ssim"] < 0.8
    # grey blotches on the paper lose on the paper, and not inside the figure's windows
    blotched = target.clone()
    blotched[..., :8, :8] = 0.2
    row = ssim_regions.region_scores(blotched, target, paper)
    assert row["paper_ssim"] < 0.97 and row["figure_ssim"] > 0.99
    share = row["paper_share"]
    assert row["ssim"] == pytest.approx(share * row["paper_ssim"] + (1 - share) * row["figure_ssim"], abs=1e-9)


def test_main_scores_a_prepared_validation_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = prepare_drawings(tmp_path, 6, 80, SIZE)
    model = tiny_pipeline(tmp_path / "tiny", image_size=SIZE)
    assert ssim_regions.main(["--model", str(model), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| floor-sketch") or line.startswith(f"| {model}")]
    assert len(table) == 2
    for line in table:
        cells = [float(c) for c in line.strip("|").split("|")[1:] if c.strip() != "nan"]
        assert all(-1.0 <= c <= 1.0 for c in cells)
    assert ssim_regions.main(["--model", str(model)]) == 2
    assert "--pairs" in capsys.readouterr().err


def test_the_colour_ladder_climbs_towards_the_true_picture() -> None:
    """Knowing the true colours at more pixels must score higher; the rows are named by their size."""
    target = page(48)
    sketch = torch.ones(1, 1, 48, 48)
    sketch[..., 16, 16:32] = sketch[..., 31, 16:32] = sketch[..., 16:32, 16] = sketch[..., 16:32, 31] = -1.0
    target = target * (sketch + 1) / 2 + ((sketch + 1) / 2 - 1)  # the true picture carries the lines
    paper = ssim_regions.paper_mask(target)
    rows = ssim_regions.ladder_rows("the true picture", target, sketch, target, paper, (4, 12, 48))
    assert [name for name, _ in rows] == [f"the true picture, colours at {n} px × the lines" for n in (4, 12, 48)]
    scores = [row["ssim"] for _, row in rows]
    assert scores[0] < scores[1] < scores[2]
    assert scores[2] > 0.99  # full-size colours times lines the picture already has: the picture itself


def test_the_ladder_sizes_are_checked() -> None:
    assert ssim_regions.parse_ladder("8, 16,32") == (8, 16, 32)
    assert ssim_regions.parse_ladder("") == ()
    for bad in ("8,x", "0,16"):
        with pytest.raises(ValueError, match="--ladder"):
            ssim_regions.parse_ladder(bad)


def test_main_prints_the_ladder_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = prepare_drawings(tmp_path, 6, 80, SIZE)
    model = tiny_pipeline(tmp_path / "tiny", image_size=SIZE)
    assert ssim_regions.main(["--model", str(model), "--data", str(data), "--ladder", "8,16"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "colours at" in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "the true picture, colours at 8 px × the lines", "the true picture, colours at 16 px × the lines",
        f"{model}, colours at 8 px × the lines", f"{model}, colours at 16 px × the lines"]
    assert ssim_regions.main(["--data", str(data), "--ladder", "8,x"]) == 2
    assert "--ladder" in capsys.readouterr().err


def test_the_hint_reach_picture_knows_the_true_colours_only_near_the_hints() -> None:
    """Near a hint the picture takes the true (16 px) colour, far from every hint it is white paper;
    a wider reach knows more of the truth and so scores higher."""
    size = 48
    target = torch.full((1, 3, size, size), -0.4)  # a flat dark grey figure filling the page
    sketch = torch.ones(1, 1, size, size)
    hint = torch.zeros(1, 4, 12, 12)
    hint[0, 3, 0, 0] = 1.0  # one hinted cell in the top-left corner
    hint[0, :3, 0, 0] = -0.4
    picture = ssim_regions.hint_reach_picture(target, sketch, hint, sigma=2.0)
    assert picture[0, :, 0, 0] == pytest.approx([-0.4] * 3, abs=1e-4)
    assert picture[0, :, -1, -1] == pytest.approx([1.0] * 3, abs=1e-4)
    distance = ssim_regions.hint_distance(hint, size)
    assert distance[0, 0, 0, 0] == 0 and distance[0, 0, -1, -1] > 40
    assert (ssim_regions.hint_distance(torch.zeros(1, 4, 12, 12), size) > 4 * size - 1).all()  # no hint: far everywhere
    # the lines are multiplied in
    sketch[..., 20, :] = -1.0
    assert ssim_regions.hint_reach_picture(target, sketch, hint, 2.0)[0, :, 20].max() == pytest.approx(-1.0)
    sketch[..., 20, :] = 1.0
    errors = [(ssim_regions.hint_reach_picture(target, sketch, hint, sigma) - target).abs().mean() for sigma in (2.0, 8.0, 32.0)]
    assert errors[0] > errors[1] > errors[2]


def test_main_scores_each_hint_level_and_the_hint_reach(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = prepare_drawings(tmp_path, 6, 80, SIZE)
    model = tiny_pipeline(tmp_path / "tiny", image_size=SIZE)
    assert ssim_regions.main(["--model", str(model), "--data", str(data), "--hints", "none,dense",
                              "--hint-reach", "8"]) == 0
    names = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert names[1:] == [
        "floor-sketch (the sketch as output)",
        "the true colours at 16 px within σ 8 px of the none hints, white elsewhere, × the lines", f"{model}, none hints",
        "the true colours at 16 px within σ 8 px of the dense hints, white elsewhere, × the lines", f"{model}, dense hints"]
    for bad in (["--hints", "some"], ["--hints", ""], ["--hint-reach", "0"]):
        assert ssim_regions.main(["--data", str(data), *bad]) == 2
        assert bad[0] in capsys.readouterr().err
