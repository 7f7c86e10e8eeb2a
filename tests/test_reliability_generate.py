"""Issue 16, defect 7: `sketch2anime generate` never overwrites an input, gives sketches whose results
would share a name distinct names, refuses other collisions before any work, and replaces earlier
results only with --overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from sketch2anime.generate import GenerateConfig, run_generate
from sketch2anime.testing.images import draw_square as draw
from test_server_api import build_tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny"))


def config(sketch: Path, out: Path, model: Path, **extra) -> GenerateConfig:
    return GenerateConfig(sketch=sketch, out=out, model=str(model), seed=0, device="cpu", **extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_stem_different_formats_get_distinct_results(model: Path, tmp_path: Path, capsys) -> None:
    sketches = tmp_path / "sketches"
    draw(sketches / "face.jpg", 0)
    draw(sketches / "face.png", 120)
    draw(sketches / "other.png", 60)
    assert run_generate(config(sketches, tmp_path / "out", model)) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face_jpg.png", "face_png.png", "other.png"]
    assert "3 of 3 sketches coloured" in capsys.readouterr().out


def test_output_folder_equal_to_or_inside_the_sketch_folder_is_refused(model: Path, tmp_path: Path) -> None:
    sketches = tmp_path / "sketches"
    draw(sketches / "face.png")
    before = snapshot(sketches)
    for out in (sketches, sketches / "results"):
        with pytest.raises(ValueError, match="inside the sketch folder"):
            run_generate(config(sketches, out, model))
    assert snapshot(sketches) == before


def test_single_file_never_overwrites_its_input_or_hint(model: Path, tmp_path: Path) -> None:
    sketch, hint = tmp_path / "face.png", tmp_path / "hint.png"
    original = draw(sketch)
    Image.new("RGBA", (48, 48), (255, 0, 0, 255)).save(hint)
    hint_bytes = hint.read_bytes()
    for out, extra in ((sketch, {}), (tmp_path, {}), (hint, {"hint": hint})):
        with pytest.raises(ValueError, match="never overwrites an input"):
            run_generate(config(sketch, out, model, overwrite=True, **extra))
    assert sketch.read_bytes() == original and hint.read_bytes() == hint_bytes


def test_projected_name_collision_is_refused_before_any_work(model: Path, tmp_path: Path) -> None:
    sketches = tmp_path / "sketches"
    draw(sketches / "face.png")
    draw(sketches / "face_projected.png")
    with pytest.raises(ValueError, match="two results would be written"):
        run_generate(config(sketches, tmp_path / "out", model, save_projected=True))
    assert not (tmp_path / "out").exists()


def test_existing_results_need_overwrite(model: Path, tmp_path: Path) -> None:
    sketch, out = tmp_path / "face.png", tmp_path / "results"
    draw(sketch)
    (out / "face.png").parent.mkdir()
    (out / "face.png").write_bytes(b"an earlier result")
    with pytest.raises(ValueError, match="--overwrite"):
        run_generate(config(sketch, out, model))
    assert (out / "face.png").read_bytes() == b"an earlier result"
    assert run_generate(config(sketch, out, model, overwrite=True)) == 0
    assert Image.open(out / "face.png").size == (48, 48)
    # -o FILE.png names the result: running the same command again replaces it
    assert run_generate(config(sketch, tmp_path / "named.png", model)) == 0
    assert run_generate(config(sketch, tmp_path / "named.png", model)) == 0
