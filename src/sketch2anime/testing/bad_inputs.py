"""The named bad (and awkward but valid) inputs of the reliability campaign, the decoder regressions
and the fuzzer's seed files; used by ``tests/test_reliability_inputs.py`` and ``scripts/reliability.py``."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..data.image_io import ImageInputError
from .images import bomb_png, draw_face, exif_rotated_jpeg, jpeg_bytes, png_bytes

# Inputs of the three kinds that crashed the decoder before the fix (found by the atheris run of
# scripts/reliability.py, then rebuilt by hand): PIL raised struct.error / IndexError / TypeError
# instead of an ImageInputError.

def gif_cut_extension() -> bytes:
    """GIF87a, one 32x32 frame of zero data, then a graphic control extension cut short (struct.error)."""
    data = bytearray(541)
    for offset, chunk in ((0, b"GIF87a"), (13, b","), (18, b" "), (20, b" "), (24, b"\xff"), (280, b"\xff"),
                          (537, b"!\xf9\x01")):
        data[offset:offset + len(chunk)] = chunk
    return bytes(data)


def gif_cut_second_frame() -> bytes:
    """A valid 1-frame GIF whose trailer is replaced by a second frame's bare descriptor (IndexError)."""
    buffer = io.BytesIO()
    Image.new("P", (8, 8), 1).save(buffer, "GIF")
    return buffer.getvalue()[:-1] + b"," + struct.pack("<HHHHB", 0, 0, 8, 8, 0)


def tiff_float_strip_offset() -> bytes:
    """A 1x1 TIFF whose StripOffsets tag is a FLOAT (TypeError in PIL's seek)."""
    entries = [(256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 11, 106.0), (278, 3, 1),
               (279, 4, 1)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packing = {3: "<HHIHH", 4: "<HHII", 11: "<HHIf"}[kind]
        ifd += struct.pack(packing, tag, kind, 1, value, 0) if kind == 3 else struct.pack(packing, tag, kind, 1, value)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x80"


REGRESSIONS = {"gif_cut_extension": gif_cut_extension(), "gif_cut_second_frame": gif_cut_second_frame(),
               "tiff_float_strip_offset": tiff_float_strip_offset()}


@dataclass(frozen=True)
class InputCase:
    """One named input: ``expect`` is "ok" or the ``ImageInputError.reason`` it must raise."""

    name: str
    what: str
    data: bytes | np.ndarray
    expect: str
    suffix: str = ".png"


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), (200, 30, 30)), Image.new("RGB", (40, 40), (30, 30, 200))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    image.paste(1, (8, 0, 16, 16))
    return _encode(image, "PNG", transparency=0)  # left half transparent, right half red


def _true_bomb() -> bytes:
    # A real decompression bomb: a few KB of PNG that would decode to 8000x8000 pixels.
    return _encode(Image.new("1", (8000, 8000), 1), "PNG", optimize=True)


def named_inputs() -> list[InputCase]:
    """The named bad (and awkward but valid) inputs of the reliability campaign."""
    face = draw_face(96, 1)
    good = png_bytes(face)
    sixteen = Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257)
    nan = np.full((32, 32), 0.5, np.float32)
    nan[3, 3] = np.nan
    inf = np.zeros((32, 32, 3), np.float64)
    inf[0, 0, 0] = np.inf
    return [
        InputCase("zero_byte", "0-byte file", b"", "empty"),
        InputCase("truncated_png", "first half of a PNG", good[: len(good) // 2], "corrupt"),
        InputCase("truncated_jpeg", "first 700 bytes of a JPEG", jpeg_bytes(draw_face(96, 2))[:700], "corrupt", ".jpg"),
        InputCase("random_bytes", "3000 random bytes", np.random.default_rng(0).bytes(3000), "not_an_image"),
        InputCase("text_as_png", "a text file named .png", b"hello, this is not a picture\n" * 20, "not_an_image"),
        InputCase("png_named_jpg", "a PNG with a .jpg extension", good, "ok", ".jpg"),
        InputCase("bomb_header", "PNG header claiming 100000x100000", bomb_png(100_000, 100_000), "too_large"),
        InputCase("over_pixel_limit", "PNG header claiming 7000x7000 (49 MP > 40 MP)", bomb_png(7000, 7000), "too_large"),
        InputCase("zlib_bomb", "real 8000x8000 1-bit PNG bomb", _true_bomb(), "too_large"),
        InputCase("one_by_one", "1x1 PNG", png_bytes(Image.new("RGB", (1, 1), (10, 200, 30))), "ok"),
        InputCase("sliver_10000x10", "10000x10 PNG (aspect 1000:1)", png_bytes(Image.new("L", (10000, 10), 128)),
                  "bad_shape"),
        InputCase("sixteen_bit", "16-bit grayscale PNG", png_bytes(sixteen), "ok"),
        InputCase("cmyk_jpeg", "CMYK JPEG", jpeg_bytes(face.convert("CMYK")), "ok", ".jpg"),
        InputCase("palette_gif", "palette GIF", _encode(face.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
                  "ok", ".gif"),
        InputCase("palette_transparent", "palette PNG with a transparent index", _palette_with_transparency(), "ok"),
        InputCase("animated_gif", "2-frame animated GIF", _animated_gif(), "ok", ".gif"),
        InputCase("exif_rotated", "JPEG with EXIF orientation 6", exif_rotated_jpeg(), "ok", ".jpg"),
        InputCase("rgba_png", "RGBA PNG, transparent background", png_bytes(Image.new("RGBA", (32, 32), (0, 0, 0, 0))),
                  "ok"),
        InputCase("all_white", "empty sketch (all white)", png_bytes(Image.new("L", (64, 64), 255)), "ok"),
        InputCase("all_black", "all-black sketch", png_bytes(Image.new("L", (64, 64), 0)), "ok"),
        InputCase("gif_cut_extension", "GIF, extension cut short (was struct.error)", REGRESSIONS["gif_cut_extension"],
                  "corrupt", ".gif"),
        InputCase("gif_cut_second_frame", "GIF, 2nd frame cut (was IndexError)", REGRESSIONS["gif_cut_second_frame"],
                  "corrupt", ".gif"),
        InputCase("tiff_float_offset", "TIFF, FLOAT strip offset (was TypeError)", REGRESSIONS["tiff_float_strip_offset"],
                  "corrupt", ".tif"),
        InputCase("array_nan", "float32 array with a NaN", nan, "not_finite"),
        InputCase("array_inf", "float64 RGB array with +inf", inf, "not_finite"),
        InputCase("array_out_of_range", "float array in [0, 1000]", np.linspace(0, 1000, 64 * 64).reshape(64, 64),
                  "bad_range"),
        InputCase("array_negative_int", "int16 array with -5", np.full((8, 8), -5, np.int16), "bad_range"),
        InputCase("array_empty", "0x0 array", np.zeros((0, 0), np.uint8), "empty"),
        InputCase("array_4d", "(1, 1, 8, 8) array", np.zeros((1, 1, 8, 8), np.uint8), "bad_shape"),
        InputCase("array_complex", "complex64 array", np.zeros((8, 8), np.complex64), "bad_type"),
        InputCase("array_object", "object array", np.full((8, 8), None, object), "bad_type"),
        InputCase("array_bool", "bool array", np.eye(16, dtype=bool), "ok"),
        InputCase("array_minus1_1", "float32 array in [-1, 1]", np.linspace(-1, 1, 256, dtype=np.float32).reshape(16, 16),
                  "ok"),
        InputCase("array_chw", "(3, 16, 16) CHW uint8 array", np.zeros((3, 16, 16), np.uint8), "ok"),
    ]


def outcome(call, *args, **kwargs) -> str:
    """"ok" or the typed error's reason; anything untyped propagates and fails the caller."""
    try:
        call(*args, **kwargs)
    except ImageInputError as exc:
        return exc.reason
    return "ok"


CASES = named_inputs()



def _seed_files() -> list[bytes]:
    face = draw_face(24, 3)
    gray = face.convert("L")
    files = [_encode(face, fmt) for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")]
    files += [_encode(face.convert("CMYK"), "JPEG"), _encode(face.convert("RGBA"), "PNG"), _encode(face.convert("P"), "GIF"),
              _encode(Image.fromarray(np.asarray(gray).astype(np.uint16) * 257), "PNG"),
              _encode(Image.fromarray(np.asarray(gray, np.float32) / 255), "TIFF"), _animated_gif(), exif_rotated_jpeg()]
    return files


SEED_FILES = _seed_files()
