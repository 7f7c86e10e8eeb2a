"""scripts/side_by_side.py: models next to the trivial outputs, on synthetic drawings and sprites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import load_script, prepare_drawings
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.testing import tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")
side_by_side = load_script("side_by_side")
CELL = side_by_side.CELL


def cells(grid: np.ndarray, row: int, column: int) -> np.ndarray:
    return grid[row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL].astype(np.float64)


def as_cell(image: Image.Image) -> np.ndarray:
    return np.asarray(side_by_side.cell(image), dtype=np.float64)


def test_drawings_are_novice_faces_then_sprites_each_with_a_hint_layer() -> None:
    pairs = side_by_side.drawings(2, 1)
    assert len(pairs) == 3
    for sketch, hint in pairs:
        assert sketch.mode == "L" and hint.mode == "RGBA" and hint.size == sketch.size
        assert np.asarray(hint)[..., 3].max() == 255  # some colour is given
    # novice faces of different seeds are different drawings
    assert not np.array_equal(np.asarray(pairs[0][0]), np.asarray(pairs[1][0]))
    for novice, sprites in ((-1, 1), (0, 0)):
        with pytest.raises(ValueError):
            side_by_side.drawings(novice, sprites)
    with pytest.raises(ValueError, match="sprites"):
        side_by_side.drawings(0, 1000)


def test_figure_puts_each_model_beside_the_sketch_and_the_mean_training_picture(tmp_path: Path) -> None:
    data = prepare_drawings(tmp_path, count=6, draw_size=96, size=64)
    first = tiny_pipeline(tmp_path / "a", seed=0)
    second = tiny_pipeline(tmp_path / "b", seed=1)
    out = tmp_path / "figure.png"
    code = side_by_side.main(["--model", str(first), "--model", str(second), "--data", str(data),
                              "--novice", "2", "--sprites", "1", "--out", str(out)])
    assert code == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape == (3 * CELL, 5 * CELL, 3)

    pairs = side_by_side.drawings(2, 1)
    # the mean column: the average of the training split's colour pictures, read here independently
    records = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    train = [np.asarray(Image.open(data / r["color"]).convert("RGB"), np.float64) for r in records if r["split"] == "train"]
    assert 0 < len(train) < len(records)
    mean = Image.fromarray(np.mean(train, axis=0).round().astype(np.uint8))
    pipes = [Sketch2AnimePipeline.from_pretrained(folder, device="cpu") for folder in (first, second)]
    for row, (sketch, hint) in enumerate(pairs):
        assert np.abs(cells(grid, row, 1) - as_cell(sketch)).max() <= 1  # the sketch as output
        assert np.abs(cells(grid, row, 2) - as_cell(mean)).max() <= 1
        for column, pipe in enumerate(pipes, start=3):
            assert np.abs(cells(grid, row, column) - as_cell(pipe(sketch, hint, projection=0.5, seed=0))).max() <= 1
    # two different models give two different columns; the mean is the same in every row
    assert np.abs(cells(grid, 0, 3) - cells(grid, 0, 4)).mean() > 1
    assert np.array_equal(cells(grid, 0, 2), cells(grid, 2, 2))


def test_without_data_there_is_no_mean_column_and_bad_requests_exit_2(tmp_path: Path, capsys) -> None:
    model = tiny_pipeline(tmp_path / "m")
    out = tmp_path / "figure.png"
    assert side_by_side.main(["--model", str(model), "--novice", "1", "--sprites", "0", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out)).shape[:2] == (CELL, 3 * CELL)
    assert "floor: the sketch as output | model" in capsys.readouterr().out
    assert side_by_side.main(["--model", str(model), "--novice", "0", "--sprites", "0", "--out", str(out)]) == 2
    assert side_by_side.main(["--model", str(tmp_path / "missing"), "--novice", "1", "--sprites", "0",
                              "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()
