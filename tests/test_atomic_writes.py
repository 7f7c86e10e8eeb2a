"""checkpoint's file helpers, the one home of atomic writes and file hashes (issue 13)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2anime.checkpoint import atomic_write_bytes, atomic_write_text, remove_stale_temporaries, sha256_file
from sketch2anime.data.image_io import write_png


def test_atomic_writes_replace_whole_files_with_ordinary_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        for durable in (True, False):
            path = tmp_path / f"deep/{durable}/a.json"
            atomic_write_bytes(path, b"old", durable=durable)
            atomic_write_bytes(path, b"new", durable=durable)
            assert path.read_bytes() == b"new"
            assert path.stat().st_mode & 0o777 == 0o644  # as a plain write, not mkstemp's 0600
        atomic_write_text(tmp_path / "t.txt", "ü")
        assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "ü"
    finally:
        os.umask(previous)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"complete")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"complete" and sorted(tmp_path.iterdir()) == [path]
    # A killed writer's temporary has the name remove_stale_temporaries deletes.
    stale = tmp_path / ".state.json.0123456789ab.tmp"
    stale.write_bytes(b"half")
    assert remove_stale_temporaries(tmp_path) == [stale]


def test_sha256_file_and_png_writer(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    write_png(tmp_path / "out/rgb.png", rgb)
    write_png(tmp_path / "out/grey.png", grey)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out/rgb.png")), rgb)
    with Image.open(tmp_path / "out/grey.png") as image:
        assert image.mode == "L" and np.array_equal(np.asarray(image), grey)
