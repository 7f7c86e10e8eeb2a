"""Inference latency per image (batch 1) through the public API, and the panel's HTTP round trip.

    python benchmarks/inference_latency.py [--model PATH ...] [--projections 0,0.5,1] [--repeats 50]

Rows: ``pipe(sketch, hint=None, projection=p, seed=0)`` on a sketch at the model's resolution for
each projection strength (0 skips the bank search entirely; every call starts from empty caches,
plus a row that reuses the per-part guide's (a stroke away from the eyes and the mouth) and one that
reuses the sketch's guide (a hint stroke)), then ``POST /api/generate`` with a
512 px sketch PNG and hint PNG as the panel sends them (in-process ASGI client, so no TCP, but the
full multipart parsing, PNG decoding, resizing and JSON/data-URL encoding). Without ``--model`` it
uses the installed default model, else ``runs/s2a64/model``, else a random-weight pipeline with the
``configs/s2a64.toml`` architecture (latency depends on shapes and bank size, not on weights).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

import torch

from benchmarks.hardware import DEVICE_LABELS, describe_hardware, devices_for, parse_threads
from benchmarks.random_pipeline import build_random_pipeline
from benchmarks.report import command_line, markdown_table, section_text, write_section
from benchmarks.synthetic import synthetic_hint, synthetic_sketch
from benchmarks.timing import Summary, time_calls
from sketch2anime.inference import DEFAULT_MODEL_DIR, PIPELINE_FILE, Sketch2AnimePipeline, read_pipeline_description

SECTION = "inference_latency"
PANEL_ROW = "what the panel sends"
TARGET_MS = 100.0  # the panel's goal per update on a 2-core CPU
# faces64: 14147 training images x 2 extractors = the bank ae64 encodes.
DEFAULT_BANK_SIZE = 28294


@dataclass(frozen=True)
class LatencyRow:
    model: str
    threads: int
    path: str
    projection: str
    timings: dict[str, Summary]  # device -> summary


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def measure_pipeline(pipe: Sketch2AnimePipeline, projections: list[float], repeats: int, warmup: int,
                     device: str, http: bool, canvas: int, seed: int) -> list[tuple[str, str, Summary]]:
    """``(path, projection, summary)`` per measured configuration of one loaded pipeline."""
    results: list[tuple[str, str, Summary]] = []
    sketch = synthetic_sketch(pipe.image_size, seed)
    strengths = projections if pipe.uses_projection else [projections[0]]
    # Every timed call starts with empty caches (a stroke that changed every part: the worst case);
    # one extra row per strength shows a stroke that left the eyes and the mouth alone (part cache),
    # one a hint stroke, which leaves the whole sketch alone (guide cache).
    cached = getattr(pipe, "parts", None) is not None
    guides = getattr(pipe, "guide_cache", None) is not None and pipe.uses_projection
    hints = [synthetic_hint(pipe.image_size, seed + i) for i in range(2)]

    def forget(parts: bool = True) -> None:
        if cached and parts:
            pipe.part_cache.clear()
        if guides:
            pipe.guide_cache.clear()

    def cold(p: float) -> None:
        forget()
        pipe(sketch, hint=None, projection=p, seed=seed)

    def hint_stroke(i: int, p: float) -> None:
        pipe(sketch, hint=hints[i % 2], projection=p, seed=seed)

    for p in strengths:
        shown = f"{p:g}" if pipe.uses_projection else "n/a (no autoencoder)"
        summary = time_calls(lambda i, p=p: cold(p), repeats, warmup, device)
        results.append((f"pipe(), {pipe.image_size} px sketch, no hint", shown, summary))
        if cached:
            summary = time_calls(lambda i, p=p: (forget(parts=False), pipe(sketch, hint=None, projection=p, seed=seed)),
                                 repeats, warmup, device)
            results.append((f"pipe(), {pipe.image_size} px sketch, no hint, eyes and mouth unchanged (part cache)",
                            shown, summary))
        if guides:
            summary = time_calls(lambda i, p=p: hint_stroke(i, p), repeats, warmup, device)
            results.append((f"pipe(), {pipe.image_size} px sketch unchanged, hint changed (guide cache)",
                            shown, summary))
    if not http:
        return results
    try:
        from fastapi.testclient import TestClient

        from sketch2anime.server.app import create_app
    except ImportError as exc:  # fastapi / httpx missing: the optional row says so
        results.append((f"POST /api/generate: not measured ({exc.name} not installed)", "-", None))  # type: ignore[arg-type]
        return results
    client = TestClient(create_app({"bench": pipe}), base_url="http://127.0.0.1")
    sketch_png = _png(synthetic_sketch(canvas, seed))
    hint_png = _png(synthetic_hint(canvas, seed))

    def post(i: int, p: float, output_size: str) -> None:
        files = {"sketch": ("sketch.png", sketch_png, "image/png"), "hint": ("hint.png", hint_png, "image/png")}
        data = {"projection": str(p), "seed": str(seed), "output_size": output_size}
        forget()
        response = client.post("/api/generate", files=files, data=data)
        if response.status_code != 200:
            raise RuntimeError(f"/api/generate answered {response.status_code}: {response.text[:200]}")

    # The panel asks for the model's resolution and scales it up in the browser; the reply at the
    # canvas size (the API's default) is kept as a row to show what that costs.
    for output_size, reply in (("model", f"reply at {pipe.image_size} px ({PANEL_ROW})"),
                               ("input", f"reply upscaled to {canvas} px")):
        for p in strengths:
            shown = f"{p:g}" if pipe.uses_projection else "n/a (no autoencoder)"
            summary = time_calls(lambda i, p=p, o=output_size: post(i, p, o), repeats, warmup, device)
            results.append((f"POST /api/generate, {canvas} px sketch + hint PNG, JSON {reply}", shown, summary))
    return results


def _trained_label(folder: Path) -> str:
    """``runs/s2a64/model (trained, step 750, checkpoint export)`` from its pipeline.json."""
    try:
        training = read_pipeline_description(folder).get("training", {})
    except ValueError:
        return f"{folder} (trained)"
    step = training.get("step")
    stage = "final export" if training.get("final") else "checkpoint export of a run in progress"
    return f"{folder} (trained{f', step {step}' if step is not None else ''}, {stage})"


def resolve_models(args: argparse.Namespace, scratch: Path) -> list[tuple[str, str]]:
    """``(path, label)`` of every pipeline to measure."""
    if args.model:
        return [(m, m) for m in args.model]
    if not args.random and (DEFAULT_MODEL_DIR / PIPELINE_FILE).is_file():
        return [("default", "default (shipped model)")]
    trained = Path("runs/s2a64/model")
    if not args.random and (trained / PIPELINE_FILE).is_file():
        return [(str(trained), _trained_label(trained))]
    folder, label = build_random_pipeline(scratch / "random_s2a64", Path(args.generator_config),
                                          Path(args.autoencoder_config), args.bank_size, args.seed,
                                          args.autoencoder_dir)
    return [(str(folder), label)]


def run(args: argparse.Namespace) -> tuple[list[LatencyRow], list[str], str]:
    """Measure everything; returns rows, device list and the table text."""
    devices = devices_for(args.device)
    projections = [float(v) for v in args.projections.split(",") if v.strip()]
    if not projections or any(not 0.0 <= p <= 1.0 for p in projections):
        raise SystemExit("--projections must be comma-separated numbers in [0, 1]")
    rows: dict[tuple[str, int, str, str], dict[str, Summary]] = {}
    order: list[tuple[str, int, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="s2a_bench_") as scratch:
        for path, label in resolve_models(args, Path(scratch)):
            for device in devices:
                pipe = Sketch2AnimePipeline.from_pretrained(path, device=device, precision=args.precision)
                bank = f"; bank {len(pipe.bank)} latents, k={pipe.projection_k}" if pipe.bank is not None else ""
                name = f"{label}{'' if 'bank' in label else bank}; {pipe.precision}"
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    for where, shown, summary in measure_pipeline(pipe, projections, args.repeats, args.warmup,
                                                                   device, not args.no_http, args.canvas, args.seed):
                        key = (name, threads, where, shown)
                        if key not in rows:
                            rows[key] = {}
                            order.append(key)
                        if summary is not None:
                            rows[key][device] = summary
                del pipe
    result = [LatencyRow(*key, rows[key]) for key in order]
    return result, devices, latency_table(result, devices)


def latency_table(rows: list[LatencyRow], devices: list[str]) -> str:
    headers = ["model", "torch threads", "what is timed", "projection"]
    for device in devices:
        headers += [f"{DEVICE_LABELS[device]} p50 ms", f"{DEVICE_LABELS[device]} p95 ms"]
    body = []
    for row in rows:
        cells: list[object] = [row.model, row.threads, row.path, row.projection]
        for device in devices:
            summary = row.timings.get(device)
            cells += list(summary.ms()) if summary else ["-", "-"]
        body.append(cells)
    return markdown_table(headers, body)


def target_verdict(rows: list[LatencyRow], cpus: int) -> str:
    """Whether the panel's < 100 ms per update holds on the CPU, one line per thread count: the HTTP
    row of the panel's own request at projection 0.5 (or the nearest measured strength), else the pipe() row."""
    cpu_rows = [r for r in rows if "cpu" in r.timings]
    if not cpu_rows:
        return "Panel target (< 100 ms per update on a 2-core CPU): not checked (no CPU rows)."
    models = list(dict.fromkeys(r.model for r in cpu_rows))
    lines = []
    for model in models:
        for threads in sorted({r.threads for r in cpu_rows if r.model == model}):
            subset = [r for r in cpu_rows if r.model == model and r.threads == threads]
            prefix = f"{model}, " if len(models) > 1 else ""
            lines.append(_verdict_line(subset, cpus, f"{prefix}{threads} torch thread(s)"))
    return "\n".join(f"- {line}" for line in lines)


def _verdict_line(cpu_rows: list[LatencyRow], cpus: int, what: str) -> str:
    def closeness(row: LatencyRow) -> float:
        try:
            return abs(float(row.projection) - 0.5)
        except ValueError:
            return 0.0

    http = [r for r in cpu_rows if r.path.startswith("POST") and PANEL_ROW in r.path]
    pool = http or cpu_rows
    chosen = min(pool, key=closeness)
    p95 = chosen.timings["cpu"].p95 * 1000.0
    met = "MET" if p95 < TARGET_MS else "NOT MET"
    cores = "" if cpus == 2 else f" (this machine has {cpus} usable cores, not 2)"
    return (f"Panel target < {TARGET_MS:.0f} ms per update on a 2-core CPU ({what}): **{met}** — p95 "
            f"{p95:.1f} ms for {chosen.path}, projection {chosen.projection}{cores}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="pipeline folder, run folder or 'default' (repeatable)")
    parser.add_argument("--projections", default="0,0.5,1.0", help="projection strengths (comma-separated)")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per row")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before each row")
    parser.add_argument("--canvas", type=int, default=512, help="panel canvas size for the HTTP rows")
    parser.add_argument("--no-http", action="store_true", help="skip the /api/generate rows")
    parser.add_argument("--device", default="auto", help="auto (CPU, plus a GPU column when CUDA is present) | cpu | cuda")
    parser.add_argument("--threads", default="2", help="torch CPU threads; a list (1,2) repeats every row per value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                        help="what the networks run in (Sketch2AnimePipeline.set_precision; serve uses auto)")
    parser.add_argument("--random", action="store_true",
                        help="measure the random-weight pipeline even when a trained model exists")
    parser.add_argument("--generator-config", default="configs/s2a64.toml",
                        help="architecture of the random-weight pipeline (when no trained model is found)")
    parser.add_argument("--autoencoder-config", default="configs/ae64.toml")
    parser.add_argument("--autoencoder-dir", default=None,
                        help="finished stage-1 run whose autoencoder and bank the random pipeline uses")
    parser.add_argument("--bank-size", type=int, default=DEFAULT_BANK_SIZE,
                        help="synthetic bank size of the random pipeline (default: faces64's training bank)")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    parser.add_argument("--note", action="append", default=[], help="extra line for the doc (repeatable)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1, --warmup >= 0")
    args.threads = parse_threads(args.threads)

    torch.set_num_threads(args.threads[0])
    hardware = describe_hardware(args.threads)
    rows, devices, table = run(args)
    verdict = target_verdict(rows, hardware.cpus)
    print(table)
    print()
    print(verdict)
    if not args.no_write:
        notes = [f"batch 1; {args.warmup} warm-up calls, then {args.repeats} timed calls per row; seed {args.seed}",
                 "projection 0 encodes and decodes but skips the bank search; 0.5 and 1 search the bank "
                 "exactly (k nearest, sum-to-one weights) on the CPU",
                 "HTTP rows go through FastAPI's in-process test client (ASGI, no network socket)",
                 *args.note]
        section = section_text(SECTION, "Inference latency (batch 1)", hardware, command_line(None if argv is None else [__file__, *argv]),
                               table + "\n\n" + verdict, notes)
        print(f"wrote {write_section(Path(args.doc), SECTION, section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
