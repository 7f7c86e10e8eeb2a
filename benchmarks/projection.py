"""Projection time and recall against bank size: exact search vs the approximate faiss index.

    python benchmarks/projection.py [--sizes 10k,100k,1M] [--queries 100] [--indexes exact,faiss]

For each bank size a synthetic clustered-Gaussian bank (``synthetic.ClusteredGaussian``, seeded)
is searched by ``--queries`` off-bank queries one at a time through
``project(z, bank, k, strength, index=...)`` (what inference does per image). Recall@K is the
share of the exact K nearest that the faiss HNSW index also returns. The faiss index is built on
first use inside ``LatentBank.knn``; that first call is the build time. Before a build the time is
extrapolated from the largest build so far (or a small calibration build) and the size is skipped
when it would exceed ``--faiss-max-build-s``.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

import torch

from benchmarks.hardware import describe_hardware, parse_threads
from benchmarks.report import command_line, markdown_table, section_text, write_section
from benchmarks.synthetic import ClusteredGaussian
from benchmarks.timing import Summary, format_ms, time_calls
from sketch2anime.models.projection import LatentBank, project

SECTION = "projection"
INDEXES = ("exact", "faiss")


@dataclass
class ProjectionRow:
    size: int
    index: str
    threads: int
    build_s: float | None = None
    timing: Summary | None = None
    recall: float | None = None
    check: Summary | None = None  # exact only: the bank validation that knn_exact repeats per call
    note: str = ""


def parse_size(text: str) -> int:
    """``10k`` -> 10000, ``1M`` -> 1000000, ``2500`` -> 2500."""
    text = text.strip().lower().replace("_", "")
    factor = 1
    if text.endswith("k"):
        factor, text = 1_000, text[:-1]
    elif text.endswith("m"):
        factor, text = 1_000_000, text[:-1]
    value = float(text) * factor
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"bad bank size {text!r}")
    return int(value)


def format_size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def faiss_available() -> tuple[bool, str]:
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        return False, "faiss not importable (pip install faiss-cpu)"
    return True, f"faiss {getattr(faiss, '__version__', '?')}"


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        import faiss  # type: ignore[import-not-found]

        faiss.omp_set_num_threads(threads)
    except (ImportError, AttributeError):
        pass


def predicted_build_s(size: int, known: tuple[int, float] | None) -> float | None:
    """HNSW insertion costs ~log(n) per point: scale a known ``(n, seconds)`` build by n log n."""
    if known is None:
        return None
    n, seconds = known
    return seconds * (size * math.log(size)) / (n * math.log(max(n, 2)))


def _recall(found: torch.Tensor, truth: torch.Tensor) -> float:
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth))
    return hits / truth.numel()


def measure_size(size: int, args: argparse.Namespace, mixture: ClusteredGaussian, queries: torch.Tensor,
                 faiss_state: dict) -> list[ProjectionRow]:
    """Every requested index and thread count on one bank size (the bank is generated once)."""
    latents = mixture.sample(size, seed=args.seed + 1)
    bank = LatentBank(latents, [str(i) for i in range(size)])
    del latents
    k, t = args.k, args.strength
    rows: list[ProjectionRow] = []
    # Exact neighbours once, batched: the reference for recall.
    truth = bank.knn(queries, k, index="exact")[1] if "faiss" in args.indexes else None

    def timed(index: str) -> Summary:
        return time_calls(lambda i: project(queries[i % len(queries)][None], bank, k=k, strength=t, index=index),
                          repeats=len(queries), warmup=min(args.warmup, len(queries)), budget_s=args.row_budget_s,
                          min_repeats=min(5, len(queries)))

    faiss_note: str | None = None  # set once: why faiss is not measured on this size
    for threads in args.threads:
        _set_threads(threads)
        if "exact" in args.indexes:
            check = time_calls(lambda i: bool(torch.isfinite(bank.latents).all()), repeats=5, warmup=1)
            rows.append(ProjectionRow(size, "exact", threads, timing=timed("exact"), recall=1.0, check=check,
                                      note="brute force, chunked"))
        if "faiss" not in args.indexes:
            continue
        row = ProjectionRow(size, "faiss HNSW (M=32, efConstruction=80)", threads)
        ok, why = faiss_available()
        if faiss_note is None and bank._faiss_index is None:
            guess = predicted_build_s(size, faiss_state.get("known"))
            if not ok:
                faiss_note = why
            elif args.faiss_max_size and size > args.faiss_max_size:
                faiss_note = f"skipped: above --faiss-max-size {format_size(args.faiss_max_size)}"
            elif guess is not None and guess > args.faiss_max_build_s:
                faiss_note = (f"skipped: predicted build {guess:.0f} s > --faiss-max-build-s "
                              f"{args.faiss_max_build_s:.0f} (from the {format_size(faiss_state['known'][0])} build)")
            else:
                start = time.perf_counter()
                bank.knn(queries[:1], k, index="faiss")  # builds the index (and answers one query)
                row.build_s = time.perf_counter() - start
                faiss_state["known"] = (size, row.build_s)
        if faiss_note is not None:
            row.note = faiss_note
        else:
            row.timing = timed("faiss")
            row.recall = _recall(bank.knn(queries, k, index="faiss")[1], truth)
            row.note = f"efSearch = max(64, 2k); {why}" + ("" if row.build_s is not None else "; index built above")
        rows.append(row)
    del bank, truth
    gc.collect()
    return rows


def calibrate_faiss(args: argparse.Namespace, mixture: ClusteredGaussian, faiss_state: dict) -> None:
    """A small build to predict the first real one (only when the first size is large)."""
    ok, _ = faiss_available()
    first = min(args.sizes)
    if not ok or "faiss" not in args.indexes or first <= args.calibration_size:
        return
    n = args.calibration_size
    bank = LatentBank(mixture.sample(n, seed=args.seed + 3), [str(i) for i in range(n)])
    start = time.perf_counter()
    bank.knn(bank.latents[:1], args.k, index="faiss")
    faiss_state["known"] = (n, time.perf_counter() - start)


def run(args: argparse.Namespace) -> tuple[list[ProjectionRow], str]:
    mixture = ClusteredGaussian(args.dim, clusters=args.clusters, seed=args.seed)
    queries = mixture.sample(args.queries, seed=args.seed + 2, noise_scale=args.query_noise)
    faiss_state: dict = {}
    calibrate_faiss(args, mixture, faiss_state)
    rows: list[ProjectionRow] = []
    for size in sorted(args.sizes):
        size_rows = measure_size(size, args, mixture, queries, faiss_state)
        rows += size_rows
        print(projection_table(size_rows, args.k), flush=True)  # progress: big sizes take minutes
    return rows, projection_table(rows, args.k)


def projection_table(rows: list[ProjectionRow], k: int) -> str:
    headers = ["bank size", "index", "torch/faiss threads", "build s", "project p50 ms", "project p95 ms",
               "timed queries", f"recall@{k}", "bank isfinite check ms", "note"]
    body = []
    for row in rows:
        p50, p95 = row.timing.ms() if row.timing else ("-", "-")
        body.append([format_size(row.size), row.index, row.threads,
                     f"{row.build_s:.1f}" if row.build_s is not None else "-", p50, p95,
                     row.timing.count if row.timing else "-",
                     f"{row.recall:.3f}" if row.recall is not None else "-",
                     format_ms(row.check.p50) if row.check else "-", row.note])
    return markdown_table(headers, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M", help="bank sizes, e.g. 10k,100k,1M")
    parser.add_argument("--queries", type=int, default=100, help="queries per size (timed one at a time)")
    parser.add_argument("--row-budget-s", type=float, default=120.0,
                        help="stop timing a row after this many seconds (at least 5 queries); recall still uses all")
    parser.add_argument("--warmup", type=int, default=3, help="untimed queries before each row")
    parser.add_argument("--indexes", default="exact,faiss", help="exact and/or faiss")
    parser.add_argument("--dim", type=int, default=512, help="latent dimension")
    parser.add_argument("--k", type=int, default=10, help="neighbours (the pipeline's default k)")
    parser.add_argument("--strength", type=float, default=0.5, help="projection strength passed to project()")
    parser.add_argument("--clusters", type=int, default=256, help="Gaussian clusters of the synthetic bank")
    parser.add_argument("--query-noise", type=float, default=1.5,
                        help="queries' noise relative to the clusters' spread (off-bank like rough sketches)")
    parser.add_argument("--faiss-max-size", type=parse_size, default=None, help="no faiss above this size")
    parser.add_argument("--faiss-max-build-s", type=float, default=600.0,
                        help="skip a faiss build predicted to take longer than this")
    parser.add_argument("--calibration-size", type=parse_size, default=20_000,
                        help="size of the small build that predicts the first one")
    parser.add_argument("--threads", default="2", help="torch and faiss CPU threads; a list (1,2) repeats each row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    parser.add_argument("--note", action="append", default=[], help="extra line for the doc (repeatable)")
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))
    args.indexes = [s.strip() for s in args.indexes.split(",") if s.strip()]
    if not args.sizes or any(i not in INDEXES for i in args.indexes) or not args.indexes:
        parser.error("--sizes needs at least one size; --indexes takes exact and/or faiss")
    if args.queries < 1 or args.k < 1:
        parser.error("--queries and --k must be >= 1")
    args.threads = parse_threads(args.threads)

    _set_threads(args.threads[0])
    hardware = describe_hardware(args.threads)
    rows, table = run(args)
    print()
    print(table)
    if not args.no_write:
        notes = [
            f"synthetic latents, not a trained bank: {args.clusters} Gaussian clusters in {args.dim} dimensions "
            f"(centres ~ N(0, I), per-cluster sigma in [0.3, 0.8]), seed {args.seed}; {args.queries} queries "
            f"drawn from the same mixture with {args.query_noise:g}x the noise (off the bank, like rough sketches); "
            f"a row stops timing after {args.row_budget_s:g} s (at least 5 queries; see 'timed queries')",
            f"each query is timed alone: `project(z[None], bank, k={args.k}, strength={args.strength:g}, index=...)` "
            "(k-NN search + sum-to-one weights), the per-image cost of inference; all on the CPU "
            "(the pipeline always projects there)",
            f"recall@{args.k}: share of the exact {args.k} nearest neighbours that the faiss index returns",
            "faiss build: first `LatentBank.knn(index=\"faiss\")` call (builds the HNSW graph, answers one query), "
            "timed once per bank with the first thread count",
            "bank isfinite check: `torch.isfinite(bank.latents).all()`, the cost of one full validation pass over "
            "the bank (earlier `knn_exact` repeated it on every call; current `LatentBank.knn` checks the bank once)",
            *args.note,
        ]
        section = section_text(SECTION, "Projection: time and recall against bank size", hardware,
                               command_line(None if argv is None else [__file__, *argv]), table, notes)
        print(f"wrote {write_section(Path(args.doc), SECTION, section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
