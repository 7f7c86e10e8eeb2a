"""Large results from a ``Sketch2AnimePipeline``: ``pipe(sketch, upscale=4, lines=1.0)``.

The colour model runs at its own resolution; the picture (padding cropped, as ``output_size="model"``)
is then enlarged by the shipped anime upscalers; with ``flatten`` > 0 each closed region of the user's
sketch gets one colour (``sketch2anime.flatten``), and with ``lines`` > 0 the user's own sketch is
multiplied over it at full resolution, so lines stay as crisp as they were drawn.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from ..data.image_io import ImageInput
from ..flatten import check_flatten, flatten_picture
from .upscaler import check_factor, check_lines, enlarge, multiply_lines


def upscaled_call(pipe: Any, sketch: ImageInput, hint: ImageInput | None, projection: float, seed: int | None,
                  return_projected: bool, upscale: int, lines: float, flatten: float = 0.0,
                  denoise: bool = True) -> Any:
    """What ``pipe.__call__`` returns for ``upscale`` > 1 or ``lines`` > 0 (one sketch), flattened first
    when ``flatten`` > 0 (flat colours alone stay on ``__call__``'s own path, which honours ``output_size``).

    The picture is ``upscale`` x the model's resolution (framed like the sketch); the projected
    sketch, if asked for, is resized to the same size.
    """
    factor, lines, flatten = check_factor(upscale), check_lines(lines), check_flatten(flatten)
    if isinstance(sketch, (list, tuple)):  # one at a time: large pictures, and the upscaler is the cost
        hints = hint if isinstance(hint, (list, tuple)) else [hint] * len(sketch)
        if len(hints) != len(sketch):
            raise ValueError(f"got {len(sketch)} sketches but {len(hints)} hints")
        return [upscaled_call(pipe, s, h, projection, seed, return_projected, factor, lines, flatten, denoise)
                for s, h in zip(sketch, hints)]
    sketch_tensor, hint_tensor, size = pipe.prepare(sketch, hint)
    result = pipe.generate_tensors(sketch_tensor, hint_tensor, projection, seed, denoise)
    picture, projected = pipe._to_pictures(result, size, "model" if factor > 1 else "input")
    picture = enlarge(picture, factor, device=str(pipe.device))
    if flatten:  # after enlarging: the regions at the sketch's own detail, before the lines go over them
        picture = flatten_picture(picture, sketch, flatten)
    if lines:
        picture = multiply_lines(picture, sketch, lines)
    if projected is not None and projected.size != picture.size:
        projected = projected.resize(picture.size, Image.Resampling.BICUBIC)
    return (picture, projected) if return_projected else picture
