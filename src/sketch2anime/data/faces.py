"""Optional anime-face cropping for ``sketch2anime prepare --faces``.

Detection uses the PyPI package ``animeface`` 2.0.3 (the optional extra ``sketch2anime[faces]``).
That package needs Pillow < 12: with Pillow 12 or newer it silently finds no faces at all, so we
refuse to run with it rather than skip every image. Any callable ``detector(PIL image) -> list of
FaceBox`` can be injected instead (tests use a fake one).

Crop geometry: the best face box (highest score, then largest) is enlarged ``scale`` times around
its centre and made square; a square that does not fit is first shifted inside the image, then
shrunk to the image's shorter side, so crops never need padding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

FACES_INSTALL_HINT = 'pip install "sketch2anime[faces]"'


@dataclass(frozen=True)
class FaceBox:
    """A detected face: top-left corner, size (pixels of the analysed image) and a score."""

    x: float
    y: float
    width: float
    height: float
    score: float = 1.0


FaceDetector = Callable[[Image.Image], list[FaceBox]]


def _pillow_major() -> int:
    import PIL

    try:
        return int(PIL.__version__.split(".")[0])
    except ValueError:
        return 0


def check_animeface_available() -> None:
    """Raise ValueError with what to do when ``animeface`` cannot be used."""
    try:
        import animeface  # noqa: F401
    except ImportError:
        raise ValueError("face cropping needs the optional package animeface; install it with "
                         f"{FACES_INSTALL_HINT} (it pins Pillow < 12, so better in its own virtual "
                         "environment)") from None
    major = _pillow_major()
    if major >= 12:
        import PIL

        raise ValueError(f"animeface finds no faces at all with Pillow {PIL.__version__} (it needs Pillow < 12); "
                         f'install a compatible Pillow with {FACES_INSTALL_HINT} or pip install "pillow<12"')


def animeface_detector(image: Image.Image) -> list[FaceBox]:
    """Detect anime faces with ``animeface`` (call ``check_animeface_available`` first)."""
    import animeface

    faces = []
    for face in animeface.detect(image.convert("RGB")):
        pos = face.face.pos
        faces.append(FaceBox(float(pos.x), float(pos.y), float(pos.width), float(pos.height), float(face.likelihood)))
    return faces


def square_box(face: FaceBox, image_size: tuple[int, int], scale: float = 1.5) -> tuple[int, int, int, int]:
    """Square crop box ``(x0, y0, x1, y1)`` around ``face`` enlarged ``scale`` times, inside the image.

    ``image_size`` is (width, height). The side is ``scale * max(face width, face height)``, at
    most the image's shorter side; the square is centred on the face and shifted to fit.
    """
    width, height = image_size
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {image_size}")
    if scale <= 0:
        raise ValueError(f"face scale must be > 0, got {scale}")
    side = int(round(scale * max(face.width, face.height)))
    side = max(1, min(side, width, height))
    cx = face.x + face.width / 2.0
    cy = face.y + face.height / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return x0, y0, x0 + side, y0 + side


def best_face(faces: list[FaceBox]) -> FaceBox | None:
    """The most confident face, ties broken by size; None when the list is empty."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.score, f.width * f.height))


def find_face_box(image: Image.Image, detector: FaceDetector, scale: float = 1.5,
                  min_side: int = 1) -> tuple[tuple[int, int, int, int] | None, str]:
    """Crop box of the best face in ``image``, or (None, reason) with reason "no_face" or
    "face_too_small" (crop side under ``min_side`` pixels)."""
    face = best_face(list(detector(image)))
    if face is None or face.width <= 0 or face.height <= 0:
        return None, "no_face"
    box = square_box(face, image.size, scale)
    if box[2] - box[0] < min_side:
        return None, "face_too_small"
    return box, ""


def scale_box(box: tuple[int, int, int, int], from_size: tuple[int, int],
              to_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Map a box from one image size to another (a paired sketch of a different resolution)."""
    sx = to_size[0] / from_size[0]
    sy = to_size[1] / from_size[1]
    x0, y0, x1, y1 = box
    return (int(round(x0 * sx)), int(round(y0 * sy)), int(round(x1 * sx)), int(round(y1 * sy)))
