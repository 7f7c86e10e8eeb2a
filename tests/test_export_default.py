"""scripts/export_default.py: a fine-tuned default model's card keeps the budget of the model it started from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export_default.py"


@pytest.fixture(scope="module")
def export_default():
    spec = importlib.util.spec_from_file_location("export_default", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, train: dict, init_generator: str = "") -> Path:
    folder.mkdir(parents=True)
    config = {"experiment": {"stage": "guided", "init_generator": init_generator}, "data": {"batch_size": 8},
              "train": train}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


START_CARD = """# Model card

## Training budget and hardware

| stage | steps | batch | images seen | wall time | images/s (median) | threads |
|---|---|---|---|---|---|---|
| guided U-Net generator (stage 2) | 6000 | 8 | 48,000 | 2.48 h | 8.4 | 2 |

Hardware: a CPU.

| not | a | budget | row |
"""


def test_fine_tune_inherits_its_starting_models_budget_rows(export_default, tmp_path: Path) -> None:
    start = tmp_path / "shipped"
    start.mkdir()
    (start / "MODEL_CARD.md").write_text(START_CARD)
    run = _run(tmp_path / "ft", {"steps": 4400, "lr": 1e-4, "l1_weight": 60.0, "adversarial_weight": 0.4},
               init_generator=str(start))
    found, rows = export_default.inherited_budget_rows(run)
    assert found == start
    assert rows == ["| guided U-Net generator (stage 2) | 6000 | 8 | 48,000 | 2.48 h | 8.4 | 2 |"]
    note = export_default.fine_tune_note(run, start)
    for part in ("train.steps=4400", "train.lr=0.0001", "train.l1_weight=60.0", "train.adversarial_weight=0.4",
                 str(start)):
        assert part in note


def test_a_run_from_scratch_inherits_nothing(export_default, tmp_path: Path) -> None:
    assert export_default.inherited_budget_rows(_run(tmp_path / "scratch", {"steps": 10})) == (None, [])


def test_a_starting_model_without_a_card_is_refused(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "ft", {"steps": 10}, init_generator=str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match="MODEL_CARD"):
        export_default.inherited_budget_rows(run)
