"""Figure augmentation: the training face as the head of a drawn, flat-coloured figure (half-body, or
whole with a smaller head).

The training data are face crops, but users (and the real line-art pairs) draw whole characters: a
head on a body in clothes, on white paper. Shown a body, the face-trained default painted blotches of
hair and skin colours over it, because nothing it had seen was a shirt. This augmentation shrinks the
face, cuts it to a head silhouette high on the page, and draws a body below it out of simple parts
(neck, torso, skirt or trousers, arms, a collar), each a closed region with an inked outline and a
flat cel colour plus one shadow tone, which is how anime clothes are coloured. Lines are multiplied
into the colour image as well, as in coloured line art. Hints simulated on the result then land on
the clothes too, so the model learns to fill an outlined region with the colour dabbed into it.

Arrays are uint8 HxWx3 (colour) and HxW (sketch, 255 paper, 0 ink) of the same side; outputs keep it.
"""

from __future__ import annotations

import cv2
import numpy as np

from .cutout import PAPER, random_pen
from .image_io import check_color_and_sketch

# Clothes: saturated to pastel colours of any hue, and a share of white and near-black pieces.
WHITE_SHARE, DARK_SHARE = 0.2, 0.1


def random_cloth_colour(rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 colour for a piece of clothing."""
    roll = rng.random()
    if roll < WHITE_SHARE:
        return np.full(3, int(rng.integers(235, 256)), np.uint8)
    if roll < WHITE_SHARE + DARK_SHARE:
        return np.full(3, int(rng.integers(30, 70)), np.uint8)
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.25, 0.9) * 255, rng.uniform(0.45, 1.0) * 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]


def _role_colours(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One colour per role: skin for the neck, sleeves mostly in the torso's colour, legs alike."""
    torso = random_cloth_colour(rng)
    skin = cv2.cvtColor(np.array([[[rng.uniform(5, 15), rng.uniform(0.08, 0.3) * 255,
                                    rng.uniform(0.9, 1.0) * 255]]]).astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return {"torso": torso, "neck": skin, "skirt": random_cloth_colour(rng), "leg": random_cloth_colour(rng),
            "collar": random_cloth_colour(rng),
            "arm": torso if rng.random() < 0.6 else (skin if rng.random() < 0.5 else random_cloth_colour(rng))}


def _poly(points: list[tuple[float, float]], height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    pts = np.array([[x * width, y * height] for x, y in points], np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_8)
    return mask > 0


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (int(cx * width), int(cy * height)), (max(1, int(rx * width)), max(1, int(ry * height))),
                angle, 0, 360, 255, thickness=-1)
    return mask > 0


def random_body_parts(height: int, width: int, neck_x: float, neck_y: float,
                      rng: np.random.Generator, build: float = 1.0) -> list[tuple[str, np.ndarray]]:
    """(role, HxW bool mask) of a body's parts, back to front, hanging from the neck at (neck_x, neck_y).

    Roles: "arm", "neck", "torso", "skirt", "leg", "collar".
    Coordinates are fractions of the page. Arms (0-2) lie behind the torso or in front of it,
    trousers or a skirt below the waist, a collar over the top of the torso; parts run off the
    bottom of the page as in a half-body drawing. ``build`` (0, 1] narrows the widths (shoulders,
    arms, neck) for a small head, so a whole figure keeps anime proportions; a skirt that ends
    above the page's bottom shows legs below it.
    """
    if not 0.0 < build <= 1.0:
        raise ValueError(f"build must lie in (0, 1], got {build}")
    if height < 16 or width < 16:
        raise ValueError(f"a figure needs a page of at least 16x16 px, got {width}x{height}")
    shoulder = rng.uniform(0.15, 0.3) * build  # half the shoulder width
    top = neck_y + rng.uniform(0.0, 0.04)
    waist_y = top + rng.uniform(0.22, 0.38)
    waist = shoulder * rng.uniform(0.6, 0.95)
    parts: list[tuple[str, np.ndarray]] = []
    arms_front = rng.random() < 0.4
    arms = []
    for side in (-1, 1):
        if rng.random() < 0.8:
            angle = side * rng.uniform(5, 40)
            length = rng.uniform(0.15, 0.3)
            cx = neck_x + side * shoulder * 0.9 + side * np.sin(np.radians(abs(angle))) * length * 0.5
            arms.append(("arm", _ellipse(cx, top + length * 0.55, rng.uniform(0.035, 0.07) * build, length * 0.55,
                                 -angle, height, width)))
    if not arms_front:
        parts += arms
    parts.append(("neck", _ellipse(neck_x, neck_y - 0.01, rng.uniform(0.03, 0.06) * build, rng.uniform(0.04, 0.07),
                                   0, height, width)))
    parts.append(("torso", _poly([(neck_x - shoulder, top + 0.03), (neck_x - shoulder * 0.7, top),
                        (neck_x + shoulder * 0.7, top), (neck_x + shoulder, top + 0.03),
                        (neck_x + waist, waist_y), (neck_x - waist, waist_y)], height, width)))
    if rng.random() < 0.5:  # a skirt flaring out, else two trouser legs
        flare = waist * rng.uniform(1.2, 2.0)
        hem = waist_y + rng.uniform(0.15, 0.35)
        if hem < 0.92:  # a whole figure: legs below the skirt, behind it
            for side in (-1, 1):
                x, half = neck_x + side * waist * rng.uniform(0.3, 0.6), waist * rng.uniform(0.2, 0.35)
                parts.append(("leg", _poly([(x - half, hem - 0.05), (x + half, hem - 0.05), (x + half * 0.7, 1.05),
                                            (x - half * 0.7, 1.05)], height, width)))
        parts.append(("skirt", _poly([(neck_x - waist, waist_y - 0.01), (neck_x + waist, waist_y - 0.01),
                            (neck_x + flare, hem), (neck_x - flare, hem)], height, width)))
    else:
        gap = waist * rng.uniform(0.05, 0.2)
        for side in (-1, 1):
            inner, outer = neck_x + side * gap, neck_x + side * waist
            parts.append(("leg", _poly([(inner, waist_y - 0.01), (outer, waist_y - 0.01),
                                (outer + side * 0.02, 1.05), (inner, 1.05)], height, width)))
    if rng.random() < 0.6:
        parts.append(("collar", _ellipse(neck_x, top + 0.02, shoulder * rng.uniform(0.35, 0.7), rng.uniform(0.03, 0.06),
                              0, height, width)))
    if arms_front:
        parts += arms
    return [(role, mask) for role, mask in parts if mask.any()]


def _shade(part: np.ndarray, base: np.ndarray, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ys, xs, Nx3 float colours) of one part's pixels: ``base``, darker on the side away from a light."""
    ys, xs = np.nonzero(part)
    angle = rng.uniform(0, 2 * np.pi)
    along = np.cos(angle) * (xs - xs.mean()) + np.sin(angle) * (ys - ys.mean())
    cut = np.quantile(along, rng.uniform(0.5, 0.8))
    tone = np.broadcast_to(base.astype(np.float32), (len(ys), 3)).copy()
    tone[along > cut] *= rng.uniform(0.7, 0.88)
    return ys, xs, tone


# Clothing details: most folds hang with gravity (near vertical), the rest run any way.
FOLD_HANG_SHARE, FOLD_HANG_SPREAD = 0.7, 0.35  # share of hanging folds, their angle's std (radians)
MARK_COLOUR_SHARE = 0.5  # buttons and bows in another colour than the cloth, else the cloth's own


def _fold_stroke(ys: np.ndarray, xs: np.ndarray, extent: int, rng: np.random.Generator) -> np.ndarray:
    """(P, 2) int32 points of one fold: a quadratic curve from a random one of a part's pixels
    (``ys``, ``xs``), as long as 20-60% of its ``extent`` (the larger side of its bounding box)."""
    k = int(rng.integers(len(ys)))
    start = np.array([xs[k], ys[k]], np.float64)
    length = max(4.0, rng.uniform(0.2, 0.6) * extent)
    if rng.random() < FOLD_HANG_SHARE:
        angle = np.pi / 2 + rng.normal(0.0, FOLD_HANG_SPREAD)
    else:
        angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    end = start + direction * length
    control = (start + end) / 2 + normal * rng.uniform(-0.3, 0.3) * length
    t = np.linspace(0.0, 1.0, 12)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t ** 2 * end
    return np.round(curve).astype(np.int32)


def draw_clothing_details(part: np.ndarray, page: np.ndarray, ink: np.ndarray, rng: np.random.Generator,
                          count: int, pen_width: int, pen_ink: int) -> None:
    """Up to ``count`` inked folds and small outlined marks (buttons, bows) inside one clothing part.

    Real line art draws folds, frills and trims inside clothes; figures with only outlines taught the
    model that lines inside a body are hair, which it painted in blotches. Folds are lines only (the
    cloth's colour runs under them); a mark is a small ellipse filled with a flat colour. ``part`` is
    an HxW bool mask; ``page`` (HxWx3 float) and ``ink`` (HxW uint8) are drawn into in place, and
    nothing leaves the part (its outline stays the outline).
    """
    if count <= 0:
        return
    h, w = ink.shape
    inner = cv2.erode(part.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if inner.sum() < 16:  # a sliver: no room inside
        return
    ys, xs = np.nonzero(inner)
    extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    layer = np.full((h, w), PAPER, np.uint8)
    for _ in range(int(rng.integers(1, count + 1))):
        cv2.polylines(layer, [_fold_stroke(ys, xs, extent, rng)], False, pen_ink, thickness=pen_width,
                      lineType=cv2.LINE_AA)
    for _ in range(int(rng.integers(0, count // 2 + 1))):
        k = int(rng.integers(len(ys)))
        radius = max(3, int(round(rng.uniform(0.04, 0.12) * extent)))
        mark = np.zeros((h, w), np.uint8)
        cv2.ellipse(mark, (int(xs[k]), int(ys[k])), (radius, max(2, int(radius * rng.uniform(0.6, 1.0)))),
                    rng.uniform(0, 180), 0, 360, 255, thickness=-1)
        mark = (mark > 0) & inner
        if not mark.any():
            continue
        if rng.random() < MARK_COLOUR_SHARE:
            page[mark] = random_cloth_colour(rng).astype(np.float32)
        layer[mark] = PAPER
        contours, _ = cv2.findContours(mark.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(layer, contours, -1, pen_ink, thickness=pen_width, lineType=cv2.LINE_AA)
    np.minimum(ink, np.where(inner, layer, PAPER).astype(np.uint8), out=ink)


# Head sizes (fraction of the page) at and above which the body keeps its full build; smaller heads
# (whole figures) get proportionally narrower bodies.
FULL_BUILD_HEAD = 0.35
HALF_BODY_HEADS = (0.35, 0.6)
HEAD_SCALE_LIMITS = (0.2, 0.9)  # smaller heads lose the face; larger leave no room for a body


MAX_DETAILS = 12


def check_details(details: int, name: str = "details") -> None:
    """Folds per clothing part: a whole number from 0 (plain parts) to ``MAX_DETAILS``."""
    if isinstance(details, bool) or not isinstance(details, (int, np.integer)) or not 0 <= details <= MAX_DETAILS:
        raise ValueError(f"{name} must be a whole number of folds per clothing part from 0 to {MAX_DETAILS}, "
                         f"got {details!r}")


def check_head_scales(head_scales: tuple[float, float], name: str = "head_scales") -> None:
    """A range of head sizes must lie within what ``draw_figure`` accepts."""
    (least, most), (low, high) = HEAD_SCALE_LIMITS, head_scales
    if not least <= low <= high <= most:
        raise ValueError(f"{name} must be [low, high] with {least} <= low <= high <= {most}, got {head_scales}")


def draw_figure(color: np.ndarray, sketch: np.ndarray, rng: np.random.Generator, head_scale: float = 0.5,
                head_x: float = 0.5, head_top: float = 0.05, outline_width: int = 1, outline_ink: int = 0,
                backdrop: tuple[int, int, int] | None = None, details: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face (``color``, ``sketch``) shrunk by ``head_scale`` as the head of a drawn figure.

    head_x: the head's centre, head_top: its top, as fractions of the page. details: up to this
    many folds per clothing part, and half as many marks (``draw_clothing_details``; 0 = plain). Returns
    (colour, sketch, outside HxW bool): the body's parts are flat-coloured and inked, the head keeps
    the face inside an oval silhouette, and outside the figure is paper (or ``backdrop`` in colour).
    """
    side = min(check_color_and_sketch(color, sketch))
    least, most = HEAD_SCALE_LIMITS
    if not least <= head_scale <= most:
        raise ValueError(f"head_scale must lie in [{least}, {most}], got {head_scale}")
    if outline_width < 1 or not 0 <= outline_ink <= 255:
        raise ValueError(f"outline_width must be >= 1 and outline_ink in [0, 255], got {outline_width}, {outline_ink}")
    check_details(details)
    h, w = sketch.shape
    head = max(4, int(round(side * head_scale)))
    x0 = int(round(head_x * w - head / 2))
    y0 = int(round(head_top * h))
    parts = random_body_parts(h, w, (x0 + head / 2) / w, (y0 + head * 0.92) / h, rng,
                              build=min(1.0, head_scale / FULL_BUILD_HEAD))

    page = np.full((h, w, 3), PAPER, np.float32)
    outside = np.ones((h, w), bool)
    ink = np.full((h, w), PAPER, np.uint8)
    colours = _role_colours(rng)
    for role, part in parts:  # back to front: each part covers the ones before, its outline included
        ys, xs, tone = _shade(part, colours[role], rng)
        page[ys, xs] = tone
        ink[part] = PAPER
        contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(ink, contours, -1, outline_ink, thickness=outline_width, lineType=cv2.LINE_AA)
        outside &= ~part

    # the head: the shrunk face inside an oval that the page clips
    small_color = cv2.resize(color, (head, head), interpolation=cv2.INTER_AREA)
    small_sketch = cv2.resize(sketch, (head, head), interpolation=cv2.INTER_AREA)
    oval = np.zeros((h, w), np.uint8)
    cv2.ellipse(oval, (x0 + head // 2, y0 + head // 2), (int(head * rng.uniform(0.42, 0.5)), int(head * 0.5)),
                0, 0, 360, 255, thickness=-1)
    box = np.zeros((h, w), bool)
    ty0, tx0, ty1, tx1 = max(0, y0), max(0, x0), min(h, y0 + head), min(w, x0 + head)
    box[ty0:ty1, tx0:tx1] = True
    in_head = (oval > 0) & box
    head_color = np.full((h, w, 3), PAPER, np.uint8)
    head_sketch = np.full((h, w), PAPER, np.uint8)
    head_color[ty0:ty1, tx0:tx1] = small_color[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0]
    head_sketch[ty0:ty1, tx0:tx1] = small_sketch[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0]
    page[in_head] = head_color[in_head]
    ink[in_head] = head_sketch[in_head]
    contours, _ = cv2.findContours(in_head.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    rim = np.full((h, w), PAPER, np.uint8)
    cv2.drawContours(rim, contours, -1, outline_ink, thickness=outline_width, lineType=cv2.LINE_AA)
    ink = np.minimum(ink, rim)
    outside &= ~in_head
    if details > 0:  # last, so the figure itself is the one drawn with details=0
        covered = in_head.copy()
        for role, part in reversed(parts):
            if role != "neck":  # skin has no folds
                draw_clothing_details(part & ~covered, page, ink, rng, details, outline_width, outline_ink)
            covered |= part

    if backdrop is not None:
        page[outside] = np.asarray(backdrop, np.float32)
    # coloured line art carries its lines; the head's own lines are already in the face's colours
    lines = np.where(in_head, PAPER, ink).astype(np.float32) / PAPER
    page *= np.minimum(lines, rim.astype(np.float32) / PAPER)[..., None]
    return np.clip(page + 0.5, 0, 255).astype(np.uint8), ink, outside


def random_figure(color: np.ndarray, sketch: np.ndarray, rng: np.random.Generator,
                  backdrop_probability: float = 0.0, head_scales: tuple[float, float] = HALF_BODY_HEADS,
                  details: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int] | None]:
    """``draw_figure`` with a random head size (``head_scales``: 35-60% of the page by default, a
    half-body figure; down to 20% for whole figures) and place, a pen ~1 px per 128 px (dark grey to
    black), with ``backdrop_probability`` a ``random_backdrop``, and ``details`` folds per part at most.

    Returns (colour, sketch, outside HxW bool, backdrop colour or None), as ``random_cut_out`` does.
    """
    side = min(check_color_and_sketch(color, sketch))
    check_head_scales(head_scales)
    scale = rng.uniform(*head_scales)
    width, ink, backdrop = random_pen(side, rng, backdrop_probability)
    page_color, page_sketch, outside = draw_figure(
        color, sketch, rng, head_scale=scale, head_x=rng.uniform(0.4, 0.6), head_top=rng.uniform(0.0, 0.12),
        outline_width=width, outline_ink=ink, backdrop=backdrop, details=details)
    return page_color, page_sketch, outside, backdrop
