"""Reports of ``sketch2anime evaluate``: Markdown/HTML tables, ``report.md``/``report.html`` and
``docs/comparison.md`` for ``scripts/compare_baselines.sh`` (``write_comparison``).

The image grid and the training-curve plots are drawn in ``figures.py`` (their names stay
importable from here).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text
from .figures import hint_picture, plot_series, plot_training_logs, read_training_log, render_grid  # noqa: F401
from .floor_report import floor_tables_markdown, floors_table, set_names, set_title
from .scoring import entry_label


# ---------------------------------------------------------------------------------------------
# tables

def _num(value: Any, digits: int = 3, scale: float = 1.0, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value * scale:+.{digits}f}" if signed else f"{value * scale:.{digits}f}"


def _proj(value: Any) -> str:
    return "–" if value is None else f"{value:g}"


def _main_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries of the validation split (metrics.json before sets had no ``set``: all of them)."""
    return [e for e in result["entries"] if e.get("set", "val") == "val"]


def _display_header(result: dict[str, Any]) -> str:
    return f"SSIM {result['display_size']} px ↑" if result.get("display_size") else "SSIM display ↑"


def main_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Clean-sketch entries of the validation split (models and floors): the full comparison."""
    headers = ["model", "projection", "hints", "SSIM ↑", _display_header(result), "PSNR ↑", "L1 ↓", "FID ↓",
               "KID×10³ ↓", "ΔE00 med ↓", "ΔE00 p90 ↓", "line recall ↑", "line F ↑", "chamfer px ↓",
               "sensitivity", "ms/img"]
    rows = []
    for e in _main_entries(result):
        if e["roughness"] != "none":
            continue
        m = e["metrics"]
        rows.append([e["model"], _proj(e["projection"]), e["hint_level"],
                     f"{_num(m['ssim_mean'])} ± {_num(m['ssim_std'])}", _num(m.get("ssim_display_mean")),
                     _num(m["psnr_mean"], 2), _num(m["l1_mean"]),
                     _num(m["fid"], 2), _num(m["kid_mean"], 2, 1000.0), _num(m["hint_de00_median"], 2),
                     _num(m["hint_de00_p90"], 2), _num(m["line_recall"]), _num(m["line_f"]),
                     _num(m["line_chamfer"], 2), _num(m.get("sensitivity")), _num(e["timing"]["ms_per_image"], 1)])
    return headers, rows


def fid_difference_lines(result: dict[str, Any]) -> list[str]:
    """One sentence per condition and hint level of the validation split: each model's FID gap to
    the first model with its 90% paired bootstrap interval (``scoring.add_fid_differences``)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in _main_entries(result):
        gap = e["metrics"].get("fid_vs_first")
        if gap:
            groups.setdefault((e["condition"], e["hint_level"]), []).append(e)
    lines = []
    for (condition, level), group in groups.items():
        reference = group[0]["metrics"]["fid_vs_first"]
        parts = [f"{entry_label(e)} {e['metrics']['fid_vs_first']['difference']:+.1f} "
                 f"[{e['metrics']['fid_vs_first']['low']:+.1f}, {e['metrics']['fid_vs_first']['high']:+.1f}]"
                 for e in group]
        lines.append(f"FID minus {reference['reference']}'s ({condition}, {level} hints; "
                     f"{100 * reference['level']:.0f}% paired bootstrap interval over the images, "
                     f"{reference['draws']} draws): " + "; ".join(parts) + ". An interval that holds 0 is no "
                     "evidence of a difference.")
    return lines


def headline_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]], str]:
    """One row per model (and projection): clean scores at one hint level plus the change under the
    heaviest roughness. Returns (headers, rows, caption)."""
    entries = _main_entries(result)
    levels = [e["hint_level"] for e in entries]
    level = "sparse" if "sparse" in levels else next((lv for lv in levels if lv != "none"), "none")
    rough = [e["roughness"] for e in entries if e["roughness"] != "none"]
    # the jittered levels by strength; "unfinished" (clean lines, ink missing) only when alone
    heaviest = max(rough, key=["unfinished", "light", "medium", "heavy"].index) if rough else None
    by_key = {(e["model"], e["projection"], e["condition"]): e for e in entries if e["hint_level"] == level}
    headers = ["model", "projection", "SSIM ↑", _display_header(result), "FID ↓", "KID×10³ ↓", "ΔE00 med ↓",
               "line F ↑", "chamfer px ↓", "sensitivity"]
    if heaviest:
        headers += [f"ΔSSIM {heaviest}", f"Δ line recall {heaviest}"]
    rows = []
    for e in entries:
        if e["hint_level"] != level or e["roughness"] != "none":
            continue
        m = e["metrics"]
        row = [e["model"], _proj(e["projection"]), _num(m["ssim_mean"]), _num(m.get("ssim_display_mean")),
               _num(m["fid"], 2), _num(m["kid_mean"], 2, 1000.0),
               _num(m["hint_de00_median"], 2), _num(m["line_f"]), _num(m["line_chamfer"], 2), _num(m.get("sensitivity"))]
        if heaviest:
            r = by_key.get((e["model"], e["projection"], f"rough-{heaviest}"))
            d = (r or {}).get("delta_vs_clean") or {}
            row += [_num(d.get("ssim_mean"), signed=True), _num(d.get("line_recall"), signed=True)]
        rows.append(row)
    caption = (f"Clean sketches with {level} hints" + (f"; Δ = rough-{heaviest} minus clean" if heaviest else "")
               + ". All hint levels and conditions follow.")
    return headers, rows, caption


def robustness_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rough-sketch entries with their change against the clean sketch (rough minus clean)."""
    headers = ["model", "projection", "hints", "sketch", "SSIM", "ΔSSIM", "FID", "ΔFID", "ΔE00 med", "ΔΔE00",
               "recall (clean lines)", "Δrecall", "recall (input lines)", "change vs weakest t (/255)"]
    rows = []
    for e in _main_entries(result):
        if e["roughness"] == "none":
            continue
        m, d = e["metrics"], e.get("delta_vs_clean") or {}
        rows.append([e["model"], _proj(e["projection"]), e["hint_level"], e["condition"],
                     _num(m["ssim_mean"]), _num(d.get("ssim_mean"), signed=True),
                     _num(m["fid"], 2), _num(d.get("fid"), 2, signed=True),
                     _num(m["hint_de00_median"], 2), _num(d.get("hint_de00_median"), 2, signed=True),
                     _num(m["line_recall"]), _num(d.get("line_recall"), signed=True), _num(m["line_recall_input"]),
                     _num(m.get("projection_change"), 1, scale=255)])
    return headers, rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return str(cell).replace("|", "\\|")

    lines = ["| " + " | ".join(map(clean, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(clean, row)) + " |" for row in rows]
    return "\n".join(lines)


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fid_line(result: dict[str, Any]) -> str:
    fx = result.get("feature_extractor") or {}
    if "label" not in fx:
        return f"FID/KID: not computed — {fx.get('skipped', 'no feature extractor')}."
    n = result["protocol"]["n_evaluated"]
    note = (f" With {n} images and {fx.get('feature_dim')}-d features FID is biased upward and unreliable "
            "(more images than dimensions are needed); KID is unbiased — prefer it here."
            if fx.get("feature_dim") and n <= fx["feature_dim"] else "")
    return f"FID/KID features: **{fx['label']}** (weights: {fx.get('weights')}).{note}"


def _floor_blocks(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """One "against trivial floors" table per evaluated set (validation, held-out lines, pairs)."""
    blocks: list[tuple[str, Any]] = [("h2", "Against trivial floors")]
    for s in result.get("sets", []):
        if s.get("display") and not s["display"]["available"]:
            blocks.append(("p", f"`{s['name']}`: no scores at {s['display']['size']} px: {s['display']['reason']}."))
    for name in set_names(result):
        headers, rows, caption = floors_table(result, name)
        if rows:
            blocks += [("h3", set_title(result, name)), ("p", caption), ("table", (headers, rows))]
    return blocks


def _sections(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """(kind, payload) blocks shared by the Markdown and HTML writers."""
    p = result["protocol"]
    blocks: list[tuple[str, Any]] = [("h1", "Sketch2Anime evaluation")]
    blocks.append(("p", f"Dataset `{result['dataset']['path']}`: {p['n_evaluated']} of {p['n_val_total']} validation "
                        f"images at {p['image_size']} px; clean sketch = `{p['clean_sketch_extractor']}`; protocol seed "
                        f"{p['seed']} (hints and rough sketches per image id; fingerprint `{p['fingerprint'][:16]}`)."))
    blocks.append(("p", _fid_line(result)))
    hints = ", ".join(k if v["config"] is None else
                      f"{k} ({v['config']['stroke_count'][0]}–{v['config']['stroke_count'][1]} strokes, "
                      f"{100 * v['mean_coverage']:.1f}% of hint pixels)" for k, v in p["hint_levels"].items())
    blocks.append(("p", f"Hint levels: {hints}. Sketch conditions: "
                        + ", ".join("clean" if r == "none" else f"rough-{r}" for r in p["roughness"]) + "."))
    model_rows = [[m["name"], m["pipeline_type"], m["label"], str(m["path"]),
                   ", ".join(_proj(x) for x in m["projections"])] for m in result["models"]]
    blocks.append(("h2", "Models"))
    blocks.append(("table", (["name", "type", "description", "path", "projection"], model_rows)))
    for skipped in result.get("skipped_models", []):
        blocks.append(("p", f"Skipped `{skipped['model']}`: {skipped['reason']}"))
    headers, rows, caption = headline_table(result)
    blocks.append(("h2", "Summary"))
    blocks.append(("p", caption))
    blocks.append(("table", (headers, rows)))
    blocks += _floor_blocks(result)
    blocks.append(("h2", "Clean sketches"))
    blocks.append(("table", main_table(result)))
    blocks += [("p", line) for line in fid_difference_lines(result)]
    if any(e["roughness"] != "none" for e in result["entries"]):
        blocks.append(("h2", "Robustness to rough sketches"))
        blocks.append(("p", "Δ = rough minus clean for the same model, hint level and projection. \"Clean lines\": "
                            "recall of the clean sketch's lines in the output (did the intended drawing survive); "
                            "\"input lines\": of the rough sketch actually given."))
        blocks.append(("table", robustness_table(result)))
    files = result.get("files", {})
    if "grid" in files:
        blocks.append(("h2", "Samples"))
        blocks.append(("p", "Rows: the first validation images. Columns: sketch | hint | each model | target."))
        blocks.append(("img", files["grid"]))
    titles = {s["name"]: s["title"] for s in result.get("sets", [])}
    for set_name, picture in files.get("set_grids", {}).items():
        blocks.append(("h2", f"Samples: {titles.get(set_name, set_name)}"))
        blocks.append(("p", "Rows: the set's first images, clean sketches. Columns: sketch | hint | each model | target."))
        blocks.append(("img", picture))
    if files.get("plots"):
        blocks.append(("h2", "Training curves"))
        for plot in files["plots"]:
            blocks.append(("img", plot))
    hw = result.get("hardware", {})
    blocks.append(("h2", "Notes"))
    blocks.append(("p", f"SSIM: Gaussian window 11, σ 1.5, RGB, data range 1 (mean ± std over images). PSNR per image "
                        f"capped at {result['psnr_cap_db']:g} dB. L1 on the [0, 1] scale. ΔE00: CIEDE2000 between the "
                        "output (area-averaged to the hint grid) and the hint colour at hinted pixels, pooled median and "
                        "90th percentile. Line recall / F: Canny edges of the output within "
                        f"{result['line_tolerance_px']:g} px of the clean sketch's ink; chamfer in pixels. "
                        "Scores are at the dataset's size (outputs of another size resized bilinearly); the display "
                        "column upscales the model's own output bicubically and compares it with the true image at "
                        "that size. Sensitivity: " + (result.get("sensitivity") or {}).get("definition", "–") + " ("
                        + (result.get("sensitivity") or {}).get("distance", "–") + "); 0 = the same picture for "
                        "every input, ~1 = outputs differ as much as the true images."))
    blocks.append(("p", f"Hardware: {hw.get('device')} ({hw.get('gpu') or hw.get('processor')}, "
                        f"{hw.get('cpu_count')} CPUs, torch {hw.get('torch')}); evaluation took "
                        f"{result.get('total_seconds', 0):.1f} s."))
    return blocks


def write_report(out_dir: Path, result: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` next to metrics.json."""
    out_dir = Path(out_dir)
    md: list[str] = []
    body: list[str] = []
    for kind, payload in _sections(result):
        if kind in ("h1", "h2", "h3"):
            md.append(f"{'#' * int(kind[1])} {payload}\n")
            body.append(f"<{kind}>{html.escape(payload)}</{kind}>")
        elif kind == "p":
            md.append(f"{payload}\n")
            body.append(f"<p>{html.escape(payload).replace('**', '')}</p>")
        elif kind == "table":
            md.append(markdown_table(*payload) + "\n")
            body.append(html_table(*payload))
        elif kind == "img":
            md.append(f"![{payload}]({payload})\n")
            body.append(f'<p><img src="{html.escape(payload)}" alt="{html.escape(payload)}"></p>')
    style = ("body{font-family:sans-serif;margin:2em;max-width:110em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Sketch2Anime evaluation</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md_path, "\n".join(md))
    atomic_write_text(html_path, page)
    return md_path, html_path


# ---------------------------------------------------------------------------------------------
# docs/comparison.md (scripts/compare_baselines.sh)

def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def budget_table(budget: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Rows of ``{"name", "config", "steps", "seconds", "batch_size"}`` (one per training run)."""
    headers = ["run", "config", "steps", "batch", "images seen", "training time"]
    rows = []
    for run in budget:
        steps, batch = run.get("steps"), run.get("batch_size")
        seen = f"{steps * batch:,}" if isinstance(steps, int) and isinstance(batch, int) else "–"
        seconds = run.get("seconds")
        wall = f"{seconds / 60:.1f} min" if isinstance(seconds, (int, float)) else "–"
        rows.append([str(run.get("name", "?")), str(run.get("config", "?")), str(steps), str(batch), seen, wall])
    return headers, rows


def write_comparison(doc_path: Path, metrics_path: Path, budget_path: Path | None = None,
                     subset_metrics_path: Path | None = None, command: str = "scripts/compare_baselines.sh") -> Path:
    """Write the comparison page: training budget, hardware, the evaluation tables."""
    result = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    p, hw = result["protocol"], result.get("hardware", {})
    lines = ["# Sketch2Anime vs baselines on 64×64 anime faces", "",
             f"Written by `{command}` from `{metrics_path}` ({result.get('started', '')}). All models were trained "
             "briefly on a CPU under a comparable budget, so the numbers rank the methods at equal small compute; "
             "they are not converged results and not comparable with published figures.", "",
             "## Setup", "",
             f"- Data: `{result['dataset']['path']}`, {p['n_evaluated']} of {p['n_val_total']} held-out validation "
             f"images at {p['image_size']} px; clean sketch `{p['clean_sketch_extractor']}`; hints and rough sketches "
             f"seeded per image (seed {p['seed']}, fingerprint `{p['fingerprint'][:16]}`).",
             f"- Hardware: {hw.get('gpu') or hw.get('cpu_model') or hw.get('processor')} ({hw.get('cpu_count')} CPUs, {hw.get('platform')}), "
             f"torch {hw.get('torch')} with {hw.get('torch_threads')} threads, device {hw.get('device')}.",
             f"- {_fid_line(result)}", ""]
    if budget_path is not None and Path(budget_path).is_file():
        lines += ["## Training budget", "", markdown_table(*budget_table(_read_jsonl(Path(budget_path)))), ""]
    headers, rows, caption = headline_table(result)
    lines += ["## Summary", "", caption, "", markdown_table(headers, rows), ""]
    floors = floor_tables_markdown(result)
    if floors:
        lines += ["## Against trivial floors", "", floors]
    lines += ["## Clean sketches", "", markdown_table(*main_table(result)), ""]
    if any(e["roughness"] != "none" for e in result["entries"]):
        lines += ["## Robustness to rough sketches (rough minus clean)", "", markdown_table(*robustness_table(result)), ""]
    if subset_metrics_path is not None and Path(subset_metrics_path).is_file():
        subset = json.loads(Path(subset_metrics_path).read_text(encoding="utf-8"))
        sp = subset["protocol"]
        lines += [f"## With the style-transfer baseline (first {sp['n_evaluated']} validation images)", "",
                  "Gatys style transfer is an optimisation per image, far too slow on a CPU for the whole split, so "
                  "all models are scored again on the same subset. Its features are HED-VGG16 features (not "
                  "ImageNet VGG); its style image is a seeded random training image; it ignores hints.", ""]
        if subset.get("feature_extractor", {}).get("extractor") == "hed-vgg":
            lines += ["Its FID/KID here flatter it: the optimisation matches Gram statistics of the very HED-VGG16 "
                      "layers the FID/KID features come from, and 32 images are far too few for FID. Read its SSIM, "
                      "hint and line columns, not its FID.", ""]
        for skipped in subset.get("skipped_models", []):
            lines += [f"Skipped `{skipped['model']}`: {skipped['reason']}", ""]
        lines += [markdown_table(*main_table(subset)), ""]
    doc_path = Path(doc_path)
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    # The grid is not copied next to the doc: its target column and hints are dataset images, which
    # may be used for research but not redistributed with the project.
    lines += ["## Files", "", f"Full report and image grid (it shows the dataset's images, so it stays in the run "
              f"folder): `{Path(metrics_path).parent / 'report.md'}`, `{Path(metrics_path).parent / 'grid.png'}`.", ""]
    atomic_write_text(doc_path, "\n".join(lines))
    return doc_path
