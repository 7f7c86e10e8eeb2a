"""What a pipeline call accepts and gives back: the argument checks, any-size images in (the sketch
and the RGBA hint layer brought into the model's square) and pictures out (cropped and resized back
to the input's frame), and lists of sketches in batches.

``Sketch2AnimePipeline`` (``inference.py``) runs the networks; this module is the image side of its
``__call__``, shared with ``variations`` and the upscaling path.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .data.image_io import ImageInput, load_sketch, sketch_to_tensor, tensor_to_uint8
from .flatten import flatten_picture
from .geometry import OUTPUT_SIZES, back_to_input, fit_square, pad_to_square, shrink_sketch

if TYPE_CHECKING:
    from .inference import Sketch2AnimePipeline

# The hint layer is brought into the sketch's square at most this big: rgba_to_hint holds 16 bytes
# per pixel of that square, and the hint grid is 16-32 px anyway.
HINT_WORK_SIDE = 1024


# ---- argument checks ------------------------------------------------------------------------

def check_projection(projection: float) -> float:
    # numbers.Real also admits numpy scalars (a slider value read from an array is np.float32)
    if isinstance(projection, (bool, np.bool_)) or not isinstance(projection, numbers.Real) \
            or not 0.0 <= projection <= 1.0:
        raise ValueError(f"projection must be a number between 0 and 1, got {projection!r}")
    return float(projection)


def check_seed(seed: int | None) -> int | None:
    # torch.manual_seed takes [-2**63, 2**64 - 1]; anything else (inf, 1.5, 2**70) is a user error.
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not -2**63 <= seed < 2**64:
        raise ValueError(f"seed must be None or an integer between -2**63 and 2**64 - 1, got {seed!r}")
    return int(seed)


def check_denoise(denoise: bool) -> bool:
    if not isinstance(denoise, bool):
        raise ValueError(f"denoise must be True (the model's picture clean-up, if it has one) or False, "
                         f"got {denoise!r}")
    return denoise


def check_max_side(max_side: int | None) -> int | None:
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    return max_side


def check_output_size(output_size: str) -> str:
    if output_size not in OUTPUT_SIZES:
        raise ValueError(f"output_size must be one of {', '.join(OUTPUT_SIZES)}, got {output_size!r}")
    return output_size


def check_tensors(sketch: torch.Tensor, hint: torch.Tensor | None, image_size: int, hint_size: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``sketch (N, 1, S, S)`` and ``hint (N, 4, h, h)`` or None (no hints), checked, as float32 on ``device``."""
    s, h = image_size, hint_size
    if not isinstance(sketch, torch.Tensor) or sketch.dim() != 4 or tuple(sketch.shape[1:]) != (1, s, s):
        shape = tuple(sketch.shape) if isinstance(sketch, torch.Tensor) else type(sketch).__name__
        raise ValueError(f"sketch must be a (N, 1, {s}, {s}) tensor, got {shape}")
    if hint is None:
        hint = torch.zeros(sketch.shape[0], 4, h, h)
    if not isinstance(hint, torch.Tensor) or hint.dim() != 4 or tuple(hint.shape[1:]) != (4, h, h) \
            or hint.shape[0] != sketch.shape[0]:
        shape = tuple(hint.shape) if isinstance(hint, torch.Tensor) else type(hint).__name__
        raise ValueError(f"hint must be a ({sketch.shape[0]}, 4, {h}, {h}) tensor, got {shape}")
    # NaN/inf would flow through the networks and come out as a garbage (or NaN) picture.
    for name, tensor in (("sketch", sketch), ("hint", hint)):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} tensor contains NaN or infinite values")
    return sketch.to(device, torch.float32), hint.to(device, torch.float32)


# ---- images in, pictures out ------------------------------------------------------------------

def prepare_inputs(sketch: ImageInput, hint: ImageInput | None, image_size: int, hint_size: int,
                   hint_downscale: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Any-size inputs -> ``(sketch (1, 1, S, S), hint (1, 4, h, h), (width, height) of the sketch)``:
    padded to a square on white and resized to the model's size ``S = image_size``."""
    from .hint_format import hint_layer, rgba_to_hint

    image = load_sketch(sketch)
    width, height = image.size
    square = fit_square(image, image_size, 255, shrink_sketch)
    sketch_tensor = sketch_to_tensor(square)[None]
    if hint is None:
        return sketch_tensor, torch.zeros(1, 4, hint_size, hint_size), (width, height)
    layer = hint_layer(hint)  # no transparent pixel at all: white = no hint
    frame, resample = (width, height), Image.Resampling.NEAREST
    side, work = max(width, height), max(HINT_WORK_SIDE, image_size)
    if side > work:  # the sketch's frame at the work size: never pad a huge canvas
        frame = (max(1, round(width * work / side)), max(1, round(height * work / side)))
        if layer.width * layer.height > frame[0] * frame[1]:
            resample = Image.Resampling.BOX  # averages (PIL premultiplies RGBA): thin strokes survive
    if layer.width < frame[0] and layer.width * frame[1] == layer.height * frame[0]:
        # A smaller layer of the same shape (the panel's 128 px hints on a 512 px canvas) is
        # used at its own size: stretching it first only makes rgba_to_hint average it back.
        frame = layer.size
    if layer.size != frame:
        layer = layer.resize(frame, resample)
    hint_tensor = rgba_to_hint(pad_to_square(layer, (0, 0, 0, 0)), image_size, hint_downscale)[None]
    return sketch_tensor, hint_tensor, (width, height)


def to_pictures(result: dict[str, torch.Tensor | None], size: tuple[int, int], output_size: str = "input",
                max_side: int | None = None, index: int = 0) -> tuple[Image.Image, Image.Image | None]:
    """Row ``index`` of ``generate_tensors``' result -> (PIL RGB picture, PIL L projected sketch or
    None), back in the input's frame ``size`` (width, height) or at the model's size."""
    picture = back_to_input(Image.fromarray(tensor_to_uint8(result["image"][index]), "RGB"), *size, output_size,
                            max_side)
    projected = result["projected_sketch"]
    if projected is None:
        return picture, None
    return picture, back_to_input(Image.fromarray(tensor_to_uint8(projected[index]), "L"), *size, output_size,
                                  max_side)


def call_many(pipe: "Sketch2AnimePipeline", sketches: list[ImageInput], hints: Any, projection: float,
              seed: int | None, return_projected: bool, output_size: str, max_side: int | None,
              flatten: float = 0.0, denoise: bool = True) -> list[Any]:
    """``pipe(list of sketches, ...)``: one result per sketch, ``pipe.BATCH_SIZE`` per forward pass;
    ``hints`` None, one layer for all, or a list with one layer (or None) per sketch."""
    if not sketches:
        raise ValueError("got an empty list of sketches")
    if isinstance(hints, (list, tuple)):
        if len(hints) != len(sketches):
            raise ValueError(f"got {len(sketches)} sketches but {len(hints)} hints: pass one hint (or None) "
                             "per sketch, one hint for all, or None")
        hint_list = list(hints)
    else:
        hint_list = [hints] * len(sketches)
    results: list[Any] = []
    for start in range(0, len(sketches), pipe.BATCH_SIZE):
        prepared = []
        for index in range(start, min(start + pipe.BATCH_SIZE, len(sketches))):
            try:
                prepared.append(pipe.prepare(sketches[index], hint_list[index]))
            except ValueError as exc:  # say which one (type and reason kept): a list of 50 paths is a puzzle
                exc.args = (f"sketch {index} of the list: {exc}", *exc.args[1:])
                raise
        result = pipe.generate_tensors(torch.cat([p[0] for p in prepared]), torch.cat([p[1] for p in prepared]),
                                       projection, seed, denoise)
        for row, (_, _, size) in enumerate(prepared):
            picture, projected = to_pictures(result, size, output_size, max_side, index=row)
            if flatten:
                picture = flatten_picture(picture, sketches[start + row], flatten)
            results.append((picture, projected) if return_projected else picture)
    return results
