"""Small pictures and encoded files for tests and ``scripts/reliability.py``, drawn with PIL."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def draw_face(size: int = 64, seed: int = 0) -> Image.Image:
    """A crude anime-ish face: coloured background, skin disc, hair cap, two eyes, mouth."""
    rng = np.random.default_rng(seed)
    bg = tuple(int(v) for v in rng.integers(60, 230, 3))
    hair = tuple(int(v) for v in rng.integers(0, 255, 3))
    image = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(image)
    s = size / 64
    d.ellipse([12 * s, 14 * s, 52 * s, 58 * s], fill=(250, 220, 200), outline=(40, 20, 20), width=max(1, int(s)))
    d.chord([10 * s, 6 * s, 54 * s, 40 * s], 180, 360, fill=hair, outline=(20, 10, 10))
    eye = tuple(int(v) for v in rng.integers(0, 255, 3))
    for cx in (24, 40):
        d.ellipse([(cx - 4) * s, 32 * s, (cx + 4) * s, 42 * s], fill=eye, outline=(0, 0, 0), width=max(1, int(s)))
    d.line([28 * s, 50 * s, 36 * s, 50 * s], fill=(120, 40, 40), width=max(1, int(s)))
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """Stored 120x80 with red left / blue right; EXIF orientation 6 shows it rotated 90 degrees clockwise."""
    array = np.zeros((80, 120, 3), dtype=np.uint8)
    array[:, :60] = (220, 20, 20)
    array[:, 60:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(Image.fromarray(array), exif=exif.tobytes())


def sketch_png(size: int = 512, offset: int = 0) -> bytes:
    image = Image.new("L", (size, size), 255)
    d, k = ImageDraw.Draw(image), size / 512
    d.ellipse([(100 + offset) * k, 120 * k, (400 + offset) * k, 460 * k], outline=0, width=max(1, round(6 * k)))
    d.line([180 * k, 300 * k, 330 * k, 300 * k], fill=0, width=max(1, round(6 * k)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def hint_png(colour: tuple[int, int, int], box: tuple | None = None, size: int = 512, empty: bool = False) -> bytes:
    """A transparent layer with one opaque rectangle (default: the top-left quarter)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if not empty:
        ImageDraw.Draw(image).rectangle(box or (0, 0, size // 2 - 1, size // 2 - 1), fill=colour + (255,))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def draw_square(path: Path, shade: int = 0) -> bytes:
    """A 48x48 white sketch with a ``shade`` square, saved to ``path`` (format from its suffix); its bytes."""
    image = Image.new("L", (48, 48), 255)
    image.paste(shade, (10, 10, 38, 38))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path.read_bytes()
