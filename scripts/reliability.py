"""The reliability campaign: bad inputs everywhere, a fuzzer, SIGKILL/resume, a full disk, server load.

    python scripts/reliability.py [--model PATH|default] [--clients 8] [--seconds 20] [--fuzz-runs 20000]
                                  [--kills 6] [--out docs/reliability.md]

Writes ``docs/reliability.md`` (and prints the same tables). Inputs and fault helpers come from
``sketch2anime.testing`` (``bad_inputs``, ``images``, ``training_faults``), which the reliability
tests (tests/test_reliability_*.py) use too, so the report and the test suite try the same things.
Every server started here listens on 127.0.0.1 only, and every loop is bounded in count and time.
Exit code 0 when every check passed, 1 otherwise (the report is written either way).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# ---------------------------------------------------------------------------------------------
# small helpers

class Report:
    """Markdown sections plus a list of pass/fail checks; tables are printed as they are added."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.checks: list[tuple[str, bool, str]] = []

    def text(self, line: str = "") -> None:
        self.parts.append(line)
        print(line, flush=True)

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        self.text("| " + " | ".join(header) + " |")
        self.text("|" + "---|" * len(header))
        for row in rows:
            self.text("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in row) + " |")
        self.text()

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, bool(ok), detail))


def rss_mb(pid: int) -> float:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_http(port: int, request: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send bytes exactly as given (no client-side path normalisation); (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    try:
        status = int(response.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, response.partition(b"\r\n\r\n")[2]


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sketch2anime.cli", *args], cwd=REPO, env=CHILD_ENV,
                          capture_output=True, text=True, timeout=timeout)


class Server:
    """``sketch2anime serve`` in a subprocess on 127.0.0.1 at a free port."""

    def __init__(self, model: Path, log: Path) -> None:
        self.port = free_port()
        self.log_path = log
        self._log = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sketch2anime.cli", "serve", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=REPO, env=CHILD_ENV, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 600) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the server did not come up in time")

    def alive(self) -> bool:
        import httpx

        try:
            return self.process.poll() is None and httpx.get(self.url + "/api/health", timeout=30).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


# ---------------------------------------------------------------------------------------------
# 1. inputs through every entry point

def _api_outcome(call: Callable[[], Any]) -> str:
    from sketch2anime.data.image_io import ImageInputError

    try:
        result = call()
    except ImageInputError as exc:
        return f"error: {exc.reason}"
    except ValueError as exc:
        return f"error: ValueError ({exc})"
    except Exception as exc:  # an untyped failure is what this campaign hunts for
        return f"UNTYPED {type(exc).__name__}: {exc}"
    return f"ok {result.size[0]}x{result.size[1]}"


HTTP_STATUS = {"ok": 200, "empty": 400, "corrupt": 400, "bad_shape": 400, "not_an_image": 415, "too_large": 413}
# export converts a layer from its first frame: these cut GIFs have an intact first frame
EXPORT_STATUS = {"gif_cut_extension": 200, "gif_cut_second_frame": 200}


def inputs_section(report: Report, pipe: Any, model: Path, server: Server, work: Path) -> None:
    import httpx
    import numpy as np

    from sketch2anime.testing.bad_inputs import CASES
    from sketch2anime.testing.images import sketch_png

    files = [c for c in CASES if isinstance(c.data, bytes)]
    src = work / "bad-inputs"
    src.mkdir()
    for case in files:
        (src / f"{case.name}{case.suffix}").write_bytes(case.data)

    prepared = cli("prepare", str(src), str(work / "prepared"), "--extractor", "detail", "--workers", "1",
                   "--val-fraction", "0", "--no-progress")
    prepare_result: dict[str, str] = {}
    if (work / "prepared" / "report.json").exists():
        from sketch2anime.data.manifest import read_manifest

        skipped = json.loads((work / "prepared" / "report.json").read_text()).get("skipped", [])
        prepare_result = {Path(item["source"]).stem: f"skipped: {item['reason']}" for item in skipped}
        prepare_result.update({Path(r.source).stem: "prepared" for r in read_manifest(work / "prepared")})
    report.check("`sketch2anime prepare` on the bad-file folder exits 0 without a traceback",
                 prepared.returncode == 0 and "Traceback" not in prepared.stderr, f"rc {prepared.returncode}")

    generated = cli("generate", str(src), "-o", str(work / "generated"), "--model", str(model), "--seed", "0")
    generate_result = {}
    for line in generated.stderr.splitlines():
        if line.startswith("skipped "):
            message = line.split(": ", 1)[1].replace(f"{src}/", "")
            generate_result[Path(line[len("skipped "):].split(":", 1)[0]).stem] = "skipped: " + message[:70]
    report.check("`sketch2anime generate` on the bad-file folder exits 1 (some skipped) without a traceback",
                 generated.returncode == 1 and "Traceback" not in generated.stderr, f"rc {generated.returncode}")

    white = np.full((32, 32), 255, np.uint8)
    client = httpx.Client(base_url=server.url, timeout=300)
    rows, bad = [], []
    for case in CASES:
        io_outcome = _io_outcome(case.data)
        api = _api_outcome(lambda: pipe(case.data, seed=0))
        api_hint = _api_outcome(lambda: pipe(white, hint=case.data, seed=0))
        row = [case.name, case.what, case.expect, io_outcome, api, api_hint]
        if isinstance(case.data, bytes):
            prep = prepare_result.get(case.name, "not accounted for")
            gen = generate_result.get(case.name, "wrote" if (work / "generated" / f"{case.name}.png").exists() else "?")
            if prep != ("prepared" if case.expect == "ok" else f"skipped: {case.expect}"):
                bad.append(f"{case.name}: prepare {prep}")
            if (gen == "wrote") != (case.expect == "ok"):
                bad.append(f"{case.name}: generate {gen}")
            sketch = client.post("/api/generate?format=png", files={"sketch": ("s" + case.suffix, case.data, "image/png")})
            hint = client.post("/api/generate?format=png", files={"sketch": ("s.png", sketch_png(64), "image/png"),
                                                                  "hint": ("h" + case.suffix, case.data, "image/png")})
            export = client.post("/api/export", files={"sketch": ("s" + case.suffix, case.data, "image/png")})
            statuses = [sketch.status_code, hint.status_code, export.status_code]
            row += [prep, gen, *statuses]
            expected = [HTTP_STATUS[case.expect]] * 2 + [EXPORT_STATUS.get(case.name, HTTP_STATUS[case.expect])]
            if statuses != expected:
                bad.append(f"{case.name}: HTTP {statuses}, expected {expected}")
        else:
            row += ["—"] * 5
        expected_api = "ok" if case.expect == "ok" else f"error: {case.expect}"
        if not io_outcome == case.expect or not api.startswith(expected_api) or "UNTYPED" in api + api_hint:
            bad.append(f"{case.name}: image_io {io_outcome}, API {api}")
        rows.append(row)
    client.close()
    report.text("## Inputs tried")
    report.text(f"{len(CASES)} named inputs ({len(files)} files, {len(CASES) - len(files)} numpy arrays) through "
                "`image_io.load_rgb`, the Python API (`Sketch2AnimePipeline.__call__` as sketch and as hint), "
                "`sketch2anime prepare` and `sketch2anime generate` on a folder of them, and the HTTP API of a "
                "real `sketch2anime serve` (`/api/generate` as sketch and as hint, `/api/export`). "
                "Arrays have no file form, so only the Python API sees them.")
    report.text()
    report.table(["input", "what", "expected", "image_io", "Python API (sketch)", "Python API (hint)", "prepare",
                  "generate CLI", "HTTP sketch", "HTTP hint", "HTTP export"], rows)
    report.text("`/api/export` bundles the user's own layers: PNG layers are decoded once (a truncated PNG is "
                "refused) and stored as sent, other formats are converted from their first frame (which decodes for "
                "the two cut GIFs, hence 200 there). Every HTTP status is compared with the expected one.")
    report.text()
    report.check("every named input gives its expected outcome at every entry point, no untyped error, no 5xx",
                 not bad, "; ".join(bad))


def _io_outcome(data: Any) -> str:
    from sketch2anime.testing.bad_inputs import outcome
    from sketch2anime.data.image_io import load_rgb

    try:
        return outcome(load_rgb, data)
    except Exception as exc:
        return f"UNTYPED {type(exc).__name__}"


# ---------------------------------------------------------------------------------------------
# 2. the fuzzer

def fuzz_worker(runs: int, corpus: Path, stats_path: Path, seed: int) -> None:
    """Runs inside a child process: atheris over image_io's decoder and the server's header check."""
    import warnings

    import importlib

    import atheris

    for heavy in ("numpy", "torch", "fastapi"):  # imported before instrumentation: only PIL and sketch2anime are traced
        importlib.import_module(heavy)
    warnings.simplefilter("ignore")
    with atheris.instrument_imports(include=["PIL", "sketch2anime"]):
        from fastapi import HTTPException

        from sketch2anime.data.image_io import ImageInputError, load_rgb
        from sketch2anime.server.api import _check_image_header

    counts: dict[str, Any] = {"runs": 0, "ok": 0, "typed": {}, "http": {}, "slowest_cpu_s": 0.0}

    def target(data: bytes) -> None:
        started = time.process_time()
        try:
            load_rgb(data)
            counts["ok"] += 1
        except ImageInputError as exc:
            counts["typed"][exc.reason] = counts["typed"].get(exc.reason, 0) + 1
        try:
            _check_image_header(data, "the sketch")
            status = 200
        except HTTPException as exc:
            status = exc.status_code
        if status >= 500:
            raise AssertionError(f"header check answered {status}")
        counts["http"][str(status)] = counts["http"].get(str(status), 0) + 1
        counts["runs"] += 1
        counts["slowest_cpu_s"] = max(counts["slowest_cpu_s"], time.process_time() - started)
        if counts["runs"] % 50 == 0:
            stats_path.write_text(json.dumps(counts))

    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=65536", "-timeout=60", "-rss_limit_mb=4096",
                   f"-seed={seed}", f"-artifact_prefix={corpus.parent}/", "-print_final_stats=1", str(corpus)], target)
    atheris.Fuzz()


def fuzz_section(report: Report, runs: int, work: Path, seed: int) -> None:
    import re

    from sketch2anime.testing.bad_inputs import CASES, REGRESSIONS, SEED_FILES

    report.text("## Fuzzing the decoder")
    import importlib.util

    if importlib.util.find_spec("atheris") is None:
        report.text("Skipped: atheris is not installed (`pip install -e .[fuzz]`).")
        report.text()
        report.check("atheris fuzz run", True, "skipped (atheris not installed)")
        return
    corpus = work / "fuzz" / "corpus"
    corpus.mkdir(parents=True)
    seeds = SEED_FILES + list(REGRESSIONS.values()) + [c.data for c in CASES if isinstance(c.data, bytes)
                                                      and len(c.data) <= 65536]
    for index, data in enumerate(seeds):
        (corpus / f"seed_{index:03d}").write_bytes(data)
    stats = work / "fuzz" / "stats.json"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fuzz-worker", str(runs), str(corpus),
                           str(stats), str(seed)], cwd=REPO, env=CHILD_ENV, capture_output=True, text=True,
                          timeout=max(900, runs // 5))
    wall = time.monotonic() - started
    log = done.stdout + done.stderr
    (work / "fuzz" / "log.txt").write_text(log)
    counts = json.loads(stats.read_text()) if stats.exists() else {}
    finished = re.findall(r"Done (\d+) runs in (\d+) second", log)
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", log)
    crashes = sorted(p.name for p in (work / "fuzz").glob("crash-*"))
    crash_text = log[log.find("=== Uncaught"):][:600] if "Uncaught" in log else ""
    report.text(f"atheris (libFuzzer) over `image_io.load_rgb` and the server's `_check_image_header`, "
                f"PIL and sketch2anime instrumented, started from {len(seeds)} seed files (valid files in 15 "
                "formats and modes plus the named bad inputs), max input 64 KiB, seed "
                f"{seed}. A crash = any exception other than `ImageInputError` / a 4xx `HTTPException`.")
    report.text()
    report.table(["runs asked", "runs done", "wall s", "coverage (edges / features)", "decoded ok",
                  "typed errors by reason", "header-check statuses", "slowest input (CPU s)", "crashes"], [[
        runs, finished[-1][0] if finished else counts.get("runs", "?"), round(wall),
        f"{coverage[-1][0]} / {coverage[-1][1]}" if coverage else "?", counts.get("ok", "?"),
        ", ".join(f"{k} {v}" for k, v in sorted(counts.get("typed", {}).items())),
        ", ".join(f"{k}: {v}" for k, v in sorted(counts.get("http", {}).items())),
        round(counts.get("slowest_cpu_s", float("nan")), 3), len(crashes)]])
    if crash_text:
        report.text("```\n" + crash_text + "\n```")
    report.check(f"atheris: {runs} runs, no crash", done.returncode == 0 and not crashes and bool(finished),
                 crash_text[:200] or f"rc {done.returncode}")


# ---------------------------------------------------------------------------------------------
# 3. training faults

def training_section(report: Report, kills: int, seed: int, work: Path) -> None:
    import pytest

    import torch

    from sketch2anime.testing.training_faults import (disk_full_fault, final_tensors, kill_resume_campaign,
                                                      make_tiny_dataset, metrics_without_timing, train_command)

    dataset = make_tiny_dataset(work / "train-data")
    steps, every = 40, 4
    campaign = kill_resume_campaign(dataset, work / "killed", kills=kills, seed=seed, steps=steps, every=every)
    subprocess.run(train_command(dataset, work / "uninterrupted", steps, every, resume=False), cwd=REPO,
                   env=CHILD_ENV, capture_output=True, timeout=900)
    expected, got = final_tensors(work / "uninterrupted"), final_tensors(work / "killed")
    identical = expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected) \
        and metrics_without_timing(work / "uninterrupted") == metrics_without_timing(work / "killed")
    report.text("## SIGKILL during training, then `--resume`")
    report.text(f"`python -m sketch2anime.cli train configs/test_autoencoder.toml` ({steps} steps, "
                f"checkpoint_every {every}, train.threads=1) killed with SIGKILL {len(campaign.kills)} times at "
                f"seeded random moments (seed {seed}: about 1 in 5 during start-up, the rest a random 0-0.25 s after "
                "a random step), each restart with `--resume`, then resumed to the end. After every kill every "
                "`.safetensors` and `.json` file under the run folder was loaded.")
    report.text()
    rows = [[i + 1, k.target_step or "start-up", k.delay_s, k.seen_step, k.before, k.after, k.lost, k.files_loaded,
             "finished first" if k.finished else "killed"] for i, k in enumerate(campaign.kills)]
    report.table(["kill", "after step", "delay s", "last step logged", "state before", "state after",
                  "steps lost", "files loaded", "result"], rows)
    worst = max((k.lost for k in campaign.kills), default=0)
    report.text(f"Final resume: exit {campaign.final_rc}, state at step {campaign.final_step}, "
                f"{len(campaign.final_logged)} metric lines ({'steps 1..%d once each' % steps if campaign.final_logged == list(range(1, steps + 1)) else 'NOT 1..N'}), "
                f"worst loss at a kill {worst} steps (limit {every}), leftover temporary files "
                f"{len(campaign.temporary_files)}; campaign took {campaign.seconds} s. Final training state "
                f"({len(got)} tensors: weights, EMA, optimiser moments) and metrics "
                f"{'are bit-identical to' if identical else 'DIFFER from'} an uninterrupted run of the same config.")
    report.text()
    report.check("killed-and-resumed run is bit-identical to an uninterrupted run", identical)
    report.check("SIGKILL campaign: every checkpoint loads, loss <= checkpoint_every, resume completes, no temp files left",
                 campaign.final_rc == 0 and campaign.final_step == steps and campaign.final_logged == list(
                     range(1, steps + 1)) and worst <= every and all(k.after >= k.before for k in campaign.kills)
                 and not campaign.temporary_files,
                 f"worst loss {worst}")

    report.text("## Disk full during a checkpoint")
    rows = []
    for fault in ("tensors", "index"):
        with pytest.MonkeyPatch.context() as monkeypatch:
            result = disk_full_fault(dataset, work, fault, monkeypatch)
        ok = (result["fired"] == 1 and result["state_step"] == 3 and result["previous_files_intact"]
              and not result["temporary_files"] and result["resumed_equals_uninterrupted"])
        rows.append([fault, result["error"], result["state_step"], result["previous_files_intact"],
                     ", ".join(result["extra_files"]) or "none", len(result["temporary_files"]),
                     result["resumed_step"], result["resumed_equals_uninterrupted"]])
        report.check(f"disk full while writing the {fault} file keeps the previous checkpoint", ok)
    report.text("In-process training (6 steps, checkpoint every 3); the write of the second checkpoint's tensors "
                "file (safetensors writer) or of its JSON index (`atomic_write_bytes`) writes half its bytes and "
                "raises `OSError(ENOSPC)`.")
    report.text()
    report.table(["failed write", "error", "state step after", "step-3 files intact", "extra files",
                  "temp files left", "resumed to", "resumed == uninterrupted"], rows)


# ---------------------------------------------------------------------------------------------
# 4. the server under load, limits, slow clients, path traversal

def load_section(report: Report, server: Server, clients: int, seconds: float) -> None:
    import httpx

    from sketch2anime.testing.images import hint_png, sketch_png

    sketch, hint = sketch_png(128), hint_png((220, 40, 40), size=128)
    mix = [("generate", 6), ("generate+hint", 2), ("variations", 1), ("models", 1), ("bad upload", 1)]
    kinds = [k for k, w in mix for _ in range(w)]
    results: list[tuple[str, int, float]] = []
    lock = threading.Lock()
    cap = clients * int(seconds) * 100  # a hard bound on the request count
    deadline = time.monotonic() + seconds

    def one(client: httpx.Client, kind: str, rng: random.Random) -> tuple[int, int]:
        seed = str(rng.randrange(2**32))
        if kind == "models":
            return 200, client.get("/api/models").status_code
        if kind == "bad upload":
            return 415, client.post("/api/generate", files={"sketch": ("x.png", b"not a png" * 50, "image/png")}).status_code
        if kind == "variations":
            return 200, client.post("/api/variations", files={"sketch": ("s.png", sketch, "image/png")},
                                    data={"count": "2", "seed": seed}).status_code
        files = {"sketch": ("s.png", sketch, "image/png")}
        if kind == "generate+hint":
            files["hint"] = ("h.png", hint, "image/png")
        return 200, client.post("/api/generate?format=png", files=files, data={"seed": seed}).status_code

    def worker(index: int) -> None:
        rng = random.Random(index)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while time.monotonic() < deadline and len(results) < cap:
                kind = rng.choice(kinds)
                started = time.perf_counter()
                try:
                    expected, status = one(client, kind, rng)
                except httpx.HTTPError as exc:
                    expected, status = -1, 0
                    kind = f"{kind} ({type(exc).__name__})"
                with lock:
                    results.append((kind if status == expected else f"ERROR {kind}", status,
                                    time.perf_counter() - started))

    pid = server.process.pid
    with httpx.Client(base_url=server.url, timeout=120) as warm:
        for _ in range(3):
            warm.post("/api/generate?format=png", files={"sketch": ("s.png", sketch, "image/png")})
    rss_start = rss_mb(pid)
    samples = [rss_start]
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        samples.append(rss_mb(pid))
    rss_end = rss_mb(pid)
    errors = [r for r in results if r[0].startswith("ERROR")]
    statuses: dict[int, int] = {}
    for _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = [r[2] * 1000 for r in results if not r[0].startswith("ERROR")]
    generate_ms = [r[2] * 1000 for r in results if r[0] == "generate"]
    growth = rss_end - rss_start
    rss_mid = samples[len(samples) // 2]
    late_growth = rss_end - rss_mid  # warm-up (thread stacks, allocator arenas) is over by half-time
    report.text("## Server under load")
    report.text(f"`sketch2anime serve` on 127.0.0.1:{server.port} (a subprocess, 1 torch thread); {clients} client "
                f"threads (httpx, one connection each) for {seconds:g} s, bounded at {cap} requests. Mix: "
                + ", ".join(f"{k} {w}/11" for k, w in mix) + " (128x128 sketch PNG; the bad upload must get 415).")
    report.text()
    report.table(["requests", "errors", "status counts", "req/s", "p50 ms", "p99 ms", "generate p50 / p99 ms",
                  "server RSS start MB", "half-time MB", "end MB", "max MB"], [[
        len(results), len(errors), ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
        round(len(results) / seconds, 1), round(percentile(latencies, 50)), round(percentile(latencies, 99)),
        f"{round(percentile(generate_ms, 50))} / {round(percentile(generate_ms, 99))}",
        round(rss_start, 1), round(rss_mid, 1), round(rss_end, 1), round(max(samples), 1)]])
    report.check(f"load: {len(results)} requests from {clients} clients, zero errors, no 5xx",
                 results and not errors and not any(s >= 500 for s in statuses), f"{len(errors)} errors")
    report.check("load: server memory flat (second half +<16 MB, whole run +<64 MB)", late_growth < 16 and growth < 64,
                 f"{growth:+.1f} MB in all, {late_growth:+.1f} MB in the second half")


def limits_section(report: Report, server: Server) -> None:
    import httpx

    from sketch2anime.server.api import MAX_UPLOAD_BYTES

    def status(call: Callable[[], Any]) -> int | str:
        # Refusing a body early may close the socket while the client still sends: also a refusal.
        try:
            return call().status_code
        except httpx.HTTPError as exc:
            return f"closed ({type(exc).__name__})"

    def chunks():
        yield (b'--x\r\nContent-Disposition: form-data; name="sketch"; filename="s.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(40):
            yield bytes(2**20)

    big_file = b"\x89PNG\r\n\x1a\n" + bytes(MAX_UPLOAD_BYTES + 10)
    with httpx.Client(base_url=server.url, timeout=300) as client:
        rows = [
            ["one upload of 8 MiB + 18 B", 413,
             status(lambda: client.post("/api/generate", files={"sketch": ("s.png", big_file, "image/png")}))],
            ["40 MiB body (declared length)", 413,
             status(lambda: client.post("/api/generate", content=bytes(40 * 2**20),
                                        headers={"content-type": "application/octet-stream"}))],
            ["40 MiB chunked body (no length)", 413,
             status(lambda: client.post("/api/generate", content=chunks(),
                                        headers={"content-type": "multipart/form-data; boundary=x"}))],
            ["settings field of 5000 chars on /api/export", 422,
             status(lambda: client.post("/api/export", files={"sketch": ("s.png", _tiny_png(), "image/png")},
                                        data={"settings": "x" * 5000}))],
        ]
    report.text("## Request-size limits")
    report.table(["request", "expected", "got"], rows)
    report.check("request-size limits answer 413/422 (or close the connection)",
                 all(r[1] == r[2] or (r[1] == 413 and str(r[2]).startswith("closed")) for r in rows),
                 "; ".join(f"{r[0]}: {r[2]}" for r in rows if r[1] != r[2]))


def _tiny_png() -> bytes:
    from sketch2anime.testing.images import sketch_png

    return sketch_png(64)


def slow_client_section(report: Report, server: Server, trickle_s: float = 10.0) -> None:
    import httpx

    from sketch2anime.testing.images import sketch_png

    body_file = sketch_png(256)
    boundary = "slowboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"sketch\"; filename=\"s.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + body_file + f"\r\n--{boundary}--\r\n".encode()

    def timed_requests(count: int) -> list[float]:
        out = []
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for _ in range(count):
                started = time.perf_counter()
                status = client.post("/api/generate?format=png", files={"sketch": ("s.png", _tiny_png(), "image/png")}).status_code
                out.append((time.perf_counter() - started) * 1000 if status == 200 else float("inf"))
        return out

    baseline = timed_requests(10)
    stop = threading.Event()
    slow_status: list[int] = []

    def slow_body() -> None:  # one client trickles a whole multipart body over trickle_s seconds
        with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
            sock.sendall((f"POST /api/generate?format=png HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                          f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())
            step = max(1, len(body) // int(trickle_s / 0.1))
            for start in range(0, len(body), step):
                sock.sendall(body[start:start + step])
                time.sleep(0.1)
            data = sock.recv(64)
            slow_status.append(int(data.split(b" ")[1]) if data.startswith(b"HTTP/") else 0)

    def slow_headers(sock: socket.socket) -> None:  # slowloris: headers one byte at a time until told to stop
        request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 10_000
        for byte in request:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(20)]
    threads = [threading.Thread(target=slow_body, daemon=True)]
    threads += [threading.Thread(target=slow_headers, args=(s,), daemon=True) for s in sockets]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    during = timed_requests(10)
    threads[0].join(timeout=trickle_s + 120)
    stop.set()
    for sock in sockets:
        sock.close()
    report.text("## Slow clients")
    report.text(f"One client trickles a {len(body)} B multipart body over {trickle_s:g} s and 20 more send their "
                "headers one byte every 50 ms, while another client makes 10 ordinary generate requests.")
    report.text()
    report.table(["", "p50 ms", "max ms", "all 200"], [
        ["without slow clients", round(percentile(baseline, 50)), round(max(baseline)), all(v != float("inf") for v in baseline)],
        ["with slow clients", round(percentile(during, 50)), round(max(during)), all(v != float("inf") for v in during)],
    ])
    report.text(f"The trickled request itself got HTTP {slow_status[0] if slow_status else 'no answer'}.")
    report.text()
    ok = all(v != float("inf") for v in during) and max(during) < max(10 * max(baseline), 5000)
    report.check("a slow client does not block the others", ok and slow_status == [200],
                 f"max {max(during):.0f} ms vs {max(baseline):.0f} ms; slow request {slow_status}")


TRAVERSALS = ["/static/../app.py", "/static/..%2fapi.py", "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
              "/static/..%5c..%5capp.py", "/static/%2fetc%2fpasswd", "/static//etc/passwd", "/static/....//app.py",
              "/static/.%2e/.%2e/.%2e/.%2e/etc/passwd", "/static/%252e%252e%252fapp.py", "/static/index.html%00.py",
              "/static/__init__.py", "/static/app.py", "/%2e%2e/%2e%2e/etc/passwd", "/../../../../etc/passwd",
              "/static/..;/app.py", "/static/%c0%ae%c0%ae/app.py", "/api/../server/app.py", "/static/",
              "//etc/passwd", "/static/app.js/../../app.py", "/app.py", "/etc/passwd", "/proc/self/environ"]
_SECRETS = (b"root:x:0", b"from __future__", b"[build-system]", b"import ", b"PATH=")


def traversal_section(report: Report, server: Server) -> None:
    rows, bad = [], []
    for path in TRAVERSALS:
        status, body = raw_http(server.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        leaked = [s.decode() for s in _SECRETS if s in body]
        rows.append([f"`{path}`", status, len(body), ", ".join(leaked) or "no"])
        if status == 200 or status >= 500 or status == 0 or leaked:
            bad.append(f"{path} -> {status}")
    report.text("## Path traversal on the routes that serve files")
    report.text("Raw HTTP requests (the path sent byte for byte, no client normalisation) to `/` and `/static/{name}`.")
    report.text()
    report.table(["path", "status", "body bytes", "file content leaked"], rows)
    report.check("no path traversal: every attempt 4xx, nothing leaked", not bad, "; ".join(bad))


# ---------------------------------------------------------------------------------------------
# main

# ---------------------------------------------------------------------------------------------
# 5. second campaign (issue 16): work bombs, amplification, deep JSON, foreign pages, formats,
#    descriptor shortage, output collisions


class PeakRss:
    """Sample a process's RSS every 10 ms while a request runs: peak over the start, in MB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> "PeakRss":
        self.start = rss_mb(self.pid)
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.01)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.start


def _png(size: tuple[int, int], mode: str = "1", colour: Any = 1) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _foreign_format(fmt: str) -> bytes:
    import io

    from PIL import Image

    if fmt == "EPS":
        return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nnewpath 0 0 moveto 16 16 lineto stroke\n"
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, fmt)
    return buffer.getvalue()


def attack_section(report: Report, server: Server) -> list[tuple[str, int, int, float, float]]:
    """One row per hostile request: (kind, expected, status, seconds, peak RSS growth MB)."""
    import httpx

    from sketch2anime.server.api import MAX_VARIATION_PIXELS
    from sketch2anime.testing.images import sketch_png

    s64 = sketch_png(64)
    deep = '{"a":' + "[" * 1000 + "]" * 1000 + "}"
    strip, sliver, square = _png((20000, 400)), _png((44700, 894)), _png((4096, 4096))
    attacks: list[tuple[str, str, int, Callable[[httpx.Client], httpx.Response]]] = [
        ("work bomb", "20000x400 1-bit PNG, output_size=model", 200,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", strip, "image/png")}, data={"output_size": "model"})),
        ("work bomb", "20000x400 1-bit PNG, output_size=input", 200,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", strip, "image/png")})),
        ("work bomb", "44700x894 1-bit PNG (7 KB, 40 MP: over the server's 4096² bound)", 413,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", sliver, "image/png")}, data={"output_size": "model"})),
        ("work bomb", "4096x4096 1-bit PNG (the largest accepted), output_size=input", 200,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", square, "image/png")})),
        ("work bomb", "64 px sketch + 4096x4096 RGBA hint", 200,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", s64, "image/png"),
                                                  "hint": ("h.png", _png((4096, 4096), "RGBA", (0, 0, 0, 0)), "image/png")})),
        ("work bomb", "6300x6300 1-bit PNG (12 KB, over the server's 4096² bound)", 413,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", _png((6300, 6300)), "image/png")})),
        ("variation amplification", "4096x4096 PNG, count=8, output_size=input", 200,
         lambda c: c.post("/api/variations", files={"sketch": ("s.png", square, "image/png")}, data={"count": "8"})),
        ("variation amplification", "strip 20000x400, count=8, output_size=input", 200,
         lambda c: c.post("/api/variations", files={"sketch": ("s.png", strip, "image/png")}, data={"count": "8"})),
        ("deep JSON", "export settings nested 1000 deep", 400,
         lambda c: c.post("/api/export", files={"sketch": ("s.png", s64, "image/png")}, data={"settings": deep})),
        ("deep JSON", "export settings nested 40 deep", 400,
         lambda c: c.post("/api/export", files={"sketch": ("s.png", s64, "image/png")},
                          data={"settings": '{"a":' + "[" * 40 + "]" * 40 + "}"})),
        ("foreign Host", "GET /api/health, Host: evil.example", 400,
         lambda c: c.get("/api/health", headers={"Host": "evil.example"})),
        ("foreign Host", "POST /api/generate, Host: evil.example:7860 (DNS rebinding)", 400,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", s64, "image/png")},
                          headers={"Host": "evil.example:7860"})),
        ("cross-origin", "POST /api/generate, Origin: http://evil.example", 403,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", s64, "image/png")},
                          headers={"Origin": "http://evil.example"})),
        ("cross-origin", "POST /api/export, Origin: null", 403,
         lambda c: c.post("/api/export", files={"sketch": ("s.png", s64, "image/png")}, headers={"Origin": "null"})),
        ("cross-origin", "POST /api/variations, Sec-Fetch-Site: cross-site", 403,
         lambda c: c.post("/api/variations", files={"sketch": ("s.png", s64, "image/png")},
                          headers={"Sec-Fetch-Site": "cross-site"})),
        ("same origin", "POST /api/generate, Origin = the server's own", 200,
         lambda c: c.post("/api/generate", files={"sketch": ("s.png", s64, "image/png")},
                          headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin"})),
    ]
    for fmt in ("EPS", "PCX", "ICO", "TGA", "SGI"):
        data = _foreign_format(fmt)
        attacks.append(("format outside the allow-list", f"{fmt} as the sketch", 415,
                        lambda c, data=data: c.post("/api/generate", files={"sketch": ("s.png", data, "image/png")})))
        attacks.append(("format outside the allow-list", f"{fmt} as an export layer", 415,
                        lambda c, data=data: c.post("/api/export", files={"sketch": ("s.png", s64, "image/png"),
                                                                           "result": ("r.png", data, "image/png")})))
    rows, results, bad = [], [], []
    with httpx.Client(base_url=server.url, timeout=300) as client:
        for kind, what, expected, call in attacks:
            started = time.perf_counter()
            with PeakRss(server.process.pid) as rss:
                try:
                    response = call(client)
                    status, size = response.status_code, len(response.content)
                except httpx.HTTPError as exc:
                    status, size = 0, 0
                    what += f" ({type(exc).__name__})"
            seconds = time.perf_counter() - started
            results.append((kind, expected, status, seconds, rss.growth))
            extra = ""
            if kind == "variation amplification" and status == 200:
                extra = f"{len(response.json()['images'])} images"
            rows.append([kind, what, expected, status, f"{seconds:.2f}", f"{rss.growth:+.0f}", size, extra])
            if status != expected:
                bad.append(f"{what}: {status}")
    from sketch2anime.server import api, guard

    report.text("## Second campaign: hostile requests against the shipped model")
    report.text("What bounds one request, whatever it sends below the upload limit: each file at most "
                f"{api.MAX_UPLOAD_BYTES // 2**20} MB and {api.MAX_IMAGE_PIXELS:,} decoded pixels (aspect up to "
                f"{api.MAX_ASPECT:g}:1; checked from the header before decoding); the sketch is shrunk to the model's "
                "square before any padding and the hint to at most 1024 px; a result is at most "
                f"{api.MAX_OUTPUT_SIDE} px on its long side and all variations of one request at most "
                f"{MAX_VARIATION_PIXELS:,} pixels ({api.MAX_VARIATIONS} at most); settings JSON at most "
                f"{api.MAX_SETTINGS_DEPTH} levels deep. A connection gets {guard.HEADER_TIMEOUT:g} s for its headers "
                f"and {guard.BODY_TIMEOUT:g} s for its body; at most {guard.MAX_CONNECTIONS} are open (fewer under a "
                "low descriptor limit), the longest-idle one is closed for a new one. Model calls run one at a "
                "time per model, so memory does not add up over concurrent requests.")
    report.text()
    report.text("Each request below ran once against the server above, its RSS sampled every 10 ms (peak over the "
                "RSS before the request).")
    report.text()
    report.table(["kind", "request", "expected", "got", "s", "peak RSS +MB", "response bytes", ""], rows)
    report.check("second campaign: every hostile request gets its expected status (no 5xx)", not bad, "; ".join(bad))
    worst = max(results, key=lambda r: r[3])
    report.check("second campaign: every request within 30 s and +1 GB RSS",
                 all(r[3] < 30 and r[4] < 1024 for r in results),
                 f"worst time {worst[3]:.1f} s ({worst[0]}), worst RSS {max(r[4] for r in results):+.0f} MB")
    return results


def per_kind_table(report: Report, results: list[tuple[str, int, int, float, float]]) -> None:
    kinds: dict[str, list[tuple[str, int, int, float, float]]] = {}
    for row in results:
        kinds.setdefault(row[0], []).append(row)
    rows = [[kind, len(items), sum(400 <= r[2] < 500 for r in items), sum(r[2] >= 500 for r in items),
             f"{max(r[3] for r in items):.2f}", f"{max(r[4] for r in items):+.0f}"] for kind, items in kinds.items()]
    report.text("Per kind:")
    report.text()
    report.table(["kind", "requests", "4xx", "5xx", "worst s", "worst peak RSS +MB"], rows)


def descriptor_section(report: Report, model: Path, work: Path, connections: int = 300) -> None:
    """The issue's reproduction: serve under a 256-descriptor limit, 300 connections holding partial headers."""
    import httpx
    import resource

    port = free_port()
    log_path = work / "serve-nofile.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sketch2anime.cli", "serve", "--model", str(model), "--port",
                                    str(port)], cwd=REPO, env=CHILD_ENV, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=limit)
    url = f"http://127.0.0.1:{port}/api/health"
    latencies, statuses, sockets = [], [], []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sockets.append(sock)
        held_until = time.monotonic() + 12  # past the 10 s header deadline
        while time.monotonic() < held_until:
            started = time.perf_counter()
            try:
                statuses.append(httpx.get(url, timeout=5).status_code)
            except httpx.HTTPError as exc:
                statuses.append(type(exc).__name__)
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.25)
        closed = 0
        for sock in sockets:  # a 408 or EOF: the server closed it; a timeout: still open
            sock.settimeout(0.05)
            try:
                sock.recv(64)
                closed += 1
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        alive = process.poll() is None
    finally:
        for sock in sockets:
            sock.close()
        process.terminate()
        process.wait(30)
    log_bytes = log_path.stat().st_size
    text = log_path.read_text(errors="replace")
    ok_count = sum(s == 200 for s in statuses)
    report.text("## Slow headers under a descriptor limit")
    report.text(f"`sketch2anime serve` with RLIMIT_NOFILE 256 (as `prlimit --nofile=256:256`); {connections} "
                "connections send a partial header and stop, for 12 s; meanwhile a client asks /api/health every 250 ms.")
    report.text()
    report.table(["health requests", "200", "p50 ms", "max ms", "slow connections closed by the server",
                  "server alive", "log bytes", "'Too many open files' lines"],
                 [[len(statuses), ok_count, round(percentile(latencies, 50)), round(max(latencies or [0])), closed,
                   alive, log_bytes, text.count("Too many open files")]])
    report.check("descriptor limit: health answers during 300 slow connections, log under 20 KB",
                 alive and ok_count == len(statuses) and log_bytes < 20_000,
                 f"{ok_count}/{len(statuses)} health 200, max {max(latencies or [0]):.0f} ms, log {log_bytes} B")


def collisions_section(report: Report, model: Path, work: Path) -> None:
    from sketch2anime.testing.images import draw_square as draw

    rows, bad = [], []

    def case(name: str, setup: Callable[[Path], list[str]], expect_rc: int, expect: str) -> None:
        folder = work / "collisions" / f"case{len(rows)}"
        folder.mkdir(parents=True)
        argv = setup(folder)
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        done = cli("generate", *argv, "--model", str(model), "--seed", "0", "--device", "cpu")
        inputs_kept = all(p.read_bytes() == data for p, data in before.items() if "in" in p.parts)
        message = (done.stderr.strip().splitlines() or [""])[-1].replace(f"{folder}/", "")[:120]
        written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p not in before)
        rows.append([name, done.returncode, ", ".join(written) or "—", message, inputs_kept])
        if done.returncode != expect_rc or not inputs_kept or expect not in done.stderr + " ".join(written):
            bad.append(name)

    def same_stem(folder: Path) -> list[str]:
        draw(folder / "in" / "face.jpg"), draw(folder / "in" / "face.png", 120)
        return [str(folder / "in"), "-o", str(folder / "out")]

    def into_itself(folder: Path) -> list[str]:
        draw(folder / "in" / "face.png")
        return [str(folder / "in"), "-o", str(folder / "in")]

    def over_input(folder: Path) -> list[str]:
        draw(folder / "in" / "face.png")
        return [str(folder / "in" / "face.png"), "-o", str(folder / "in" / "face.png"), "--overwrite"]

    def projected_name(folder: Path) -> list[str]:
        draw(folder / "in" / "face.png"), draw(folder / "in" / "face_projected.png")
        return [str(folder / "in"), "-o", str(folder / "out"), "--save-projected"]

    def earlier_result(folder: Path) -> list[str]:
        draw(folder / "in" / "face.png")
        (folder / "out").mkdir()
        (folder / "out" / "face.png").write_bytes(b"earlier")
        return [str(folder / "in"), "-o", str(folder / "out")]

    case("face.jpg + face.png in one folder", same_stem, 0, "face_jpg.png")
    case("generate dir -o dir", into_itself, 2, "inside the sketch folder")
    case("-o the input file itself (even with --overwrite)", over_input, 2, "never overwrites an input")
    case("face_projected.png next to face.png, --save-projected", projected_name, 2, "two results")
    case("an earlier result in the output folder, no --overwrite", earlier_result, 2, "--overwrite")
    report.text("## Output collisions in `sketch2anime generate`")
    report.table(["case", "exit", "files written", "last message", "inputs unchanged"], rows)
    report.check("generate never overwrites an input and refuses or renames colliding outputs", not bad, ", ".join(bad))


def _tampered_copy(model: Path, folder: Path) -> Path:
    """A copy of ``model`` whose files are hard links: a case replaces a file, never writes into it."""
    import shutil

    shutil.copytree(model, folder, copy_function=os.link)
    return folder


def _replace_json(path: Path, change: Callable[[Any], Any]) -> None:
    data = json.loads(path.read_text())
    data = change(data) or data
    path.unlink()  # a hard link to the shipped file: never edit it in place
    path.write_text(json.dumps(data))


def _nan_weights(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key].clone().fill_(float("nan"))
    path.unlink()
    save_file(tensors, str(path))


def tampered_models_section(report: Report, model: Path, work: Path) -> None:
    """``sketch2anime generate`` on copies of the model with one file tampered: each must exit with a
    message naming the file, without a traceback, a picture, or a big allocation."""
    from sketch2anime.testing.images import draw_square as draw

    sketch = work / "tampered-sketch.png"
    draw(sketch)

    def pipeline_json(change: Callable[[Any], Any]) -> Callable[[Path], None]:
        return lambda folder: _replace_json(folder / "pipeline.json", change)

    def model_config(part: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
        return lambda folder: _replace_json(folder / part / "config.json", change)

    cases: list[tuple[str, Callable[[Path], None], str]] = [
        ("autoencoder base_channels=4096, max_channels=65536",
         model_config("autoencoder", lambda d: d["config"].update(base_channels=4096, max_channels=65536)),
         "the config needs"),
        ("generator config is a list", model_config("generator", lambda d: d.update(config=[1])), "config.json"),
        ('pipeline.json "projection": [1, 2]', pipeline_json(lambda d: d.update(projection=[1, 2])), "pipeline.json"),
        ('pipeline.json k = "ten"', pipeline_json(lambda d: d["projection"].update(k="ten")), "pipeline.json"),
        ("pipeline.json k = 0", pipeline_json(lambda d: d["projection"].update(k=0)), "pipeline.json"),
        ("pipeline.json reg = NaN", pipeline_json(lambda d: d["projection"].update(reg=float("nan"))), "pipeline.json"),
        ("pipeline.json hint_downscale = 1000", pipeline_json(lambda d: d.update(hint_downscale=1000)),
         "pipeline.json"),
        ("pipeline.json hint_downscale = 2 (generator: 4)", pipeline_json(lambda d: d.update(hint_downscale=2)),
         "hint_downscale"),
        ("pipeline.json latent_dim = 7", pipeline_json(lambda d: d.update(latent_dim=7)), "latent_dim"),
        ("NaN in generator weights", lambda folder: _nan_weights(folder / "generator" / "model.safetensors"),
         "model.safetensors"),
    ]
    rows, bad = [], []
    for i, (name, tamper, expect) in enumerate(cases):
        folder = _tampered_copy(model, work / "tampered" / f"case{i}")
        tamper(folder)
        out = work / "tampered" / f"out{i}.png"
        started = time.monotonic()
        done = cli("generate", str(sketch), "-o", str(out), "--model", str(folder), "--device", "cpu")
        seconds = time.monotonic() - started
        message = (done.stderr.strip().splitlines() or [""])[-1].replace(f"{work}/", "")[:140]
        ok = done.returncode != 0 and "Traceback" not in done.stderr and not out.exists() and expect in message
        rows.append([name, done.returncode, f"{seconds:.1f}", message, "yes" if ok else "NO"])
        if not ok:
            bad.append(name)
    report.text("## Tampered model folders")
    report.text("`sketch2anime generate` on a copy of the model with one file changed; `s` includes start-up.")
    report.text()
    report.table(["tampering", "exit", "s", "message", "refused, file named, no traceback"], rows)
    report.check("tampered model folders are refused with a message naming the file, no traceback or picture",
                 not bad, ", ".join(bad))


FINDINGS = [
    "Crafted GIF/TIFF files made PIL raise `struct.error`, `IndexError` or `TypeError` inside `image_io` "
    "(the decoder caught only OSError/ValueError/...), which the CLI and prepare reported as tracebacks or "
    "'error' and the server as 500: `image_io._open` and the mode/frame normalisation in `load_rgba` now map any "
    "decoder exception to `ImageInputError(reason='corrupt')`; the server's header check and export decoder map "
    "them to 415/400. Regression inputs: `gif_cut_extension`, `gif_cut_second_frame`, `tiff_float_offset`.",
    "`Sketch2AnimePipeline(..., seed=inf)` raised `OverflowError` and `seed=2**70` an opaque overflow message; "
    "seeds are now checked (`ValueError` unless an integer in torch's range).",
    "`generate_tensors` let NaN/inf tensors through (NaN pictures, or a confusing 'z contains NaN'): it now "
    "refuses them with a `ValueError` naming the tensor.",
    "A damaged `state/train.json` (no `tensors_file`, wrong type, unknown tensor key) gave `KeyError`/`TypeError` "
    "on `--resume`: `load_training_state` now checks `format_version`, the tensors file name and the tree and "
    "raises `CheckpointError` naming the problem.",
    "A SIGKILL in the middle of an atomic write left its `.<name>.<random>.tmp` file behind for good (one per "
    "kill, model-sized for state files): `train` now clears such leftovers in its run folder when it starts "
    "(`checkpoint.remove_stale_temporaries`), so the campaign ends with none.",
    "Issue 16 (second campaign): the pixel limit was checked before padding to a square, so a 1.6 KB 20000x400 "
    "1-bit PNG cost a 400-MP canvas (5.8 s, +1.1 GB) and results were upscaled to the padded square before "
    "cropping: long sides are now shrunk before padding, the hint is brought to at most 1024 px, results resample "
    "only the crop box, opaque images decode without RGBA copies, and the server bounds uploads to 4096x4096 "
    "pixels, results to 2048 px and all variations of a request to 4 MP (was 45.8 MB for count=8).",
    "Issue 16: `/api/export` answered 500 to settings nested ~1000 deep (RecursionError): now 400, and more than 32 "
    "levels are refused.",
    "Issue 16: no header or body timeout and no connection cap; under a 256-descriptor limit 300 half-open "
    "connections starved /api/health and asyncio logged ~250,000 'Too many open files' tracebacks: `serve` now "
    "gives 10 s for headers and 60 s for a body, caps open connections (closing the longest-idle one first), and "
    "rate-limits repeated log lines.",
    "Issue 16: any web page could post work to the server (no Host or Origin check): only loopback Host names "
    "(plus `--host`) are answered, and cross-origin POSTs (Origin / Sec-Fetch-Site) get 403.",
    "Issue 16: PIL opened every format it knows, EPS included (Ghostscript): decoding is limited to PNG, JPEG, "
    "WebP, GIF, BMP, TIFF and PPM at every entry point.",
    "Issue 16: `generate` overwrote results and sources silently (face.jpg + face.png -> one face.png; "
    "`generate dir -o dir`): inputs are never overwritten, same-stem sketches get distinct names, other "
    "collisions are refused before any work, and existing results in a folder need `--overwrite`.",
    "Issue 16: NaN weights gave an all-black picture with exit code 0: non-finite model output is refused.",
    "Issue 16: model folders were trusted too much (an autoencoder config.json with base_channels=4096 allocated "
    "22.4 GB before failing; hint_downscale=1000 or a wrong latent_dim loaded, then every sketch failed): a "
    "config's shapes are checked against the tensors file on the meta device before anything is built, NaN/inf "
    "weights are refused at load, and pipeline.json, the modules' configs and the latent bank must agree.",
    "Issue 16: `prepare` left its fork server and workers alive after a SIGKILL: workers now exit when the main "
    "process dies.",
]

def hardware() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import torch

    memory = "?"
    if Path("/proc/meminfo").exists():
        memory = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 2**20:.0f} GiB"
    return [f"nproc {os.cpu_count()}, CPU {cpu}, memory {memory}",
            f"Python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}",
            f"load average at start {os.getloadavg()[0]:.2f} (other jobs share the machine; latencies include that)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default",
                        help="pipeline folder, 'default' (the shipped model, the default) or 'tiny' (a tiny random one)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fuzz-runs", type=int, default=20000)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "reliability.md")
    parser.add_argument("--fuzz-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fuzz_worker:
        runs, corpus, stats, seed = args.fuzz_worker
        fuzz_worker(int(runs), Path(corpus), Path(stats), int(seed))
        return 0
    if not (1 <= args.clients <= 64 and 1 <= args.seconds <= 600 and 0 <= args.fuzz_runs <= 10_000_000):
        parser.error("--clients must be 1-64, --seconds 1-600, --fuzz-runs 0-10000000")

    import torch

    torch.set_num_threads(1)
    from sketch2anime.testing import tiny_pipeline
    from sketch2anime.inference import Sketch2AnimePipeline, resolve_model_path

    command = "python scripts/reliability.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="s2a-reliability-") as tmp:
        work = Path(tmp)
        model = tiny_pipeline(work / "tiny-model") if args.model == "tiny" else resolve_model_path(args.model)
        pipe = Sketch2AnimePipeline.from_pretrained(model, device="cpu")
        report.text("# Reliability campaign")
        report.text()
        report.text(f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{command.strip()}` "
                    "(regenerate with the same command; `--help` lists the knobs).")
        report.text()
        for line in hardware() + [f"model: {'tiny random pipeline (sketch2anime.testing.tiny_pipeline)' if args.model == 'tiny' else args.model}"
                                  f" ({pipe.pipeline_type}, {pipe.image_size}px)"]:
            report.text(f"- {line}")
        report.text()
        summary_at = len(report.parts)
        report.text("## Bugs this campaign found (fixed in src/)")
        for line in FINDINGS:
            report.text(f"- {line}")
        report.text()
        server = Server(model, work / "server.log")
        try:
            server.wait_ready()
            inputs_section(report, pipe, model, server, work)
            limits_section(report, server)
            traversal_section(report, server)
            slow_client_section(report, server)
            attacks = attack_section(report, server)
            per_kind_table(report, attacks)
            load_section(report, server, args.clients, args.seconds)
            alive = server.alive()
        finally:
            server.stop()
        log = (work / "server.log").read_text()
        report.check("the server stayed up and logged no internal error", alive and "internal error" not in log
                     and "Traceback" not in log, log[-300:] if "Traceback" in log else "")
        descriptor_section(report, model, work)
        collisions_section(report, model, work)
        tampered_models_section(report, model, work)
        fuzz_section(report, args.fuzz_runs, work, args.seed)
        training_section(report, args.kills, args.seed + 1234, work)
    passed = sum(ok for _, ok, _ in report.checks)
    summary = ["## Summary", "", f"{passed} of {len(report.checks)} checks passed in "
               f"{time.monotonic() - started:.0f} s.", "", "| check | result | detail |", "|---|---|---|"]
    summary += [f"| {name} | {'PASS' if ok else 'FAIL'} | {detail.replace('|', '/')[:300]} |" for name, ok, detail in report.checks]
    report.parts[summary_at:summary_at] = summary + [""]
    print("\n".join(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report.parts) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if passed == len(report.checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
