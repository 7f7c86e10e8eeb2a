"""scripts/fid_uncertainty.py: the real-picture floor, the paired bootstrap and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import EdgeStatistics, load_script, prepare_drawings
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.testing import tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")
fid_uncertainty = load_script("fid_uncertainty")
SIZE = 64


def test_real_floor_uses_disjoint_samples_and_sees_a_shifted_training_set() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(20, 6))
    same = rng.normal(size=(70, 6))
    floor = fid_uncertainty.real_floor(real, same, draws=10, rng=np.random.default_rng(1))
    assert len(floor) == 3  # 70 training rows hold three disjoint samples of 20
    shifted = fid_uncertainty.real_floor(real, same + 3.0, draws=10, rng=np.random.default_rng(1))
    # the same distribution scores above 0 (sampling noise) and far below a shifted one (mean gap 3 per column)
    assert 0.0 < max(floor) < 0.5 * min(shifted)
    assert min(shifted) > 6 * 9.0 * 0.8
    with pytest.raises(ValueError, match="fewer than the 20"):
        fid_uncertainty.real_floor(real, same[:19], draws=1, rng=rng)


def test_parse_seeds() -> None:
    assert fid_uncertainty.parse_seeds("0,1, 2") == [0, 1, 2]
    for bad in ("", "0,0", "a,1"):
        with pytest.raises(ValueError, match="--seeds"):
            fid_uncertainty.parse_seeds(bad)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_drawings(tmp_path_factory.mktemp("fidunc"), 16, 80, SIZE, val_fraction=0.2)


def test_report_end_to_end(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(tiny_pipeline(tmp_path / "tiny", image_size=SIZE))
    report = fid_uncertainty.uncertainty_report(dataset, [model, model], SIZE, [0, 1], real_draws=5, draws=20,
                                                seed=0, extractor=EdgeStatistics(), log=lambda m: None)
    lines = report.splitlines()
    protocol = EvaluationProtocol(dataset, ProtocolConfig(hint_levels=("sparse",), roughness=("none",)))
    n, m = len(protocol), len(protocol.training_color_paths())
    assert n >= 2 and m >= n
    assert f"against {min(5, m // n)} disjoint samples of {n} training pictures" in report
    rows = [line for line in lines if line.startswith(f"| {model} |")]
    assert len(rows) == 2
    # the same model twice: no difference in any draw, and the reseeded range is the same on both rows
    assert rows[1].endswith("| +0.0 [+0.0, +0.0] | 0% |")
    assert rows[0].split("|")[3] == rows[1].split("|")[3]
    assert fid_uncertainty.main(["--data", str(dataset), "--seeds", "1,1"]) == 2
    assert "--seeds" in capsys.readouterr().err
