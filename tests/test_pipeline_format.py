"""pipeline.json (PipelineDescription), the one folder writer, save_pretrained, and who imports what."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from sketch2anime.checkpoint import CheckpointError
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.pipeline_format import (
    PIPELINE_FILE,
    PipelineDescription,
    pipeline_description,
    read_pipeline_description,
    write_pipeline_folder,
)
from sketch2anime.testing import tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")
SRC = Path(__file__).resolve().parents[1] / "src" / "sketch2anime"


def test_description_round_trips_and_keeps_unknown_keys(tmp_path: Path) -> None:
    description = PipelineDescription("guided", 128, 4, latent_dim=512, projection_k=7, projection_reg=0.01,
                                      training={"step": 3}, extra={"future_key": [1, 2]})
    assert description.hint_size == 32 and description.uses_latent
    description.write(tmp_path)
    text = json.loads((tmp_path / PIPELINE_FILE).read_text())
    assert text["projection"] == {"k": 7, "reg": 0.01} and text["future_key"] == [1, 2]
    assert PipelineDescription.read(tmp_path) == description
    # The older dict helpers give the same content.
    assert read_pipeline_description(tmp_path) == text
    assert pipeline_description("guided", 128, 4, 512, 7, 0.01, {"step": 3}) == {
        k: v for k, v in text.items() if k != "future_key"}


def test_older_files_without_projection_get_the_defaults(tmp_path: Path) -> None:
    (tmp_path / PIPELINE_FILE).write_text(json.dumps({"format_version": 1, "pipeline_type": "simple_gan",
                                                      "image_size": 64, "hint_downscale": 4}))
    description = PipelineDescription.read(tmp_path)
    assert (description.projection_k, description.projection_reg, description.latent_dim) == (10, 1e-3, None)


@pytest.mark.parametrize("change, message", [
    ({"format_version": 2}, "format_version 2"),
    ({"image_size": "64"}, "image_size must be a positive integer"),
    ({"hint_downscale": 0}, "hint_downscale must be a positive integer"),
    ({"projection": {"k": 0}}, "projection_k must be a positive integer"),
    ({"projection": {"reg": float("nan")}}, "projection_reg"),
    ({"latent_dim": -1}, "latent_dim"),
    ({"pipeline_type": ""}, "pipeline_type"),
])
def test_bad_descriptions_name_the_file(tmp_path: Path, change: dict, message: str) -> None:
    data = {**PipelineDescription("sketch2anime", 64, 4, latent_dim=16).to_dict(), **change}
    (tmp_path / PIPELINE_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=message) as info:
        PipelineDescription.read(tmp_path)
    assert str(tmp_path / PIPELINE_FILE) in str(info.value)


def test_writer_refuses_an_incomplete_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs autoencoder/config.json.*latent_bank.json"):
        write_pipeline_folder(tmp_path, PipelineDescription("sketch2anime", 64, 4, latent_dim=16), {})
    assert not (tmp_path / PIPELINE_FILE).exists()


def test_save_pretrained_then_from_pretrained_gives_identical_outputs(tmp_path: Path) -> None:
    for kind in ("sketch2anime", "simple_gan"):
        source = tiny_pipeline(tmp_path / kind, kind, bank_size=12, projection_k=4)
        pipe = Sketch2AnimePipeline.from_pretrained(source, device="cpu")
        again = Sketch2AnimePipeline.from_pretrained(pipe.save_pretrained(tmp_path / f"{kind}-saved"), device="cpu")
        assert again.description == pipe.description
        sketch = np.full((40, 56), 255, np.uint8)
        sketch[8:32, 20:23] = 0
        for projection in (0.0, 0.8):
            assert np.array_equal(np.asarray(pipe(sketch, projection=projection, seed=1)),
                                  np.asarray(again(sketch, projection=projection, seed=1)))
        for name in ("pipeline.json", "generator/config.json", "generator/model.safetensors"):
            assert (source / name).read_bytes() == (tmp_path / f"{kind}-saved" / name).read_bytes(), name


def test_training_never_imports_inference() -> None:
    # Both use the pipeline format module; a stage that imported inference would pull in its loaders.
    for path in sorted((SRC / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [alias.name for alias in node.names]
                assert not any(n == "inference" or n.endswith(".inference") for n in names), path.name
            elif isinstance(node, ast.Import):
                assert not any(alias.name.endswith("inference") for alias in node.names), path.name
