"""fp32 vs bf16 inference on this machine's CPU: the speed of each network of a panel update, the
whole update, and how far the pictures move.

    python benchmarks/inference_precision.py [--model default] [--repeats 20] [--threads 1] [--count 16]

In one process it loads the model twice (``precision="fp32"`` and ``"bf16"``) and times, alternating
the two call by call so that other load slows both alike: the sketch encoder, the guide decoder, the
per-part guide (three crops, encode + project + decode, part cache emptied), the generator, and the
whole ``generate_tensors`` of a 128 px sketch at projection 0.5 with empty caches (the panel's
worst update: a stroke that touched every part). Then, on ``--count`` synthetic sketches with hint
dabs, it compares the two precisions' pictures (mean and 99th-percentile |Δ| on 0-255, per channel)
and whether the projection picked the same neighbours. It also reports what ``precision="auto"``
picks here (``runtime.fastest_inference_precision``). Scores of the bf16 pictures on the project's
evaluation: ``sketch2anime evaluate --model default --model default@precision=bf16 ...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

import numpy as np
import torch

from benchmarks.hardware import describe_hardware
from benchmarks.report import command_line, markdown_table, section_text, write_section
from benchmarks.synthetic import synthetic_hint, synthetic_sketch
from benchmarks.timing import Summary, format_ms, summarise
from sketch2anime import runtime
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.guide import encode_sketch, guide_from_latent
from sketch2anime.models.projection import project
from sketch2anime.pipeline_types import GENERATOR_RUNNERS

SECTION = "inference_precision"
PRECISIONS = ("fp32", "bf16")


def stage_calls(pipe: Sketch2AnimePipeline, seed: int) -> dict[str, Callable[[], object]]:
    """The networks of one panel update, each as a call on fixed inputs of this pipeline."""
    side = 4 * pipe.image_size  # as the panel sends it
    sketch, hint, _ = pipe.prepare(synthetic_sketch(side, seed), synthetic_hint(side, seed))
    calls: dict[str, Callable[[], object]] = {}
    z = decoded = None
    if pipe.uses_projection:
        z = encode_sketch(pipe.autoencoder, sketch)
        z = project(z, pipe.bank, k=pipe.projection_k, strength=0.5, reg=pipe.projection_reg)
        decoded = guide_from_latent(pipe.autoencoder, z, pipe.image_size)

        def encode() -> object:
            with pipe.autocast():
                return encode_sketch(pipe.autoencoder, sketch)

        def decode() -> object:
            with pipe.autocast():
                return guide_from_latent(pipe.autoencoder, z, pipe.image_size)

        calls["sketch encoder"], calls["guide decoder"] = encode, decode
        if pipe.parts is not None:
            def parts() -> object:
                pipe.part_cache.clear()
                with pipe.autocast():
                    return pipe.part_cache.decoded(pipe.parts, pipe.part_banks, sketch, 0.5, pipe.projection_k,
                                                   pipe.projection_reg)

            calls["part guide (3 crops, encode + project + decode)"] = parts
    runner = GENERATOR_RUNNERS[pipe.pipeline_type]

    def generator() -> object:
        with pipe.autocast():
            return runner(pipe, sketch, hint, z, decoded)

    def whole() -> object:
        pipe.part_cache.clear()
        pipe.guide_cache.clear()
        return pipe.generate_tensors(sketch, hint, projection=0.5)

    calls["generator"] = generator
    calls["**whole update** (generate_tensors, t = 0.5, empty caches)"] = whole
    return calls


def time_alternating(pipes: dict[str, Sketch2AnimePipeline], repeats: int, warmup: int,
                     seed: int) -> dict[str, dict[str, Summary]]:
    """stage -> precision -> Summary, the precisions taking turns call by call."""
    calls = {name: stage_calls(pipe, seed) for name, pipe in pipes.items()}
    stages = list(next(iter(calls.values())))
    samples = {stage: {name: [] for name in pipes} for stage in stages}
    with torch.inference_mode():
        for stage in stages:
            for index in range(warmup + repeats):
                for name in pipes:
                    start = time.perf_counter()
                    calls[name][stage]()
                    if index >= warmup:
                        samples[stage][name].append(time.perf_counter() - start)
    return {stage: {name: summarise(values) for name, values in row.items()} for stage, row in samples.items()}


def agreement(pipes: dict[str, Sketch2AnimePipeline], count: int) -> dict[str, float]:
    """How far the bf16 pictures are from the fp32 ones on ``count`` synthetic sketches with hints."""
    fp32, bf16 = pipes["fp32"], pipes["bf16"]
    means, p99s, maxima, same_neighbours = [], [], [], 0
    for seed in range(count):
        sketch, hint, _ = fp32.prepare(synthetic_sketch(4 * fp32.image_size, 100 + seed),
                                       synthetic_hint(4 * fp32.image_size, 100 + seed))
        pictures = [pipe.generate_tensors(sketch, hint, projection=0.5)["image"] for pipe in (fp32, bf16)]
        delta = ((pictures[0] - pictures[1]).abs() * 127.5).flatten().numpy()
        means.append(float(delta.mean()))
        p99s.append(float(np.percentile(delta, 99)))
        maxima.append(float(delta.max()))
        if fp32.uses_projection:
            with torch.inference_mode():
                chosen = []
                for pipe in (fp32, bf16):
                    with pipe.autocast():
                        z = encode_sketch(pipe.autoencoder, sketch)
                    _, details = project(z, pipe.bank, k=pipe.projection_k, reg=pipe.projection_reg,
                                         return_details=True)
                    chosen.append(set(details.indices.flatten().tolist()))
            same_neighbours += chosen[0] == chosen[1]
    return {"mean": float(np.mean(means)), "p99": float(np.median(p99s)), "max": float(np.max(maxima)),
            "same_neighbours": same_neighbours, "count": count, "projects": fp32.uses_projection}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="pipeline folder or 'default'")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the panel uses 1 on small machines)")
    parser.add_argument("--count", type=int, default=16, help="synthetic sketches for the picture comparison")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.count < 1 or args.threads < 1:
        parser.error("--repeats, --count and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    hardware = describe_hardware([args.threads])
    pipes = {name: Sketch2AnimePipeline.from_pretrained(args.model, device="cpu", precision=name)
             for name in PRECISIONS}
    auto = Sketch2AnimePipeline.from_pretrained(args.model, device="cpu", precision="auto").precision
    timings = time_alternating(pipes, args.repeats, args.warmup, seed=0)
    rows = []
    for stage, by_precision in timings.items():
        a, b = by_precision["fp32"], by_precision["bf16"]
        rows.append([stage, *a.ms(), *b.ms(), f"{a.p50 / b.p50:.2f}×"])
    table = markdown_table(["what (one 128 px sketch, batch 1)", "fp32 p50 ms", "fp32 p95 ms", "bf16 p50 ms",
                            "bf16 p95 ms", "fp32/bf16 (p50)"], rows)
    same = agreement(pipes, args.count)
    flags = sorted(runtime.cpu_flags() & set(runtime.BF16_FLAGS))
    neighbours = (f"; the projection picked the same neighbours for {same['same_neighbours']} of {same['count']} "
                  "sketches" if same["projects"] else "")
    verdict = (f"bf16 CPU flags: {', '.join(flags) or 'none'}; `precision=\"auto\"` picks **{auto}** here (bf16 "
               f"only with those flags and a measured generator speed-up of at least {runtime.BF16_MIN_SPEEDUP}×). "
               f"bf16 pictures against fp32, {same['count']} synthetic sketches with hint dabs at t = 0.5: mean "
               f"|Δ| {same['mean']:.2f} of 255 per channel, 99th percentile {same['p99']:.1f}, largest "
               f"{same['max']:.0f}{neighbours}.")
    whole = timings[next(stage for stage in timings if stage.startswith("**whole"))]
    print(table, "", verdict, sep="\n")
    print(f"whole update p50: fp32 {format_ms(whole['fp32'].p50)} ms, bf16 {format_ms(whole['bf16'].p50)} ms")
    if not args.no_write:
        notes = ["the two precisions take turns call by call, so other load on the machine slows both alike; ratios "
                 "are the result, absolute times depend on that load",
                 "bf16 = autocast: convolutions and matmuls in bfloat16, everything else and every output in float32; "
                 "the latent-bank search and the projection weights always run in full precision"]
        section = section_text(SECTION, "Inference precision: fp32 vs bf16 on this CPU", hardware,
                               command_line(None if argv is None else [__file__, *argv]),
                               table + "\n\n" + verdict, notes)
        print(f"wrote {write_section(Path(args.doc), SECTION, section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
