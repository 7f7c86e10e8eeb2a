"""sketch2anime prepare: output layout, resume, layouts, settings checks, face cropping, CLI."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import scene
from sketch2anime.cli import main as cli_main
from sketch2anime.data import faces as faces_mod
from sketch2anime.data import prepare as prepare_mod
from sketch2anime.data.faces import FaceBox, find_face_box, square_box
from sketch2anime.data.manifest import JOURNAL_FILE, read_dataset_info, read_manifest
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset




def make_source(folder: Path, count: int, size: int = 96, start: int = 0) -> Path:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        target = folder / ("sub" if i % 3 == 0 else "") / f"img_{i:03d}.png"
        scene(size, i).save(target)
    return folder


def config(**kwargs) -> PrepareConfig:
    defaults = dict(extractors=("detail", "xdog"), workers=1, batch_size=4, val_fraction=0.2)
    defaults.update(kwargs)
    return PrepareConfig(**defaults)


def test_output_layout_manifest_and_report(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", 8)
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    report = prepare_dataset(src, out, config(), progress=False)
    assert report.prepared == 8 and report.processed == 8 and report.skipped == []
    assert "prepared 8 images" in report.summary()

    info = read_dataset_info(out)
    assert info.size == 64 and info.layout == "images" and set(info.extractors) == {"detail", "xdog"}
    assert info.extractors["detail"]["min_line_length"] == 24.0  # the full params, not just overrides
    records = read_manifest(out)
    assert sorted(r.source for r in records) == sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    for record in records:
        raw = (src / record.source).read_bytes()
        import hashlib
        assert record.sha256 == hashlib.sha256(raw).hexdigest() and record.id == record.sha256[:16]
        assert record.split in ("train", "val") and len(record.phash) == 16
        color = Image.open(out / record.color)
        assert color.mode == "RGB" and color.size == (64, 64)
        assert [s.extractor for s in record.sketches] == ["detail", "xdog"]
        for sketch in record.sketches:
            image = Image.open(out / sketch.path)
            assert image.mode == "L" and image.size == (64, 64)
            values = np.asarray(image)
            assert values.max() == 255 and values.min() < 128  # paper and some ink
        assert record.sketches[0].params == info.extractors["detail"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["counts"]["prepared"] == 8 and saved["counts"]["train"] + saved["counts"]["val"] == 8
    assert not (out / JOURNAL_FILE).exists()


def test_resume_redoes_only_missing_files(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", 8)
    out = tmp_path / "out"
    prepare_dataset(src, out, config(), progress=False)
    records = read_manifest(out)
    files = sorted(p for p in out.rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    gone = [out / records[0].color, out / records[1].sketches[1].path]
    for path in gone:
        path.unlink()
    report = prepare_dataset(src, out, config(), progress=False)
    assert report.processed == 2 and report.resumed == 6
    assert all(p.is_file() for p in gone)
    for p in files:
        if p not in gone:
            assert p.stat().st_mtime_ns == stamps[p], f"{p} was rewritten"
    assert [r.to_json() for r in read_manifest(out)] == [r.to_json() for r in records]
    # Nothing missing: a third run does no work at all.
    assert prepare_dataset(src, out, config(), progress=False).processed == 0


def test_killed_run_resumes_from_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_source(tmp_path / "src", 10)
    out = tmp_path / "out"
    real_chunk = prepare_mod._process_chunk
    calls = {"n": 0}

    def dying_chunk(tasks):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third chunk
        return real_chunk(tasks)

    monkeypatch.setattr(prepare_mod, "_process_chunk", dying_chunk)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(src, out, config(batch_size=3), progress=False)
    monkeypatch.setattr(prepare_mod, "_process_chunk", real_chunk)
    assert not (out / "manifest.jsonl").exists()
    journal = (out / JOURNAL_FILE).read_text().splitlines()
    assert len(journal) == 6
    with (out / JOURNAL_FILE).open("a") as handle:
        handle.write('{"id": "torn')  # a record half written when the process died
    report = prepare_dataset(src, out, config(batch_size=3), progress=False)
    assert report.processed == 4 and report.resumed == 6 and report.prepared == 10
    assert len(read_manifest(out)) == 10 and not (out / JOURNAL_FILE).exists()


def test_added_extractor_reuses_existing_files(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", 5)
    out = tmp_path / "out"
    prepare_dataset(src, out, config(extractors=("detail",)), progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    report = prepare_dataset(src, out, config(extractors=("detail", "xdog")), progress=False)
    assert report.processed == 5
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert len(list((out / "sketch" / "xdog").glob("*.png"))) == 5
    assert all(r.extractors == ("detail", "xdog") for r in read_manifest(out))


def test_parallel_workers_match_single_process(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", 8)
    prepare_dataset(src, tmp_path / "one", config(), progress=False)
    prepare_dataset(src, tmp_path / "two", config(workers=2, batch_size=2), progress=False)
    one, two = read_manifest(tmp_path / "one"), read_manifest(tmp_path / "two")
    assert [r.to_json() for r in one] == [r.to_json() for r in two]
    for record in one:
        for sketch in record.sketches:
            assert (tmp_path / "one" / sketch.path).read_bytes() == (tmp_path / "two" / sketch.path).read_bytes()


def test_settings_that_cannot_mix_are_refused(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", 3)
    out = tmp_path / "out"
    prepare_dataset(src, out, config(extractors=("detail",)), progress=False)
    with pytest.raises(ValueError, match="size"):
        prepare_dataset(src, out, config(extractors=("detail",), size=128), progress=False)
    with pytest.raises(ValueError, match="other parameters"):
        prepare_dataset(src, out, config(extractors=("detail",), extractor_params=("detail.min_line_length=5",)),
                        progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        prepare_dataset(src, foreign, config(), progress=False)
    with pytest.raises(ValueError, match="unknown sketch extractor"):
        prepare_dataset(src, tmp_path / "o2", config(extractors=("pencil",)), progress=False)
    with pytest.raises(ValueError, match="not in --extractor"):
        prepare_dataset(src, tmp_path / "o3", config(extractors=("detail",), extractor_params=("xdog.k=3",)),
                        progress=False)
    with pytest.raises(ValueError):
        PrepareConfig(size=100)


def test_missing_hed_weights_fail_before_any_work(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", 3)
    out = tmp_path / "out"
    cfg = config(extractors=("detail", "hed"), extractor_params=("hed.weights=/nonexistent/hed.safetensors",))
    with pytest.raises(ValueError, match="sketch2anime weights hed"):
        prepare_dataset(src, out, cfg, progress=False)
    assert not list(out.rglob("*.png"))


def test_paired_folders_layout(tmp_path: Path) -> None:
    src = tmp_path / "pairs"
    (src / "color").mkdir(parents=True)
    (src / "sketch").mkdir()
    for i in range(3):
        scene(128, i).save(src / "color" / f"p{i}.png")
        sketch = Image.new("L", (128, 128), 255)
        ImageDraw.Draw(sketch).line([(10 + 20 * i, 0), (10 + 20 * i, 127)], fill=0, width=4)
        sketch.save(src / "sketch" / f"p{i}.jpg")  # same stem, other format
    scene(128, 9).save(src / "color" / "lonely.png")
    Image.new("L", (128, 128), 255).save(src / "sketch" / "orphan.png")
    out = tmp_path / "out"
    report = prepare_dataset(src, out, config(layout="paired-folders", extractors=("detail",)), progress=False)
    assert report.prepared == 3
    assert sorted((s["source"], s["reason"]) for s in report.skipped) == [
        ("color/lonely.png", "unpaired"), ("sketch/orphan.png", "unpaired")]
    info = read_dataset_info(out)
    assert list(info.extractors) == ["real", "detail"]
    for record in read_manifest(out):
        assert record.extractors == ("real", "detail")
        assert record.sketch_source == f"sketch/{Path(record.source).stem}.jpg"
        real = np.asarray(Image.open(out / record.sketch_path("real")))
        column = 5 + 10 * int(Path(record.source).stem[1])  # the line drawn at x = 10 + 20 i, halved
        assert real.shape == (64, 64) and real[:, column].mean() < 100 and real[:, 60].mean() > 200


def test_side_by_side_layout(tmp_path: Path) -> None:
    src = tmp_path / "sbs"
    src.mkdir()
    for i in range(2):
        pair = Image.new("RGB", (256, 128), (255, 255, 255))
        pair.paste(scene(128, i), (0, 0))
        ImageDraw.Draw(pair).rectangle([160, 40, 200, 80], outline=(0, 0, 0), width=3)
        pair.save(src / f"pair{i}.png")
    scene(64, 5).save(src / "square.png")
    out = tmp_path / "out"
    report = prepare_dataset(src, out, config(layout="side-by-side", extractors=()), progress=False)
    assert report.prepared == 2
    assert [(s["source"], s["reason"]) for s in report.skipped] == [("square.png", "not_side_by_side")]
    for record in read_manifest(out):
        i = int(record.source[4])
        expected = np.asarray(scene(128, i).resize((64, 64), Image.Resampling.LANCZOS), dtype=float)
        color = np.asarray(Image.open(out / record.color), dtype=float)
        assert np.abs(color - expected).mean() < 3
        real = np.asarray(Image.open(out / record.sketch_path("real")))
        assert real[20:40, 16].mean() < 128 and real[5, 5] == 255  # the box's left side at x = 32 / 2


# ---------------------------------------------------------------------------------------------
# faces

def red_marker_detector(image: Image.Image) -> list[FaceBox]:
    """A fake detector: the 'face' is the pure red rectangle, if any."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    ys, xs = np.nonzero((rgb[..., 0] == 255) & (rgb[..., 1] == 0) & (rgb[..., 2] == 0))
    if len(xs) == 0:
        return []
    return [FaceBox(xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, 0.9)]


def test_square_box_geometry() -> None:
    # Centred, enlarged 1.5x and squared by the longer side.
    assert square_box(FaceBox(100, 100, 40, 20), (400, 300)) == (90, 80, 150, 140)
    # Near the border: shifted inside, not shrunk.
    assert square_box(FaceBox(0, 0, 40, 40), (400, 300)) == (0, 0, 60, 60)
    assert square_box(FaceBox(380, 280, 20, 20), (400, 300)) == (370, 270, 400, 300)
    # Bigger than the image: shrunk to the shorter side.
    assert square_box(FaceBox(0, 10, 100, 90), (120, 100)) == (0, 0, 100, 100)
    with pytest.raises(ValueError):
        square_box(FaceBox(0, 0, 1, 1), (0, 10))
    box, reason = find_face_box(Image.new("RGB", (50, 50)), lambda im: [], 1.5)
    assert box is None and reason == "no_face"
    best = [FaceBox(0, 0, 10, 10, 0.5), FaceBox(20, 20, 20, 20, 0.9)]
    assert find_face_box(Image.new("RGB", (100, 100)), lambda im: best, 1.0, min_side=1)[0] == (20, 20, 40, 40)
    assert find_face_box(Image.new("RGB", (100, 100)), lambda im: best, 1.0, min_side=32)[1] == "face_too_small"


def test_faces_crop_with_injected_detector(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with_face = Image.new("RGB", (300, 200), (0, 128, 0))
    ImageDraw.Draw(with_face).rectangle([200, 50, 259, 109], fill=(255, 0, 0))  # 60x60 "face"
    with_face.save(src / "face.png")
    Image.new("RGB", (300, 200), (0, 0, 200)).save(src / "noface.png")
    out = tmp_path / "out"
    report = prepare_dataset(src, out, config(faces=True), progress=False, face_detector=red_marker_detector)
    assert [(s["source"], s["reason"]) for s in report.skipped] == [("noface.png", "no_face")]
    (record,) = read_manifest(out)
    assert record.face_box == (185, 35, 275, 125)  # 90x90 around the 60x60 face
    color = np.asarray(Image.open(out / record.color)).astype(int)
    # Red face in the middle third, green border of 15/90 of the side around it.
    assert color[32, 32].tolist() == [255, 0, 0] and color[3, 3, 1] > 100 and color[3, 3, 0] < 50
    assert read_dataset_info(out).faces


def test_faces_without_animeface_explain_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_source(tmp_path / "src", 1)
    monkeypatch.setitem(sys.modules, "animeface", None)  # makes `import animeface` fail
    with pytest.raises(ValueError, match=r'pip install "sketch2anime\[faces\]"'):
        prepare_dataset(src, tmp_path / "out", config(faces=True), progress=False)
    assert not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "animeface", types.ModuleType("animeface"))
    monkeypatch.setattr(faces_mod, "_pillow_major", lambda: 12)
    with pytest.raises(ValueError, match="Pillow"):
        faces_mod.check_animeface_available()
    monkeypatch.setattr(faces_mod, "_pillow_major", lambda: 11)
    faces_mod.check_animeface_available()  # no complaint with a compatible Pillow


def test_cli_prepare_and_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = make_source(tmp_path / "src", 4)
    out = tmp_path / "out"
    code = cli_main(["prepare", str(src), str(out), "--extractor", "detail", "--workers", "1", "--no-progress",
                     "--set", "detail.min_line_length=12", "--val-fraction", "0.5", "--seed", "3"])
    assert code == 0 and "prepared 4 images" in capsys.readouterr().out
    info = read_dataset_info(out)
    assert info.extractors["detail"]["min_line_length"] == 12 and info.seed == 3 and info.val_fraction == 0.5
    assert cli_main(["prepare", str(src), str(tmp_path / "bad"), "--set", "detail.no_such=1", "--no-progress"]) == 2
    assert "no_such" in capsys.readouterr().err
    assert cli_main(["contact-sheet", str(out), "-o", str(tmp_path / "sheet.png"), "--rows", "2"]) == 0
    assert Image.open(tmp_path / "sheet.png").size[0] > 0
    assert os.path.getsize(tmp_path / "sheet.png") > 0
