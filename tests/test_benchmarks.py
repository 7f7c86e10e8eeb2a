"""The benchmark scripts' cores on tiny sizes: tables have the right rows and columns, and each
script rewrites only its own section of the doc. (The numbers themselves are not checked.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import inference_latency, panel_latency, projection, training_throughput  # noqa: E402
from benchmarks.report import markdown_table, merge_section  # noqa: E402


def _table_rows(text: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and body rows of the last Markdown table whose first header is ``first_header``."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |")]
    assert starts, f"no table starting with {first_header!r} in:\n{text}"
    i = starts[-1]
    header = [c.strip() for c in lines[i].strip("|").split("|")]
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return header, rows


def test_markdown_table_and_sections() -> None:
    table = markdown_table(["a", "b"], [[1, "x|y"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError):
        markdown_table(["a"], [[1, 2]])
    section = lambda name, text: f"<!-- benchmark:{name}:begin -->\n{text}\n<!-- benchmark:{name}:end -->\n"
    doc = merge_section("", "training_throughput", section("training_throughput", "T1"))
    doc = merge_section(doc, "inference_latency", section("inference_latency", "L1"))
    assert doc.startswith("# Benchmarks") and doc.index("L1") < doc.index("T1")  # canonical order
    doc = merge_section(doc, "training_throughput", section("training_throughput", "T2"))
    assert "T1" not in doc and "T2" in doc and "L1" in doc and doc.count("benchmark:training_throughput:begin") == 1


def test_projection_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "bench.md"
    doc.write_text("# Benchmarks\n\nkept text\n", encoding="utf-8")
    code = projection.main(["--sizes", "300,600", "--queries", "3", "--dim", "16", "--clusters", "4",
                            "--threads", "1", "--calibration-size", "100", "--doc", str(doc)])
    assert code == 0
    header, rows = _table_rows(capsys.readouterr().out, "bank size")
    assert header[:3] == ["bank size", "index", "torch/faiss threads"] and "recall@10" in header
    assert [(r[0], r[1].split()[0]) for r in rows] == [("300", "exact"), ("300", "faiss"), ("600", "exact"), ("600", "faiss")]
    text = doc.read_text(encoding="utf-8")
    assert "kept text" in text and "benchmark:projection:begin" in text and "synthetic latents" in text
    assert "python " in text and "--sizes 300,600" in text  # the command that produced it


def test_inference_latency_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "bench.md"
    code = inference_latency.main(["--repeats", "1", "--warmup", "0", "--projections", "0,1", "--canvas", "64",
                                   "--random", "--bank-size", "40", "--threads", "1", "--device", "cpu", "--doc", str(doc)])
    assert code == 0
    out = capsys.readouterr().out
    header, rows = _table_rows(out, "model")
    assert header == ["model", "torch threads", "what is timed", "projection", "CPU p50 ms", "CPU p95 ms"]
    # per strength: from empty caches, then a hint stroke on the same sketch (the guide cache)
    assert [(r[2].split()[0], r[3]) for r in rows] == [("pipe(),", "0")] * 2 + [("pipe(),", "1")] * 2 + \
        [("POST", "0"), ("POST", "1")] * 2
    assert ["guide cache" in r[2] for r in rows[:4]] == [False, True, False, True]
    assert all(float(r[4]) > 0 for r in rows)
    assert ["panel sends" in r[2] for r in rows[4:]] == [True, True, False, False]
    assert "Panel target < 100 ms" in out and "(what the panel sends), projection 0." in out
    text = doc.read_text(encoding="utf-8")
    assert "benchmark:inference_latency:begin" in text and "nproc" in text


def test_training_throughput_parsing(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    records = [{"step": 5, "images_per_s": 1.0}, {"step": 10, "images_per_s": 10.0},
               {"step": 20, "images_per_s": 20.0}]
    metrics.write_text("\n".join(json.dumps(r) for r in records) + "\n{broken", encoding="utf-8")
    result = training_throughput.read_throughput(metrics, batch_size=4, warmup_windows=1)
    # Windows after warm-up: 5 steps at 10 img/s (2 s) and 10 steps at 20 img/s (2 s) -> 60 images / 4 s.
    assert result.images_per_s == pytest.approx(15.0) and result.timed_steps == 15
    assert result.seconds_per_step == pytest.approx(4 / 15)
    empty = training_throughput.read_throughput(metrics, batch_size=4, warmup_windows=3)
    assert empty.images_per_s is None and empty.error


@pytest.mark.browser
@pytest.mark.skipif(not Path(panel_latency.CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium")
def test_panel_latency_in_a_real_browser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("playwright.sync_api")
    from test_server_api import build_tiny_pipeline

    folder = build_tiny_pipeline(tmp_path / "tiny")
    doc = tmp_path / "bench.md"
    assert panel_latency.main(["--model", str(folder), "--strokes", "3", "--hint-every", "2", "--doc", str(doc),
                               "--precision", "bf16"]) == 0
    out = capsys.readouterr().out
    assert f"model {folder} in bf16)" in out  # the server ran what it was asked, and says so
    header, rows = _table_rows(out, "what")
    assert header == ["what", "updates", "p50 ms", "p95 ms", "mean ms"]
    assert [r[1] for r in rows] == ["3"] * 8 and all(float(r[2]) >= 0 for r in rows)
    update, encode, transport, server, model, decode, draw, pen_up = (float(r[2]) for r in rows)
    assert update >= server >= model > 0  # the page's measurement contains the server's, which contains the model's
    assert pen_up >= update and encode > 0
    header, rows = _table_rows(out, "pair")
    assert [r[0].split(",")[0] for r in rows][:2] == ["consecutive updates"] * 2
    repeat = next(r for r in rows if r[0].startswith("the final drawing sent again"))
    assert float(repeat[2]) == 0.0  # same drawing, same seed: the same picture
    assert "Consistency while drawing" in doc.read_text(encoding="utf-8")


@pytest.mark.browser
@pytest.mark.skipif(not Path(panel_latency.CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium")
def test_panel_latency_with_flat_colours_writes_its_own_section(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("playwright.sync_api")
    from test_server_api import build_tiny_pipeline

    folder = build_tiny_pipeline(tmp_path / "tiny")
    doc = tmp_path / "bench.md"
    assert panel_latency.main(["--model", str(folder), "--strokes", "2", "--hint-every", "0", "--doc", str(doc),
                               "--flatten"]) == 0
    out = capsys.readouterr().out
    _, rows = _table_rows(out, "what")
    update, server, model = (float(rows[i][2]) for i in (0, 3, 4))
    assert update >= server >= model > 0
    assert "Flat colours" in out
    text = doc.read_text(encoding="utf-8")
    assert "with Flat colours" in text and "Panel update latency (real browser)" not in text
