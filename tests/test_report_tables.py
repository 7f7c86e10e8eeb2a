"""The evaluation report's headline table picks the roughness it reports against clean sketches."""

from __future__ import annotations

from sketch2anime.evaluation.report import headline_table


def _entry(condition: str, roughness: str, ssim: float, delta: float | None = None) -> dict:
    metrics = {"ssim_mean": ssim, "fid": None, "kid_mean": None, "hint_de00_median": 1.0, "line_f": 0.9,
               "line_chamfer": 1.0, "sensitivity": 0.8, "line_recall": 0.9}
    entry = {"model": "m", "projection": 0.0, "condition": condition, "roughness": roughness,
             "hint_level": "sparse", "metrics": metrics}
    if delta is not None:
        entry["delta_vs_clean"] = {"ssim_mean": delta, "line_recall": -0.1}
    return entry


def test_the_strongest_jittered_level_wins_and_unfinished_reports_when_alone() -> None:
    clean = _entry("clean", "none", 0.4)
    heavy = _entry("rough-heavy", "heavy", 0.3, -0.1)
    unfinished = _entry("rough-unfinished", "unfinished", 0.35, -0.05)
    medium = _entry("rough-medium", "medium", 0.33, -0.07)
    headers, rows, caption = headline_table({"entries": [clean, unfinished, medium, heavy]})
    assert "ΔSSIM heavy" in headers and rows[0][headers.index("ΔSSIM heavy")] == "-0.100"
    headers, rows, caption = headline_table({"entries": [clean, unfinished]})
    assert "ΔSSIM unfinished" in headers and rows[0][headers.index("ΔSSIM unfinished")] == "-0.050"
    assert "rough-unfinished minus clean" in caption
