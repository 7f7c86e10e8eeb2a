"""Run a guided pipeline's generator at a multiple of the size it was trained at.

The default model works at 128 px, the size of the face crops it learned from. A full-length
character drawn on a large page reaches it with a head of 25-30 px and pencil lines thinner than a
pixel, and comes back as blotches with its lines lost. The guided U-Net is fully convolutional, so
the same weights can paint the page at 2x (256 px), where the head is as large as the faces the model
knows and the lines survive: on the 20 real line-art pairs, scored at 256 px against their true
pictures, SSIM 0.68 (the 128 px result enlarged) -> 0.71 (``scripts/work_scale_pairs.py``).

What stays at the trained size: the sketch autoencoder and the per-part guide read the sketch pooled
to their own sizes (``models/guide.autoencoder_input``: a min-pool, so thin lines stay dark), and the
guide is decoded at the work size as before. What grows: the picture, the hint grid (its cells keep
their pixel size) and the compute, ``factor``² times.

A face that fills the page is best at factor 1: at 2x its eyes are twice the size the model drew in
training. This is a choice for large line art, not a better default.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING

from .guide_cache import GuideCache
from .part_cache import PartCache

if TYPE_CHECKING:
    from .inference import Sketch2AnimePipeline

MAX_WORK_SIZE = 512  # the largest side the guided U-Net is built for (GuidedUNetConfig)


def check_work_scale(factor: object) -> int:
    """1, 2 or 4 (an int); anything else is a ValueError."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor not in (1, 2, 4):
        raise ValueError(f"work scale must be 1, 2 or 4 (the generator runs at that multiple of its size), "
                         f"got {factor!r}")
    return factor


def at_work_scale(pipe: "Sketch2AnimePipeline", factor: int) -> "Sketch2AnimePipeline":
    """A pipeline that runs ``pipe``'s generator at ``factor`` x its size, sharing every weight with
    ``pipe`` (no copy). ``image_size`` and ``hint_size`` of the result are the work sizes, so every
    call (``__call__``, ``generate_tensors``, ``variations``, upscaling, kept lines) works unchanged;
    ``save_pretrained`` writes the model as trained. ``factor`` 1 returns the model itself; a view is
    built once per factor and kept on the model; ``to()`` on the model or a view moves both."""
    factor = check_work_scale(factor)
    base = getattr(pipe, "work_base", None) or pipe
    if factor == 1:
        return base
    views = base.__dict__.setdefault("work_views", {})
    if factor in views:  # building the network costs ~20 ms, a third of a 128 px update
        return views[factor]
    if base.pipeline_type != "guided":
        raise ValueError(f"only guided pipelines run at another size (their generator is fully convolutional); "
                         f"this one is {base.pipeline_type!r}")
    size = base.image_size * factor
    if size > MAX_WORK_SIZE:
        raise ValueError(f"work scale {factor} would run this {base.image_size} px model at {size} px; "
                         f"the generator is built for at most {MAX_WORK_SIZE} px")
    generator_type = type(base.generator)
    generator = generator_type(dataclasses.replace(base.generator.config, image_size=size))
    # assign=True makes the new module's parameters the very tensors of the base generator: no copy.
    generator.load_state_dict(base.generator.state_dict(), assign=True)
    view = copy.copy(base)
    view.generator = generator.eval()
    view.image_size, view.hint_size = size, base.hint_size * factor
    view.part_cache = PartCache()  # its crops are keyed by the sketch tensor's size
    view.guide_cache = GuideCache()
    view.work_base, view.work_scale = base, factor
    view.work_views = {}
    views[factor] = view
    return view
