"""scripts/denoise_sweep.py: the clean-up settings scored on training faces held out for the purpose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EdgeStatistics, load_script, prepare_drawings
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.evaluation.ssim import ssim
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.denoise import DenoiseConfig, bilateral_denoise
from sketch2anime.testing import tiny_pipeline

denoise_sweep = load_script("denoise_sweep")
SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_drawings(tmp_path_factory.mktemp("sweep"), 12, 80, SIZE, val_fraction=0.25)


def _splits(folder: Path) -> dict[str, str]:
    return {r["id"]: r["split"] for r in map(json.loads, (folder / "manifest.jsonl").read_text().splitlines())}


def test_the_tuning_copy_holds_out_training_faces_and_never_the_validation_images(dataset: Path, tmp_path: Path) -> None:
    original = _splits(dataset)
    chosen = denoise_sweep.training_faces_as_validation(dataset, 4, tmp_path / "tune")
    copy = _splits(tmp_path / "tune")
    assert len(chosen) == 4 and all(original[i] == "train" for i in chosen)
    assert sorted(i for i, s in copy.items() if s == "val") == chosen
    assert all(copy[i] == "train" for i, s in original.items() if s == "val")
    assert _splits(dataset) == original  # the dataset itself is untouched
    protocol = EvaluationProtocol(tmp_path / "tune", ProtocolConfig(hint_levels=("sparse",), roughness=("none",)))
    assert len(protocol) == 4
    with pytest.raises(ValueError, match="--count"):
        denoise_sweep.training_faces_as_validation(dataset, 100, tmp_path / "too_many")


def test_rows_score_the_raw_pictures_first_then_each_setting(dataset: Path, tmp_path: Path) -> None:
    folder = tiny_pipeline(tmp_path / "tiny", image_size=SIZE)
    pipe = Sketch2AnimePipeline.from_pretrained(folder)
    protocol = EvaluationProtocol(dataset, ProtocolConfig(hint_levels=("sparse",), roughness=("none",)))
    settings = [DenoiseConfig(5, 10.0, 2.0), DenoiseConfig(3, 1e6, 1.0)]
    rows = denoise_sweep.sweep_rows(pipe, protocol, settings, EdgeStatistics())
    assert [r["name"] for r in rows] == ["none", "5, 10, 2", "3, 1e+06, 1"]
    indices = list(range(len(protocol)))
    target = protocol.target_tensor(indices)
    raw = pipe.generate_tensors(protocol.sketch_tensor("none", indices), protocol.hint_tensor("sparse", indices),
                                projection=0.0)["image"]
    assert rows[0]["ssim"] == pytest.approx(float(ssim(raw, target).mean()), abs=1e-6)
    assert rows[1]["ssim"] == pytest.approx(float(ssim(bilateral_denoise(raw, settings[0]), target).mean()), abs=1e-6)
    assert rows[2]["fid"] != pytest.approx(rows[0]["fid"])  # a plain blur changes the edge statistics
    assert "| none |" in denoise_sweep.markdown(rows)


def test_bad_settings_exit_2(capsys) -> None:
    assert denoise_sweep.main(["--setting", "7,10"]) == 2
    assert denoise_sweep.main(["--setting", "4,10,3"]) == 2
    assert "DIAMETER,SIGMA_COLOUR,SIGMA_SPACE" in capsys.readouterr().err
