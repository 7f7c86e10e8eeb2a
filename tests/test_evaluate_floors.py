"""Evaluation that cannot be fooled: trivial floors, input sensitivity, the held-out line style, real
pairs and scores at the display size. Tiny synthetic images, CPU only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from conftest import draw_face, prepare_drawings, scene
from sketch2anime.cli import build_parser, main
from sketch2anime.data.extractors import EXTRACTORS, make_extractor
from sketch2anime.evaluation.evaluate import EvaluateConfig, EvalModel, oracle_model, run_evaluation
from sketch2anime.evaluation.figures import PAD
from sketch2anime.evaluation.floor_report import floors_table
from sketch2anime.evaluation.floors import colour16_times_lines, mean_image, sketch_as_output
from sketch2anime.evaluation.heldout_lines import HELDOUT_STYLE, GradientLines, GradientLinesConfig
from sketch2anime.evaluation.scoring import display_scores
from sketch2anime.evaluation.sensitivity import input_sensitivity, pair_indices
from sketch2anime.evaluation.sets import DisplayTargets
from sketch2anime.evaluation.ssim import l1, ssim

SIZE = 64
SOURCE = 128

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 faces drawn at 128 px, prepared at 64 px: the sources allow display scores up to 128 px."""
    return prepare_drawings(tmp_path_factory.mktemp("floordata"), 12, SOURCE, SIZE,
                            draw=lambda side, i: scene(side, 100 + i))


def _config(dataset: Path, out: Path, **changes) -> EvaluateConfig:
    values = dict(models=("x",), data=str(dataset), out=str(out), fid="none", hint_levels=("none", "sparse"),
                  roughness=("none",), batch_size=4, grid_rows=0, display_size=SOURCE)
    values.update(changes)
    return EvaluateConfig(**values)


def _blocks(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of flat colour regions in [-1, 1] (B, 3, S, S) and their boundary sketches (B, 1, S, S)."""
    rng = np.random.default_rng(seed)
    images, sketches = [], []
    for _ in range(n):
        image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
        d = ImageDraw.Draw(image)
        x0, y0 = rng.integers(2, size // 2, 2)
        d.rectangle([int(x0), int(y0), int(x0) + size // 2, int(y0) + size // 2],
                    fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        array = np.asarray(image)
        edge = np.zeros((size, size), dtype=bool)
        edge[:, 1:] |= (array[:, 1:] != array[:, :-1]).any(axis=2)
        edge[1:, :] |= (array[1:] != array[:-1]).any(axis=2)
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 127.5 - 1)
        sketches.append(torch.where(torch.from_numpy(edge), -1.0, 1.0)[None])
    return torch.stack(images), torch.stack(sketches)


# ---------------------------------------------------------------------------------------------
# input sensitivity

def test_sensitivity_is_zero_for_a_constant_model_and_one_for_the_targets() -> None:
    targets, _ = _blocks(10)
    constant = targets.mean(dim=0, keepdim=True).expand_as(targets)
    assert input_sensitivity(constant, targets)["sensitivity"] == pytest.approx(0.0, abs=1e-9)
    assert input_sensitivity(targets.clone(), targets)["sensitivity"] == pytest.approx(1.0, abs=1e-9)
    # Following the input at half contrast around the mean face: about 0.5, between the two.
    half = 0.5 * targets + 0.5 * constant
    assert input_sensitivity(half, targets)["sensitivity"] == pytest.approx(0.5, abs=0.02)
    # Fine-grained noise on a constant picture is averaged away at 32 px: still near 0.
    noisy = (constant.repeat_interleave(4, -1).repeat_interleave(4, -2)
             + 0.3 * torch.randn(10, 3, 128, 128, generator=torch.Generator().manual_seed(0)))
    big_targets = targets.repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert input_sensitivity(noisy.clamp(-1, 1), big_targets)["sensitivity"] < 0.15


def test_sensitivity_pairs_and_edge_cases() -> None:
    i, j = pair_indices(5)
    assert len(i) == 10 and (i < j).all()
    i, j = pair_indices(1000, seed=1, max_pairs=500)
    assert len(i) == 500 and (i != j).all() and np.array_equal(pair_indices(1000, seed=1, max_pairs=500)[1], j)
    one = torch.zeros(1, 3, 8, 8)
    assert input_sensitivity(one, one)["sensitivity"] is None  # no pairs
    same = torch.zeros(3, 3, 8, 8)
    assert input_sensitivity(same, same)["sensitivity"] is None  # identical targets: undefined, not inf
    with pytest.raises(ValueError, match="targets"):
        input_sensitivity(torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8))


# ---------------------------------------------------------------------------------------------
# floors

def test_colour_reference_beats_the_sketch_floor_on_synthetic_data() -> None:
    targets, sketches = _blocks(8, size=64, seed=3)
    floor = sketch_as_output(sketches)
    reference = colour16_times_lines(targets, sketches)
    assert floor.shape == reference.shape == targets.shape
    assert torch.equal(floor[:, 0], sketches[:, 0]) and torch.equal(floor[:, 1], floor[:, 2])
    assert ssim(reference, targets).mean() > ssim(floor, targets).mean() + 0.2
    assert l1(reference, targets).mean() < 0.5 * l1(floor, targets).mean()
    # Ink darkens the colours; paper keeps them.
    paper = sketches[:, 0] > 0
    assert (reference.mean(1)[~paper] <= -0.99).all()
    assert torch.allclose(colour16_times_lines(targets, torch.ones_like(sketches)),
                          F.interpolate(F.interpolate(targets, size=(16, 16), mode="area"), size=(64, 64),
                                        mode="bilinear", align_corners=False), atol=1e-5)


def test_mean_image_is_the_mean_of_the_training_images(tmp_path: Path) -> None:
    paths = []
    for k, value in enumerate((0, 100, 230)):
        path = tmp_path / f"{k}.png"
        Image.new("RGB", (8, 8), (value, 255 - value, 7)).save(path)
        paths.append(path)
    mean = mean_image(paths, 8)
    assert mean.shape == (3, 8, 8)
    assert torch.allclose(mean[:, 0, 0], torch.tensor([110.0, 145.0, 7.0]) / 127.5 - 1, atol=1e-5)
    with pytest.raises(ValueError, match="training"):
        mean_image([], 8)


def test_floors_in_every_table_with_their_sensitivity(dataset: Path, tmp_path: Path) -> None:
    def mirror(batch, projection, seed):  # follows the input, but badly
        return batch.target.flip(-1)

    result = run_evaluation(_config(dataset, tmp_path / "out"), progress=False,
                            models=[oracle_model(), EvalModel(name="mirror", source="m", kind="test", run=mirror)])
    entries = {(e["set"], e["model"], e["hint_level"]): e["metrics"] for e in result["entries"]}
    for set_name in ("val", "heldout-lines"):
        m = lambda name: entries[(set_name, name, "sparse")]  # noqa: E731
        assert m("floor-mean")["sensitivity"] == pytest.approx(0.0, abs=1e-9)
        assert m("oracle")["sensitivity"] == pytest.approx(1.0, abs=1e-9)
        assert 0.5 < m("ref-colour16")["sensitivity"] < 1.5
        assert m("oracle")["ssim_mean"] > m("ref-colour16")["ssim_mean"] > m("floor-sketch")["ssim_mean"]
        assert m("floor-mean")["hint_de00_median"] > m("oracle")["hint_de00_median"]
        headers, rows, caption = floors_table(result, set_name)
        names = [r[0] for r in rows]
        assert names == ["oracle", "mirror", "floor-sketch", "floor-mean", "ref-colour16"]
        margin = {r[0]: r[-1] for r in rows}
        best = max(m("floor-sketch")["ssim_mean"], m("floor-mean")["ssim_mean"])
        assert float(margin["oracle"]) == pytest.approx(1.0 - best, abs=1e-3) and margin["floor-mean"] == "–"
        assert "sensitivity (→ 1)" in headers and f"SSIM at {SOURCE} px ↑" in headers and "floor-sketch" in caption
    # The floors ignore hints: one output shared by both hint levels.
    assert entries[("val", "floor-sketch", "none")]["ssim_mean"] == entries[("val", "floor-sketch", "sparse")]["ssim_mean"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.count("| floor-sketch |") >= 4  # summary, floors (2 sets), clean-sketch table


def test_no_floors_and_reserved_names(dataset: Path, tmp_path: Path) -> None:
    result = run_evaluation(_config(dataset, tmp_path / "out", floors=False, heldout_lines=False, display_size=0),
                            models=[oracle_model()], progress=False)
    assert {e["model"] for e in result["entries"]} == {"oracle"} and result["floors"] == []
    assert {e["set"] for e in result["entries"]} == {"val"}
    assert all(e["metrics"]["ssim_display_mean"] is None for e in result["entries"])
    with pytest.raises(ValueError, match="floor"):
        _config(dataset, tmp_path, models=("floor-mean",))
    with pytest.raises(ValueError, match="display-size"):
        _config(dataset, tmp_path, display_size=8)


# ---------------------------------------------------------------------------------------------
# the held-out line style

def test_gradient_lines_are_deterministic_and_see_colour_edges() -> None:
    lines = GradientLines()
    assert HELDOUT_STYLE not in EXTRACTORS  # must never become training data
    blank = np.full((64, 64, 3), 200, dtype=np.uint8)
    assert (lines(blank) == 255).all()
    # Red and a green of the same luminance: invisible to a luminance edge detector, not to this one.
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:, :32] = (255, 0, 0)
    image[:, 32:] = (0, 130, 0)
    grey = np.asarray(Image.fromarray(image).convert("L"), dtype=np.int16)
    assert np.abs(np.diff(grey, axis=1)).max() <= 2
    sketch = lines(image)
    assert sketch.dtype == np.uint8 and sketch.shape == (64, 64)
    assert (sketch[:, 31:33] < 60).all() and (sketch[:, :24] == 255).all() and (sketch[:, 40:] == 255).all()
    face = np.asarray(draw_face(128, 5))
    assert np.array_equal(lines(face), lines(face))
    ink = lines(face) < 128
    assert 0.01 < ink.mean() < 0.4
    for name in ("detail", "xdog"):  # a different style from the training extractors
        assert ((make_extractor(name)(face) < 128) != ink).mean() > 0.02
    with pytest.raises(ValueError, match="low < high"):
        GradientLinesConfig(low=100, high=50)
    with pytest.raises(ValueError, match="HxWx3"):
        lines(np.zeros((8, 8), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# display size and real pairs

def test_display_scores_use_the_native_output() -> None:
    targets, _ = _blocks(4, size=64)
    assert np.allclose(display_scores(targets, targets)["ssim"], 1.0)
    small = F.interpolate(targets, size=(16, 16), mode="area")
    shown = display_scores(small, targets)
    assert (shown["ssim"] < 0.95).all() and (shown["l1"] > 0).all()
    reason = DisplayTargets(64, [lambda: Image.new("RGB", (32, 32))])
    assert not reason.available and "smaller than 64" in reason.reason
    with pytest.raises(ValueError, match="display"):
        reason.tensor([0])


def test_display_size_scores_are_at_the_source_size(dataset: Path, tmp_path: Path) -> None:
    """The oracle's 64 px output upscaled to 128 px is not the 128 px truth; a model drawing at 128 px is."""
    sources = {p.stem: p for p in (dataset.parent / "images").iterdir()}
    manifest = [json.loads(line) for line in (dataset / "manifest.jsonl").read_text().splitlines()]
    source_of = {r["id"]: sources[Path(r["source"]).stem] for r in manifest}

    def sharp(batch, projection, seed):  # returns the true image at 128 px: a larger native size
        return torch.stack([torch.from_numpy(np.asarray(Image.open(source_of[i]).convert("RGB")).copy())
                            .permute(2, 0, 1).float() / 127.5 - 1 for i in batch.ids])

    result = run_evaluation(_config(dataset, tmp_path / "out", floors=False, heldout_lines=False),
                            models=[oracle_model(), EvalModel(name="sharp", source="s", kind="test", run=sharp)],
                            progress=False)
    m = {e["model"]: e["metrics"] for e in result["entries"] if e["hint_level"] == "none"}
    assert m["oracle"]["ssim_mean"] == pytest.approx(1.0)
    assert m["oracle"]["ssim_display_mean"] < 0.97
    assert m["sharp"]["ssim_display_mean"] == pytest.approx(1.0, abs=1e-4)
    assert m["sharp"]["ssim_mean"] > 0.95  # resized to the dataset size it is the dataset image, nearly
    assert result["sets"][0]["display"] == {"size": SOURCE, "available": True, "reason": None}
    # Larger than the sources: skipped with the reason, never compared with an upscaled target.
    skipped = run_evaluation(_config(dataset, tmp_path / "out2", floors=False, heldout_lines=False, display_size=256),
                             models=[oracle_model()], progress=False)
    assert "smaller than 256" in skipped["sets"][0]["display"]["reason"]
    assert all(e["metrics"]["ssim_display_mean"] is None for e in skipped["entries"])


def _pairs_folder(root: Path, n: int = 3) -> Path:
    (root / "sketch").mkdir(parents=True)
    (root / "color").mkdir()
    for i in range(n):
        face = draw_face(SOURCE, 50 + i)
        face.save(root / "color" / f"{i}.jpg", quality=95)
        Image.fromarray(GradientLines()(np.asarray(face))).save(root / "sketch" / f"{i}.jpg", quality=95)
    Image.new("RGB", (SOURCE, SOURCE)).save(root / "color" / "unmatched.jpg")
    return root


def test_real_pairs_are_a_separate_set(dataset: Path, tmp_path: Path) -> None:
    pairs = _pairs_folder(tmp_path / "pairs")
    # Through the command line: arguments -> EvaluateConfig -> run_evaluation.
    assert main(["evaluate", "--model", "oracle", "--data", str(dataset), "--out", str(tmp_path / "out"),
                 "--pairs", str(pairs), "--display-size", str(SOURCE), "--no-heldout-lines", "--fid", "none",
                 "--roughness", "none", "--quiet"]) == 0
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    config = result["config"]
    assert config["pairs"] == str(pairs) and config["floors"] and not config["heldout_lines"]
    assert [s["name"] for s in result["sets"]] == ["val", "sketch-pairs"]
    pair_set = result["sets"][1]
    assert pair_set["n"] == 3 and pair_set["image_size"] == SIZE and pair_set["display"]["available"]
    entries = [e for e in result["entries"] if e["set"] == "sketch-pairs"]
    assert {e["model"] for e in entries} == {"oracle", "floor-sketch", "floor-mean", "ref-colour16"}
    oracle = [e["metrics"] for e in entries if e["model"] == "oracle"]
    assert all(m["ssim_mean"] == pytest.approx(1.0) and m["ssim_display_mean"] < 1.0 for m in oracle)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Real line-art pairs" in report and "grid-sketch-pairs.png" in report
    assert result["files"]["set_grids"] == {"sketch-pairs": "grid-sketch-pairs.png"}
    # The pairs' own grid shows the pairs: the oracle's tile equals the target tile in every row,
    # and its targets are not the validation faces of the main grid.
    grid = np.asarray(Image.open(tmp_path / "out" / "grid-sketch-pairs.png").convert("RGB")).astype(int)
    main_grid = np.asarray(Image.open(tmp_path / "out" / "grid.png").convert("RGB")).astype(int)
    tile = SIZE * -(-128 // SIZE)
    columns = ["sketch", "hint", "oracle", "floor-sketch", "floor-mean", "ref-colour16", "target"]

    def cell(picture: np.ndarray, row_from_bottom: int, column: str) -> np.ndarray:
        top = picture.shape[0] - PAD - (row_from_bottom + 1) * (tile + PAD)
        left = PAD + columns.index(column) * (tile + PAD)
        return picture[top:top + tile, left:left + tile]

    assert grid.shape[1] == PAD + len(columns) * (tile + PAD)
    for row in range(3):
        assert np.abs(cell(grid, row, "oracle") - cell(grid, row, "target")).max() <= 1
    assert np.abs(cell(grid, 0, "target") - cell(main_grid, 0, "target")).mean() > 10
    with pytest.raises(ValueError, match="sketch"):
        run_evaluation(_config(dataset, tmp_path / "out3", pairs=str(tmp_path)), models=[oracle_model()],
                       progress=False)


def test_evaluate_help_documents_the_new_options() -> None:
    parser = build_parser()
    evaluate = parser._subparsers._group_actions[0].choices["evaluate"]  # noqa: SLF001
    text = evaluate.format_help()
    for flag in ("--no-floors", "--no-heldout-lines", "--pairs", "--display-size", "--table"):
        assert flag in text


def test_evaluate_arguments_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["evaluate", "--model", "oracle", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    for extra, message in ((["--projection", "0,half"], "--projection must be numbers"),
                           (["--display-size", "8"], "--display-size"), (["--model", "floor-mean"], "is a floor")):
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _entry(model: str, ssim_mean: float, fid: float | None, projection: float | None = None) -> dict:
    metrics = dict(ssim_mean=ssim_mean, ssim_display_mean=None, l1_mean=0.2, hint_de00_median=3.0, line_f=0.5,
                   sensitivity=0.8, fid=fid, kid_mean=None if fid is None else fid / 1000.0)
    return dict(model=model, set="val", roughness="none", hint_level="sparse", projection=projection, n=10,
                metrics=metrics, feature_extractor=None if fid is None else "HED-VGG16 features")


def test_floors_table_shows_fid_only_when_it_was_scored() -> None:
    scored = {"entries": [_entry("guided", 0.40, 50.0, 0.0), _entry("pix2pix", 0.35, 80.0),
                          _entry("floor-sketch", 0.20, 300.0), _entry("floor-mean", 0.30, 250.0)]}
    headers, rows, caption = floors_table(scored, "val")
    fid_col, kid_col = headers.index("FID ↓"), headers.index("KID×10³ ↓")
    by_model = {r[0]: r for r in rows}
    assert all(len(r) == len(headers) for r in rows)
    assert by_model["guided"][fid_col] == "50.0" and by_model["floor-mean"][fid_col] == "250.0"
    assert by_model["pix2pix"][kid_col] == "80.0"  # KID 0.08 shown ×10³
    assert by_model["guided"][-1] == "+0.100" and "HED-VGG16" in caption
    unscored = {"entries": [_entry("guided", 0.40, None, 0.0), _entry("floor-mean", 0.30, None)]}
    headers, rows, caption = floors_table(unscored, "val")
    assert "FID ↓" not in headers and all(len(r) == len(headers) for r in rows) and "FID" not in caption
