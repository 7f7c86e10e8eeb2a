"""Training throughput (images/s) of every stage with the real configs, a few dozen steps each.

    python benchmarks/training_throughput.py [--data datasets/faces64] [--steps 30] [--stages ...]

Each stage runs ``python -m sketch2anime.cli train CONFIG --set ...`` (the documented entry point,
in a fresh process so one stage's memory and threads do not leak into the next) into a temporary
run folder, with only the run length, logging cadence, output folder, data root, thread count and
device overridden. images/s is read from the run's ``metrics.jsonl`` (``images_per_s``, one value
per ``--log-every`` window); the first ``--warmup-windows`` windows (allocator, first batches,
DataLoader start-up) are skipped and the rest averaged weighted by their steps.

The generator stage needs a finished stage-1 run (``experiment.autoencoder_dir``): pass
``--autoencoder-dir``, or the autoencoder stage of this same run is used, or (when that stage is
not requested) a 2-step autoencoder is trained first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

from benchmarks.hardware import DEVICE_LABELS, describe_hardware, devices_for, parse_threads
from benchmarks.report import command_line, markdown_table, section_text, write_section
from sketch2anime.training.config import load_experiment

SECTION = "training_throughput"
STAGE_CONFIGS = {
    "autoencoder": "configs/ae64.toml",
    "generator": "configs/s2a64.toml",
    "simple_gan": "configs/simple_gan64.toml",
    "pix2pix": "configs/pix2pix64.toml",
    "cyclegan": "configs/cyclegan64.toml",
}


@dataclass
class StageResult:
    """One stage on one device and thread count."""

    images_per_s: float | None = None
    seconds_per_step: float | None = None
    timed_steps: int = 0
    wall_s: float | None = None
    error: str = ""


@dataclass
class StageRow:
    stage: str
    config: str
    batch_size: int
    threads: int
    results: dict[str, StageResult] = field(default_factory=dict)  # device -> result
    note: str = ""


def read_throughput(metrics_path: Path, batch_size: int, warmup_windows: int) -> StageResult:
    """Step-weighted mean of ``images_per_s`` over the windows after the first ``warmup_windows``."""
    records = []
    for line in Path(metrics_path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short
        if isinstance(record, dict) and record.get("images_per_s"):
            records.append(record)
    records.sort(key=lambda r: r["step"])
    kept: list[tuple[int, float]] = []  # (steps in window, images/s)
    previous = 0
    for position, record in enumerate(records):
        steps = int(record["step"]) - previous
        previous = int(record["step"])
        if position >= warmup_windows and steps > 0:
            kept.append((steps, float(record["images_per_s"])))
    if not kept:
        return StageResult(error=f"no logged window after {warmup_windows} warm-up window(s)")
    total_steps = sum(s for s, _ in kept)
    # Time per window = steps * batch / rate; weighting by time gives total images / total time.
    seconds = sum(s * batch_size / rate for s, rate in kept)
    images_per_s = total_steps * batch_size / seconds
    return StageResult(images_per_s=images_per_s, seconds_per_step=seconds / total_steps, timed_steps=total_steps)


def train_overrides(args: argparse.Namespace, output_dir: Path, device: str, threads: int, steps: int,
                    autoencoder_dir: Path | None) -> list[str]:
    sets = [
        f"train.steps={steps}",
        f"train.log_every={args.log_every}",
        # Samples and checkpoints only at the end, after the last timed window.
        f"train.sample_every={steps}",
        f"train.checkpoint_every={steps}",
        "train.progress=false",
        f"train.threads={threads}",
        f"train.device={device}",
        f"experiment.output_dir={json.dumps(str(output_dir))}",
        f"data.root={json.dumps(str(args.data))}",
    ]
    if args.limit:
        sets.append(f"data.limit={args.limit}")
    if autoencoder_dir is not None:
        sets.append(f"experiment.autoencoder_dir={json.dumps(str(autoencoder_dir))}")
    return sets + list(args.set)


def run_stage(config: str, sets: list[str], log_path: Path, timeout_s: float, threads: int) -> tuple[int, float]:
    """Run one training in a subprocess; returns (exit code, wall seconds). Output goes to ``log_path``."""
    command = [sys.executable, "-m", "sketch2anime.cli", "train", config]
    for item in sets:
        command += ["--set", item]
    env = dict(os.environ)
    # torch.set_num_threads covers intra-op work; these keep OpenMP/MKL pools at the same size.
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        try:
            process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout_s)
            code = process.returncode
        except subprocess.TimeoutExpired:
            code = -1
    return code, time.perf_counter() - start


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run(args: argparse.Namespace, work: Path) -> tuple[list[StageRow], list[str], str]:
    devices = devices_for(args.device)
    rows: list[StageRow] = []
    for threads in args.threads:
        for stage in args.stages:
            config = args.config.get(stage, STAGE_CONFIGS[stage])
            experiment = load_experiment(config)
            rows.append(StageRow(stage, config, experiment.data.batch_size, threads))
    for device in devices:
        for row in rows:
            autoencoder_dir = None
            if row.stage == "generator":
                autoencoder_dir, row.note = _autoencoder_for(args, work, device, row.threads)
            run_dir = work / f"{row.stage}_{device}_t{row.threads}"
            sets = train_overrides(args, run_dir, device, row.threads, args.steps, autoencoder_dir)
            log_path = work / f"{run_dir.name}.log"
            print(f"[{DEVICE_LABELS[device]}, {row.threads} thread(s)] training {row.stage} ({row.config}) "
                  f"for {args.steps} steps ...", flush=True)
            code, wall = run_stage(row.config, sets, log_path, args.timeout_s, row.threads)
            metrics = run_dir / "metrics.jsonl"
            if code != 0 or not metrics.is_file():
                why = "timed out" if code == -1 else f"exit code {code}"
                result = StageResult(wall_s=wall, error=f"failed ({why})")
                print(f"  {result.error}; log {log_path}:\n{_tail(log_path)}", file=sys.stderr, flush=True)
            else:
                result = read_throughput(metrics, row.batch_size, args.warmup_windows)
                result.wall_s = wall
                print(f"  {result.images_per_s or 0:.1f} images/s ({wall:.0f} s wall)", flush=True)
            row.results[device] = result
            if row.stage == "autoencoder" and code == 0:
                # The generator stage of this same run can train on this autoencoder.
                args._trained_autoencoder[(device, row.threads)] = run_dir
    return rows, devices, throughput_table(rows, devices)


def _autoencoder_for(args: argparse.Namespace, work: Path, device: str, threads: int) -> tuple[Path, str]:
    """The stage-1 run the generator stage trains on, and a note saying which it is."""
    if args.autoencoder_dir:
        return Path(args.autoencoder_dir), f"autoencoder_dir {args.autoencoder_dir}"
    trained = args._trained_autoencoder.get((device, threads))
    if trained is not None:
        return trained, f"on this run's {args.steps}-step autoencoder (bank over the {args.limit or 'all'} images used)"
    run_dir = work / f"tiny_autoencoder_{device}_t{threads}"
    sets = train_overrides(args, run_dir, device, threads, 2, None)
    print("  training a 2-step autoencoder for the generator stage ...", flush=True)
    code, _ = run_stage(args.config.get("autoencoder", STAGE_CONFIGS["autoencoder"]), sets,
                        work / f"{run_dir.name}.log", args.timeout_s, threads)
    if code != 0:
        raise SystemExit(f"could not train the autoencoder the generator stage needs; see {work / (run_dir.name + '.log')}")
    args._trained_autoencoder[(device, threads)] = run_dir
    return run_dir, f"on a 2-step autoencoder (bank over the {args.limit or 'all'} images used)"


def throughput_table(rows: list[StageRow], devices: list[str]) -> str:
    headers = ["stage", "config", "batch", "torch threads"]
    for device in devices:
        label = DEVICE_LABELS[device]
        headers += [f"{label} images/s", f"{label} s/step", f"{label} steps timed", f"{label} wall s"]
    headers.append("note")
    body = []
    for row in rows:
        cells: list[object] = [row.stage, f"`{row.config}`", row.batch_size, row.threads]
        for device in devices:
            r = row.results.get(device, StageResult(error="not run"))
            if r.images_per_s is None:
                cells += [r.error or "-", "-", "-", f"{r.wall_s:.0f}" if r.wall_s else "-"]
            else:
                cells += [f"{r.images_per_s:.1f}", f"{r.seconds_per_step:.2f}", r.timed_steps,
                          f"{r.wall_s:.0f}" if r.wall_s else "-"]
        cells.append(row.note)
        body.append(cells)
    return markdown_table(headers, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="datasets/faces64", help="prepared dataset folder (sketch2anime prepare)")
    parser.add_argument("--stages", default=",".join(STAGE_CONFIGS), help="comma-separated stages to run")
    parser.add_argument("--config", action="append", default=[], metavar="STAGE=PATH",
                        help="use another config for a stage (repeatable)")
    parser.add_argument("--steps", type=int, default=30, help="training steps per stage")
    parser.add_argument("--log-every", type=int, default=5, help="steps per images/s window")
    parser.add_argument("--warmup-windows", type=int, default=1, help="leading windows left out")
    parser.add_argument("--limit", type=int, default=1024,
                        help="data.limit: images loaded (in memory) per run; keeps start-up short (0 = all)")
    parser.add_argument("--autoencoder-dir", default=None, help="finished stage-1 run for the generator stage")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override passed to every run (repeatable)")
    parser.add_argument("--device", default="auto", help="auto (CPU, plus a GPU column when CUDA is present) | cpu | cuda")
    parser.add_argument("--threads", default="2", help="torch CPU threads; a list (1,2) repeats every stage")
    parser.add_argument("--timeout-s", type=float, default=1200.0, help="per-stage limit")
    parser.add_argument("--work-dir", default=None, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    parser.add_argument("--note", action="append", default=[], help="extra line for the doc (repeatable)")
    args = parser.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in args.stages if s not in STAGE_CONFIGS]
    if unknown or not args.stages:
        parser.error(f"unknown stage(s) {unknown}; known: {', '.join(STAGE_CONFIGS)}")
    try:
        args.config = dict(item.split("=", 1) for item in args.config)
    except ValueError:
        parser.error("--config takes STAGE=PATH")
    if args.log_every < 1 or args.steps <= args.log_every * args.warmup_windows:
        parser.error("--steps must leave at least one --log-every window after the warm-up windows")
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder (prepare one with `sketch2anime prepare`)")
    args.threads = parse_threads(args.threads)
    args._trained_autoencoder = {}

    hardware = describe_hardware(args.threads)
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        rows, devices, table = run(args, work)
    else:
        work = Path(tempfile.mkdtemp(prefix="s2a_train_bench_"))
        try:
            rows, devices, table = run(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table)
    if not args.no_write:
        notes = [
            f"{args.steps} steps per stage on `{args.data}`"
            + (f" (first {args.limit} training images, `data.limit`)" if args.limit else "")
            + f"; images/s from `metrics.jsonl` windows of {args.log_every} steps, the first "
              f"{args.warmup_windows} left out as warm-up",
            "everything else as in each config (batch size, networks, losses, `data.num_workers`); "
            "wall s includes process start, dataset loading, the final sample grid, checkpoint and export",
            *args.note,
        ]
        section = section_text(SECTION, "Training throughput", hardware, command_line(None if argv is None else [__file__, *argv]), table, notes)
        print(f"wrote {write_section(Path(args.doc), SECTION, section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
