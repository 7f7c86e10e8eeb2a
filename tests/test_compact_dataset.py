"""scripts/compact_dataset.py: a small copy of a prepared dataset that training reads as it is."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import load_script, scene
from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset
from sketch2anime.data.manifest import read_manifest
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset

compact = load_script("compact_dataset")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("faces")
    for i in range(9):
        scene(128, i).save(source / f"face_{i:02d}.png")
    out = tmp_path_factory.mktemp("data") / "faces"
    prepare_dataset(source, out, PrepareConfig(size=128, extractors=("detail", "xdog"), val_fraction=0.3, workers=1),
                    progress=False)
    return out


def test_compact_copy_is_smaller_keeps_sketches_exactly_and_colours_closely(prepared: Path, tmp_path: Path) -> None:
    target = tmp_path / "small"
    result = compact.compact_dataset(prepared, target, split="train", quality=75)
    original = {r.id: r for r in read_manifest(prepared) if r.split == "train"}
    records = read_manifest(target)
    assert result["images"] == len(records) == len(original) > 0
    assert result["bytes_after"] < result["bytes_before"]
    for record in records:
        before = original[record.id]
        assert [s.extractor for s in record.sketches] == [s.extractor for s in before.sketches]
        for new, old in zip(record.sketches, before.sketches):
            assert new.path.endswith(".webp")
            assert np.array_equal(cv2.imread(str(target / new.path), cv2.IMREAD_GRAYSCALE),
                                  cv2.imread(str(prepared / old.path), cv2.IMREAD_GRAYSCALE))
        a = cv2.imread(str(target / record.color)).astype(float)
        b = cv2.imread(str(prepared / before.color)).astype(float)
        assert np.sqrt(((a - b) ** 2).mean()) < 12.0
    dataset = PairedSketchDataset(DatasetConfig(root=str(target), split="train"))
    item = dataset[0]
    assert item["image"].shape == (3, 128, 128) and item["sketch"].shape == (1, 128, 128)


def test_one_sketch_per_image_rotates_over_the_extractors(prepared: Path, tmp_path: Path) -> None:
    target = tmp_path / "one"
    compact.compact_dataset(prepared, target, sketches_per_image=1)
    kept = [[s.extractor for s in r.sketches] for r in read_manifest(target)]
    assert all(len(k) == 1 for k in kept)
    assert {k[0] for k in kept} == {"detail", "xdog"}
    assert abs(sum(k[0] == "detail" for k in kept) - sum(k[0] == "xdog" for k in kept)) <= 1
    first = compact.compact_dataset(prepared, tmp_path / "first", limit=3)
    assert first["images"] == 3
    assert [r.id for r in read_manifest(tmp_path / "first")] == sorted(r.id for r in read_manifest(prepared))[:3]
    dataset = PairedSketchDataset(DatasetConfig(root=str(target), split="all"))
    assert len(dataset) == len(kept)
    dataset[1]


def test_bad_arguments_are_refused_with_a_message(prepared: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert compact.main([str(prepared), str(tmp_path / "q"), "--quality", "0"]) == 2
    assert "--quality" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert compact.main([str(prepared), str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert compact.main([str(tmp_path / "nothing"), str(tmp_path / "n")]) == 2
    assert "prepared dataset" in capsys.readouterr().err
