"""The "model against trivial floors" tables of ``sketch2anime evaluate``.

One table per evaluated set (validation split, held-out line style, real pairs): every model and
every floor of ``floors.py`` on clean sketches at one hint level, with the scores at the dataset's
size and at the display size, the input sensitivity, and how far each model's SSIM lies above the
best trivial floor. ``report.md`` shows them; ``--table PATH`` writes them alone as Markdown (for a
README, a model card or an issue).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text
from .floors import FLOOR_NAMES, FLOOR_SKETCH, FLOOR_MEAN

TRIVIAL_FLOORS = (FLOOR_SKETCH, FLOOR_MEAN)  # the reference row reads the target: not a floor


def _num(value: Any, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def table_hint_level(result: dict[str, Any]) -> str:
    """The hint level the summary tables use: sparse when evaluated, else the first hinted level."""
    levels = [e["hint_level"] for e in result["entries"]]
    return "sparse" if "sparse" in levels else next((lv for lv in levels if lv != "none"), "none")


def set_names(result: dict[str, Any]) -> list[str]:
    """Sets in evaluation order (old metrics.json without sets: just "val")."""
    names = [s["name"] for s in result.get("sets", [])]
    return names or ["val"]


def floors_table(result: dict[str, Any], set_name: str = "val",
                 hint_level: str | None = None) -> tuple[list[str], list[list[str]], str]:
    """(headers, rows, caption): clean sketches of one set at one hint level, models then floors."""
    level = hint_level or table_hint_level(result)
    display = result.get("display_size")
    entries = [e for e in result["entries"] if e.get("set", "val") == set_name and e["roughness"] == "none"
               and e["hint_level"] == level]
    floor_ssim = [e["metrics"]["ssim_mean"] for e in entries if e["model"] in TRIVIAL_FLOORS]
    best_floor = max(floor_ssim) if floor_ssim else None
    headers = ["model", "projection", "SSIM ↑"]
    if display:
        headers.append(f"SSIM at {display} px ↑")
    headers += ["L1 ↓", "ΔE00 med ↓", "line F ↑", "sensitivity (→ 1)"]
    # FID/KID only where they were computed (the main set, --fid not none): no empty columns.
    with_fid = any(e["metrics"].get("fid") is not None for e in entries)
    if with_fid:
        headers += ["FID ↓", "KID×10³ ↓"]
    headers.append("SSIM − best floor")
    order = {name: i for i, name in enumerate(FLOOR_NAMES)}
    entries.sort(key=lambda e: (e["model"] in order, order.get(e["model"], -1)))  # models first, stable
    rows = []
    for e in entries:
        m = e["metrics"]
        floor = e["model"] in order
        row = [e["model"], "–" if e["projection"] is None else f"{e['projection']:g}", _num(m["ssim_mean"])]
        if display:
            row.append(_num(m.get("ssim_display_mean")))
        margin = None if floor or best_floor is None else m["ssim_mean"] - best_floor
        row += [_num(m["l1_mean"]), _num(m.get("hint_de00_median"), 2), _num(m.get("line_f")),
                _num(m.get("sensitivity"))]
        if with_fid:
            kid = m.get("kid_mean")
            row += [_num(m.get("fid"), 1), _num(None if kid is None else kid * 1000.0, 1)]
        row.append(_num(margin, signed=True))
        rows.append(row)
    n = entries[0]["n"] if entries else 0
    caption = (f"{n} images, clean sketches, {level} hints. Floors: `floor-sketch` returns the input sketch, "
               "`floor-mean` the mean training image; `ref-colour16` is a reference that reads the target "
               "(its colours at 16 px times the sketch lines). Sensitivity: mean pairwise L1 between outputs "
               "for different inputs divided by that of their targets (32 px; 0 = same picture for every input). "
               "SSIM − best floor: the model's SSIM minus the better of the two floors.")
    if display:
        caption += f" At {display} px: the output upscaled bicubically, against the true image at that size."
    if with_fid:
        label = next((e.get("feature_extractor") for e in entries if e.get("feature_extractor")), None)
        caption += (f" FID/KID against the set's true images ({label})." if label else
                    " FID/KID against the set's true images: they rank models on this data only.")
    return headers, rows, caption


def set_title(result: dict[str, Any], name: str) -> str:
    for s in result.get("sets", []):
        if s["name"] == name:
            return f"{s['title']} (`{name}`)"
    return f"Validation split (`{name}`)"


def floor_tables_markdown(result: dict[str, Any], heading: str = "###") -> str:
    """Every set's floors table as Markdown, with a heading and caption each."""
    from .report import markdown_table

    parts = []
    for name in set_names(result):
        headers, rows, caption = floors_table(result, name)
        if not rows:
            continue
        parts += [f"{heading} {set_title(result, name)}", "", caption, "", markdown_table(headers, rows), ""]
    return "\n".join(parts)


def write_floor_table(path: Path, result: dict[str, Any]) -> Path:
    """Write the model + floors Markdown tables of every set to ``path``."""
    started = result.get("started", "")
    text = (f"## Models against trivial floors\n\nFrom `sketch2anime evaluate` ({started}), dataset "
            f"`{result['dataset']['path']}` at {result['dataset']['image_size']} px.\n\n" + floor_tables_markdown(result))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
