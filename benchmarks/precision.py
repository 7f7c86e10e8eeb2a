"""fp32 vs bf16 training on this machine's CPU: what ``train.precision = "auto"`` picks, and why.

    python benchmarks/precision.py [--steps 6] [--batch 8] [--threads 2]

In one process, for the default model's networks at 128 px (guided U-Net + PatchGAN, one full GAN
step: D on real and fake, G with adversarial, feature matching and L1) and for the Pix2Pix U-Net
at 128 px (forward + backward + Adam), it times training steps in fp32 and in bf16 autocast with
channels_last memory format, alternating the two so that a busy machine slows both alike. It
reports the median seconds per step, the fp32/bf16 ratio (> 1: bf16 is faster), the CPU's bf16
flags, and the precision ``sketch2anime.runtime.fastest_cpu_precision()`` picks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    from _path import add_repo_root

    add_repo_root()

from benchmarks.hardware import describe_hardware
from benchmarks.report import command_line, markdown_table, section_text, write_section
from sketch2anime import runtime
from sketch2anime.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig
from sketch2anime.models.pix2pix import UNetConfig, UNetGenerator
from sketch2anime.training.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss

SECTION = "precision"


def guided_step(precision: str, batch: int) -> Callable[[], None]:
    """One GAN step of the default model's networks (no autoencoder: its cost is the same in both)."""
    torch.manual_seed(0)
    G, D = GuidedUNet(GuidedUNetConfig(image_size=128)), PatchDiscriminator(DiscriminatorConfig(
        image_size=128, base_channels=32, max_channels=256, n_layers=3))
    last = precision == "bf16"
    if last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 2e-4), torch.optim.Adam(D.parameters(), 2e-4)
    fmt = torch.channels_last if last else torch.contiguous_format
    sketch = torch.rand(batch, 1, 128, 128).contiguous(memory_format=fmt)
    guide = torch.rand(batch, 1, 128, 128).contiguous(memory_format=fmt)
    hint = torch.zeros(batch, 4, 32, 32)
    z = torch.randn(batch, 512)
    real = (torch.rand(batch, 3, 128, 128) * 2 - 1).contiguous(memory_format=fmt)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=last):
            fake = G(sketch, guide, hint, z)
            logits, _ = D(torch.cat([real, fake.detach().float()]), torch.cat([sketch, sketch]), torch.cat([hint, hint]))
        real_logits, fake_logits = logits.float().chunk(2)
        opt_d.zero_grad(set_to_none=True)
        discriminator_loss(real_logits, fake_logits).backward()
        opt_d.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=last):
            fake_logits, fake_features = D(fake.float(), sketch, hint)
            with torch.no_grad():
                _, real_features = D(real, sketch, hint)
            loss = generator_adversarial_loss(fake_logits.float()) + 2 * feature_matching_loss(fake_features, real_features)
        loss = loss + 20 * F.l1_loss(fake.float(), real)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()

    return step


def pix2pix_step(precision: str, batch: int) -> Callable[[], None]:
    torch.manual_seed(0)
    net = UNetGenerator(UNetConfig(image_size=128, base_channels=32))
    last = precision == "bf16"
    if last:
        net = net.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if last else torch.contiguous_format
    sketch = torch.rand(batch, 1, 128, 128).contiguous(memory_format=fmt)
    target = torch.rand(batch, 3, 128, 128) * 2 - 1
    optimizer = torch.optim.Adam(net.parameters(), 2e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=last):
            out = net(sketch, None)
        loss = F.l1_loss(out.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def interleaved(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, calls alternating; the first call of each is warm-up."""
    for fn in steps.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per network and precision")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for name, build in (("guided U-Net + PatchGAN (default model, GAN step)", guided_step),
                        ("Pix2Pix U-Net (L1 step)", pix2pix_step)):
        result = interleaved({p: build(p, args.batch) for p in ("fp32", "bf16")}, args.steps)
        ratio = result["fp32"] / result["bf16"]
        rows.append([name, args.batch, f"{result['fp32'] * 1000:.0f}", f"{result['bf16'] * 1000:.0f}", f"{ratio:.2f}×",
                     f"{args.batch / result['fp32']:.1f}", f"{args.batch / result['bf16']:.1f}"])
        print(f"{name}: fp32 {result['fp32']:.3f} s, bf16 {result['bf16']:.3f} s, fp32/bf16 {ratio:.2f}", flush=True)
    flags = sorted(runtime.cpu_flags() & set(runtime.BF16_FLAGS)) or ["none"]
    picked = runtime.fastest_cpu_precision()
    table = markdown_table(["network (128 px)", "batch", "fp32 ms/step", "bf16 ms/step", "fp32/bf16",
                            "fp32 img/s", "bf16 img/s"], rows)
    notes = [f"bf16 CPU flags: {', '.join(flags)}; `train.precision = \"auto\"` picks **{picked}** here "
             f"(bf16 only with those flags and a measured speed-up of at least {runtime.BF16_MIN_SPEEDUP}×).",
             "bf16 runs use autocast plus channels_last; the two precisions alternate step by step, so other load "
             "on the machine slows both alike. Ratios are the result; absolute times depend on that load."]
    print(table)
    if not args.no_doc:
        section = section_text(SECTION, "Training precision: fp32 vs bf16 on this CPU",
                               describe_hardware([torch.get_num_threads()]), command_line(argv), table, notes)
        write_section(args.doc, SECTION, section)
        print(f"wrote the {SECTION} section of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
