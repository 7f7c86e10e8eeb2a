"""prepare never crashes on bad inputs: unreadable files are skipped with reasons, odd modes converted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SPRITES, draw_face
from sketch2anime.data import image_io
from sketch2anime.data.manifest import read_manifest
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset
from sketch2anime.testing.images import bomb_png, exif_rotated_jpeg, jpeg_bytes, png_bytes  # noqa: F401


def build_bad_folder(folder: Path) -> dict[str, str | None]:
    """Write every kind of awkward file; return name -> expected skip reason (None = must be prepared)."""
    folder.mkdir()
    face = draw_face(96, 1)
    good = png_bytes(face)
    files: dict[str, tuple[bytes, str | None]] = {
        "good.png": (good, None),
        "zero.png": (b"", "empty"),
        "truncated.png": (good[: len(good) // 2], "corrupt"),
        "truncated.jpg": (jpeg_bytes(draw_face(96, 2))[:700], "corrupt"),
        "noise.png": (np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(), "not_an_image"),
        "bomb.png": (bomb_png(100_000, 100_000), "too_large"),
        "cmyk.jpg": (jpeg_bytes(draw_face(96, 3).convert("CMYK")), None),
        "sixteen.png": (png_bytes(Image.fromarray(np.asarray(draw_face(96, 4).convert("L")).astype(np.uint16) * 257)),
                        None),
        "palette.gif": (b"", None),
        "animated.gif": (b"", None),
        "rgba.png": ((SPRITES / "lucy_happy.png").read_bytes(), None),
        "rotated.jpg": (exif_rotated_jpeg(), None),
        "sliver.png": (png_bytes(Image.new("RGB", (3000, 20), (90, 90, 90))), "bad_shape"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    draw_face(96, 5).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.gif")
    frames = [draw_face(96, 6), draw_face(96, 7)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {name: reason for name, (_, reason) in files.items()}


def test_bad_files_are_skipped_with_reasons_and_good_ones_kept(tmp_path: Path) -> None:
    expected = build_bad_folder(tmp_path / "src")
    out = tmp_path / "out"
    cfg = PrepareConfig(extractors=("detail", "xdog"), workers=2, batch_size=3, val_fraction=0.0)
    report = prepare_dataset(tmp_path / "src", out, cfg, progress=False)

    skipped = {item["source"]: item["reason"] for item in report.skipped}
    assert skipped == {name: reason for name, reason in expected.items() if reason is not None}
    assert all(item["message"] for item in report.skipped)
    records = {r.source: r for r in read_manifest(out)}
    assert set(records) == {name for name, reason in expected.items() if reason is None}
    for record in records.values():
        assert Image.open(out / record.color).size == (64, 64)
        assert all((out / s.path).is_file() for s in record.sketches)

    # RGBA: the transparent corner became white paper, not black.
    rgba = np.asarray(Image.open(out / records["rgba.png"].color))
    assert rgba[1, 1].tolist() == [255, 255, 255]
    # EXIF orientation applied: red on top, blue at the bottom after the 90 degree turn.
    rotated = np.asarray(Image.open(out / records["rotated.jpg"].color)).astype(int)
    assert rotated[4, 32, 0] > 150 and rotated[4, 32, 2] < 100
    assert rotated[60, 32, 2] > 150 and rotated[60, 32, 0] < 100
    # 16-bit input is scaled down, not clipped to white.
    sixteen = np.asarray(Image.open(out / records["sixteen.png"].color))
    assert 30 < sixteen.mean() < 240

    # A second run redoes nothing and reports the same bad files again.
    again = prepare_dataset(tmp_path / "src", out, cfg, progress=False)
    assert again.processed == 0 and {i["source"]: i["reason"] for i in again.skipped} == skipped


def test_pixel_limit_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    draw_face(40, 0).save(src / "small.png")
    draw_face(200, 1).save(src / "big.png")
    monkeypatch.setattr(image_io, "MAX_PIXELS", 100 * 100)
    report = prepare_dataset(src, tmp_path / "out", PrepareConfig(extractors=("detail",), workers=1), progress=False)
    assert [(s["source"], s["reason"]) for s in report.skipped] == [("big.png", "too_large")]
    assert [r.source for r in read_manifest(tmp_path / "out")] == ["small.png"]


def test_unexpected_extractor_failure_costs_one_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sketch2anime.data import prepare_worker as prepare_mod  # _process_chunk calls _process there

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        draw_face(64, i).save(src / f"f{i}.png")
    real_process = prepare_mod._process

    def flaky(task):
        if task.unit.source == "f1.png":
            raise RuntimeError("extractor blew up")
        return real_process(task)

    monkeypatch.setattr(prepare_mod, "_process", flaky)
    report = prepare_dataset(src, tmp_path / "out", PrepareConfig(extractors=("detail",), workers=1), progress=False)
    assert report.prepared == 2
    assert report.skipped == [{"source": "f1.png", "reason": "error", "message": "RuntimeError: extractor blew up"}]
