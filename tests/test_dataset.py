"""PairedSketchDataset (shapes, ranges, reproducibility, errors) and the contact sheet."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from conftest import scene
from sketch2anime.data.contact_sheet import render_contact_sheet, sheet_geometry
from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset
from sketch2anime.data.hints import HintConfig
from sketch2anime.data.manifest import read_manifest
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset




@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for i in range(16):
        scene(80, i).save(src / f"s{i:02d}.png")
    out = tmp_path_factory.mktemp("data") / "ds"
    cfg = PrepareConfig(extractors=("detail", "xdog"), workers=1, val_fraction=0.3, seed=1)
    report = prepare_dataset(src, out, cfg, progress=False)
    assert report.train > 0 and report.val > 0
    return out


def make(root: Path, **kwargs) -> PairedSketchDataset:
    return PairedSketchDataset(DatasetConfig(root=str(root), **kwargs))


def test_items_have_the_documented_shapes_and_ranges(prepared: Path) -> None:
    ds = make(prepared, rough_probability=1.0, flip=False)
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["sketch"].shape == (1, 64, 64) and item["rough_sketch"].shape == (1, 64, 64)
    assert item["hint"].shape == (4, 16, 16)
    for key in ("image", "sketch", "rough_sketch", "hint"):
        assert item[key].min() >= -1 and item[key].max() <= 1
    assert set(item["hint"][3].unique().tolist()) <= {0.0, 1.0}
    assert item["index"] == 0 and item["id"] == ds.records[0].id and item["extractor"] in ("detail", "xdog")
    # Without flips the image and sketch are the stored files, scaled to [-1, 1].
    color = np.asarray(Image.open(prepared / ds.records[0].color), dtype=np.float32)
    assert torch.allclose(item["image"], torch.from_numpy(color).permute(2, 0, 1) / 127.5 - 1)
    sketch = np.asarray(Image.open(prepared / ds.records[0].sketch_path(item["extractor"])), dtype=np.float32)
    assert torch.allclose(item["sketch"][0], torch.from_numpy(sketch) / 127.5 - 1)
    assert item["sketch"].max() == 1 and item["sketch"].min() == -1  # paper and ink
    # A rough sketch is a different drawing of the same picture.
    assert not torch.equal(item["rough_sketch"], item["sketch"])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_splits_are_disjoint_and_cover_the_manifest(prepared: Path) -> None:
    train, val = make(prepared, split="train"), make(prepared, split="val")
    ids_train, ids_val = {r.id for r in train.records}, {r.id for r in val.records}
    assert not ids_train & ids_val
    assert ids_train | ids_val == {r.id for r in read_manifest(prepared)}
    assert len(make(prepared, split="all")) == len(train) + len(val)
    assert len(make(prepared, limit=3)) == 3


def test_randomness_depends_on_seed_epoch_and_index(prepared: Path) -> None:
    a, b = make(prepared, rough_probability=0.5), make(prepared, rough_probability=0.5, in_memory=False)
    a.set_epoch(3)
    b.set_epoch(3)
    for index in range(len(a)):
        first, second = a[index], b[index]
        assert first["extractor"] == second["extractor"]
        for key in ("image", "sketch", "rough_sketch", "hint"):
            assert torch.equal(first[key], second[key]), key
    assert torch.equal(a[2]["hint"], a[2]["hint"])  # same item twice: same draw

    def signature(ds: PairedSketchDataset) -> list[torch.Tensor]:
        return [torch.cat([ds[i]["rough_sketch"].flatten(), ds[i]["hint"].flatten()]) for i in range(len(ds))]

    epoch3 = signature(a)
    a.set_epoch(4)
    assert any(not torch.equal(x, y) for x, y in zip(epoch3, signature(a)))
    other_seed = make(prepared, seed=5)
    other_seed.set_epoch(3)
    assert any(not torch.equal(x, y) for x, y in zip(epoch3, signature(other_seed)))
    # Different items of one epoch do not share a random stream.
    hints = [a[i]["hint"][3] for i in range(len(a))]
    assert len({tuple(h.flatten().tolist()) for h in hints}) > len(a) // 2


def test_fixed_mode_ignores_the_epoch(prepared: Path) -> None:
    ds = make(prepared, split="val", fixed=True, flip=False, rough_probability=1.0)
    ds.set_epoch(0)
    first = [ds[i] for i in range(len(ds))]
    ds.set_epoch(9)
    for i, item in enumerate(first):
        again = ds[i]
        assert torch.equal(item["rough_sketch"], again["rough_sketch"]) and torch.equal(item["hint"], again["hint"])


def test_extractor_filter_and_dataloader(prepared: Path) -> None:
    ds = make(prepared, extractors=("detail",), flip=False)
    assert ds.extractors == ("detail",)
    for i in range(len(ds)):
        assert ds[i]["extractor"] == "detail"
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["hint"].shape == (4, 4, 16, 16)
    assert batch["index"].tolist() == [0, 1, 2, 3] and len(batch["id"]) == 4
    coarse = make(prepared, hints=HintConfig(downscale=8))
    assert coarse[0]["hint"].shape == (4, 8, 8)


def test_clear_errors(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a prepared dataset"):
        make(tmp_path)
    with pytest.raises(ValueError, match="root is empty"):
        PairedSketchDataset(DatasetConfig())
    with pytest.raises(ValueError, match="no 'hed' sketches"):
        make(prepared, extractors=("hed",))
    with pytest.raises(ValueError, match="split"):
        DatasetConfig(root=str(prepared), split="test")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(prepared, unfinished)
    (unfinished / "manifest.jsonl").unlink()
    with pytest.raises(ValueError, match="did not finish"):
        make(unfinished)
    src = tmp_path / "src"
    src.mkdir()
    scene(64, 0).save(src / "only.png")
    prepare_dataset(src, tmp_path / "noval", PrepareConfig(extractors=("detail",), workers=1, val_fraction=0.0),
                    progress=False)
    with pytest.raises(ValueError, match="val split .* is empty"):
        make(tmp_path / "noval", split="val")


def test_contact_sheet(prepared: Path, tmp_path: Path) -> None:
    out = render_contact_sheet(prepared, tmp_path / "sheet.png", rows=3, seed=2)
    sheet = Image.open(out)
    cell, width, height = sheet_geometry(64, 5, 3)  # colour, detail, xdog, rough, hint
    assert cell == 128 and sheet.size == (width, height) and sheet.mode == "RGB"
    pixels = np.asarray(sheet)
    assert pixels[:18].min() < 100  # the label row has dark text
    again = render_contact_sheet(prepared, tmp_path / "again.png", rows=3, seed=2)
    assert np.array_equal(pixels, np.asarray(Image.open(again)))
    other = render_contact_sheet(prepared, tmp_path / "other.png", rows=3, seed=3)
    assert not np.array_equal(pixels, np.asarray(Image.open(other)))
    assert Image.open(render_contact_sheet(prepared, tmp_path / "all.png", rows=100)).size[1] == \
        sheet_geometry(64, 5, 16)[2]
    with pytest.raises(ValueError):
        render_contact_sheet(prepared, tmp_path / "x.png", rows=0)
