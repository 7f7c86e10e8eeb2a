"""Every image that enters sketch2anime comes through here: decode safely, normalise the mode.

Accepted: paths, bytes, PIL images and numpy arrays. Decoding problems raise ``ImageInputError``
(a ``ValueError``) with a reason a user understands; nothing here crashes on a bad file.
Conversions: EXIF orientation applied; alpha composited on white; CMYK/palette/16-bit/float
converted to 8-bit RGB; animated files use their first frame.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # about 6300x6300; bigger inputs are almost surely bombs, not drawings
MAX_ASPECT = 50.0
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
# The only decoders PIL may use: a drawing never needs EPS (runs Ghostscript), PSD, ICO, FITS...
# PPM covers .ppm/.pgm/.pbm (plain, trivial decoders).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM")

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]


class ImageInputError(ValueError):
    """The input is not a usable image; ``reason`` is a short machine-friendly tag."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


def _open(source: str | Path | bytes) -> Image.Image:
    label = "the uploaded data" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        if len(source) == 0:
            raise ImageInputError("the image data is empty (0 bytes)", "empty")
        handle: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            if path.is_symlink():
                raise ImageInputError(f"{path} is a broken symbolic link (its target is missing, or links "
                                      "point at each other in a loop)", "broken_link")
            raise ImageInputError(f"no such image file: {path}", "missing")
        if path.stat().st_size == 0:
            raise ImageInputError(f"{path} is empty (0 bytes)", "empty")
        handle = path
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(handle, formats=IMAGE_FORMATS)  # type: ignore[arg-type]
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageInputError(f"{label} is {width}x{height}, over the {MAX_PIXELS} pixel limit", "too_large")
            image.load()
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(f"{label} is too large to decode safely (over {MAX_PIXELS} pixels)", "too_large") from None
    except PermissionError:  # an OSError, but nothing is wrong with the file itself
        raise ImageInputError(f"{label} cannot be read: permission denied", "permission_denied") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{label} is not an image in a format sketch2anime can read "
                              f"({', '.join(IMAGE_FORMATS)})", "not_an_image") from None
    except Exception as exc:  # PIL's plugins raise TypeError, IndexError, struct.error... on crafted files
        raise ImageInputError(f"{label} is corrupt or truncated ({exc})", "corrupt") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return image


def _array_to_image(array: np.ndarray) -> Image.Image:
    if not isinstance(array, np.ndarray):
        raise ImageInputError(f"expected a numpy array, got {type(array).__name__}", "bad_type")
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageInputError(f"array of shape {array.shape} is not an image (expected HxW, HxWx3 or HxWx4)", "bad_shape")
    if array.size == 0:
        raise ImageInputError("array image has no pixels", "empty")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageInputError("array image contains NaN or infinite values", "not_finite")
        low, high = float(array.min()), float(array.max())
        if low >= -1.0 - 1e-6 and low < 0.0 and high <= 1.0 + 1e-6:
            array = (array + 1.0) / 2.0  # [-1, 1] convention
        elif low < 0.0 or high > 1.0 + 1e-6:
            if high <= 255.0 and low >= 0.0:
                array = array / 255.0
            else:
                raise ImageInputError(f"float array values span [{low}, {high}]; expected [0, 1], [-1, 1] or [0, 255]", "bad_range")
        array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
    elif array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ImageInputError("integer array values must lie in [0, 255]", "bad_range")
        array = array.astype(np.uint8)
    else:
        raise ImageInputError(f"unsupported array dtype {array.dtype}", "bad_type")
    mode = {2: "L"}.get(array.ndim) or ("RGB" if array.shape[-1] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)


def _check_geometry(image: Image.Image) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageInputError("image has no pixels", "empty")
    if width * height > MAX_PIXELS:
        raise ImageInputError(f"image is {width}x{height}, over the {MAX_PIXELS} pixel limit", "too_large")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageInputError(f"image is {width}x{height}; aspect ratios beyond {MAX_ASPECT:.0f}:1 are not drawings", "bad_shape")


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise ImageInputError("image contains NaN or infinite values", "not_finite")
        top = 1.0 if array.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    return image


def _decode(source: ImageInput) -> Image.Image:
    """8-bit, oriented, first frame: RGBA when the input has transparency, else an opaque mode."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _array_to_image(source)
    elif isinstance(source, (str, Path, bytes)):
        image = _open(source)
    elif isinstance(source, torch.Tensor):
        raise ImageInputError("pass images as PIL, numpy arrays, bytes or paths, not torch tensors", "bad_type")
    else:
        raise ImageInputError(f"cannot read an image from a {type(source).__name__}", "bad_type")
    try:
        if getattr(image, "is_animated", False):  # lazy: PIL parses the next frame here
            image.seek(0)
        _check_geometry(image)
        try:
            image = ImageOps.exif_transpose(image) or image
        except Exception:  # a broken EXIF block must not cost the picture
            pass
        image = _to_8bit(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("LA", "La", "PA", "RGBa"):
            image = image.convert("RGBA")
    except ImageInputError:
        raise
    except Exception as exc:  # crafted files can still break PIL's frame and mode handling
        raise ImageInputError(f"the image is corrupt or in an unsupported layout ({exc})", "corrupt") from None
    return image


def _convert(image: Image.Image, *modes: str) -> Image.Image:
    try:
        for mode in modes:
            image = image.convert(mode)
    except Exception as exc:  # same as in _decode: a crafted file is an input error
        raise ImageInputError(f"the image is corrupt or in an unsupported layout ({exc})", "corrupt") from None
    return image


def load_rgba(source: ImageInput) -> Image.Image:
    """Decode any accepted input to an 8-bit RGBA PIL image (orientation applied, first frame)."""
    image = _decode(source)
    return image if image.mode == "RGBA" else _convert(image, "RGB", "RGBA")


def _opaque_rgb(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":  # opaque inputs skip the composite (3 RGBA copies of a 40 MP upload)
        return _convert(image, "RGB")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert("RGB")


def load_rgb(source: ImageInput) -> Image.Image:
    """Decode to 8-bit RGB; transparent pixels are composited on white."""
    return _opaque_rgb(_decode(source))


def load_sketch(source: ImageInput) -> Image.Image:
    """Decode a sketch to 8-bit grayscale (white paper, dark lines); transparency becomes paper."""
    image = _decode(source)
    if image.mode in ("1", "L"):
        return _convert(image, "L")
    return _opaque_rgb(image).convert("L")


def resize_square(image: Image.Image, size: int, mode: str = "crop", fill: int | tuple[int, ...] = 255) -> Image.Image:
    """Make ``image`` size x size: ``crop`` centre-crops to a square, ``pad`` letterboxes on ``fill``."""
    if mode not in ("crop", "pad"):
        raise ValueError(f"resize mode must be 'crop' or 'pad', got {mode!r}")
    width, height = image.size
    if mode == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        return image.resize((size, size), Image.Resampling.LANCZOS if side > size else Image.Resampling.BICUBIC)
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    canvas = Image.new(image.mode, (size, size), fill)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def rgb_to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> float32 tensor (3, H, W) in [-1, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def sketch_to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """HxW uint8 sketch (255 paper, 0 ink) -> float32 tensor (1, H, W) in [-1, 1] (paper = +1)."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy())[None].float().div(127.5).sub(1.0)


def tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor in [-1, 1] -> HxWxC (or HxW for one channel) uint8 array."""
    if tensor.ndim != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(tensor.shape)}")
    array = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def check_color_and_sketch(color: np.ndarray, sketch: np.ndarray) -> tuple[int, int]:
    """(H, W) of a colour array (HxWx3 uint8) and its sketch (HxW uint8), or ValueError."""
    if not isinstance(color, np.ndarray) or color.dtype != np.uint8 or color.ndim != 3 or color.shape[2] != 3:
        got = f"{color.dtype} {color.shape}" if isinstance(color, np.ndarray) else type(color).__name__
        raise ValueError(f"colour must be an HxWx3 uint8 array, got {got}")
    if not isinstance(sketch, np.ndarray) or sketch.dtype != np.uint8 or sketch.shape != color.shape[:2]:
        got = f"{sketch.dtype} {sketch.shape}" if isinstance(sketch, np.ndarray) else type(sketch).__name__
        raise ValueError(f"sketch must be an HxW uint8 array the colour's size {color.shape[:2]}, got {got}")
    return int(color.shape[0]), int(color.shape[1])


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted, by suffix.

    Broken symbolic links with an image suffix (dangling or looping) are listed too, so that the
    caller reports them as unreadable instead of their vanishing from its counts.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"not a folder: {folder}")
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink() and not p.exists()))


def write_png(path: str | Path, array: np.ndarray) -> None:
    """``HxWx3`` RGB or ``HxW`` grey uint8 -> a PNG at ``path`` (OpenCV's encoder: fast), written
    atomically without fsync: prepared datasets and extracted frames can be remade
    (``checkpoint.atomic_write_bytes``)."""
    import cv2

    from ..checkpoint import atomic_write_bytes

    image = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode {Path(path).name}")
    atomic_write_bytes(path, encoded.tobytes(), durable=False)
