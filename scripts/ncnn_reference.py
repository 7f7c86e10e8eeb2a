"""Reference outputs from ncnn itself for the upscaler tests (run once; needs the `ncnn` wheel).

    pip install --no-deps --target /tmp/ncnnref ncnn        # ncnn's own Python bindings, not a project dependency
    PYTHONPATH=/tmp/ncnnref python scripts/ncnn_reference.py                   # tiny fixtures -> tests/assets/ncnn/
    PYTHONPATH=/tmp/ncnnref python scripts/ncnn_reference.py --real ~/.cache/sketch2anime/upscalers

Writes two tiny random networks in ncnn format (an SRVGGNetCompact and an UpConv7, fp16, written
by ``encode_ncnn``) and ncnn's fp32 CPU output for a fixed input into ``tests/assets/ncnn/``;
``tests/test_upscale.py`` checks the package's reader + modules against them. With ``--real`` it
also runs the shipped models (the .param/.bin copied beside the converted weights) through ncnn
and through the package's modules, prints the largest difference and saves that reference too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from sketch2anime.upscale.ncnn_format import NcnnLayer, encode_ncnn  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "tests" / "assets" / "ncnn"


def tiny_srvgg(rng: np.random.Generator) -> tuple[list[NcnnLayer], dict, str, str]:
    features, scale, layers, weights = 8, 2, [NcnnLayer("Input", "in", (), ("data",), {})], {}
    layers.append(NcnnLayer("Split", "split", ("data",), ("a", "b"), {}))
    previous, channels = "a", 3
    for index in range(3):
        conv, act = f"conv{index}", f"prelu{index}"
        weights[conv] = {"weight": rng.normal(0, 0.3, (features, channels, 3, 3)), "bias": rng.normal(0, 0.1, features)}
        weights[act] = {"slope": rng.uniform(0.05, 0.3, features)}
        layers.append(NcnnLayer("Convolution", conv, (previous,), (f"{conv}_out",),
                                {0: features, 1: 3, 4: 1, 5: 1, 6: features * channels * 9}))
        layers.append(NcnnLayer("PReLU", act, (f"{conv}_out",), (f"{act}_out",), {0: features}))
        previous, channels = f"{act}_out", features
    weights["last"] = {"weight": rng.normal(0, 0.3, (3 * scale * scale, features, 3, 3)), "bias": rng.normal(0, 0.1, 12)}
    layers += [
        NcnnLayer("Convolution", "last", (previous,), ("last_out",), {0: 12, 1: 3, 4: 1, 5: 1, 6: 12 * features * 9}),
        NcnnLayer("PixelShuffle", "shuffle", ("last_out",), ("shuffled",), {0: scale}),
        NcnnLayer("Interp", "nearest", ("b",), ("base",), {0: 1, 1: float(scale), 2: float(scale)}),
        NcnnLayer("BinaryOp", "add", ("shuffled", "base"), ("output",), {0: 0}),
    ]
    return layers, weights, "data", "output"


def tiny_upconv7(rng: np.random.Generator) -> tuple[list[NcnnLayer], dict, str, str]:
    widths, layers, weights = (4, 6, 4, 4, 4, 8), [NcnnLayer("Input", "in", (), ("data",), {})], {}
    previous, channels = "data", 3
    for index, width in enumerate(widths):
        name = f"conv{index}"
        weights[name] = {"weight": rng.normal(0, 0.4, (width, channels, 3, 3)), "bias": rng.normal(0, 0.1, width)}
        layers.append(NcnnLayer("Convolution", name, (previous,), (f"{name}_out",),
                                {0: width, 1: 3, 5: 1, 6: width * channels * 9, 9: 2, 10: (0.1,)}))
        previous, channels = f"{name}_out", width
    # ncnn's Deconvolution stores [out][in][kh][kw]; random values make any axis mix-up visible.
    weights["up"] = {"weight": rng.normal(0, 0.4, (3, channels, 4, 4)), "bias": rng.normal(0, 0.1, 3)}
    layers.append(NcnnLayer("Deconvolution", "up", (previous,), ("output",),
                            {0: 3, 1: 4, 3: 2, 4: 3, 5: 1, 6: 3 * channels * 16}))
    return layers, weights, "data", "output"


def run_ncnn(param: Path, weights: Path, x: np.ndarray, input_blob: str, output_blob: str, pad: int = 0) -> np.ndarray:
    """ncnn's fp32 CPU result for ``x`` (C, H, W) float32, edge-padded by ``pad`` px first (waifu2x's
    ncnn graphs expect the caller to pad; the package's UpConv7 pads inside the module)."""
    import ncnn

    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="edge")

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_packed = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = 1
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise SystemExit(f"ncnn could not load {param}")
    extractor = net.create_extractor()
    extractor.input(input_blob, ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32)))
    status, out = extractor.extract(output_blob)
    if status != 0:
        raise SystemExit(f"ncnn failed on {param} ({status})")
    return np.array(out).copy()


def tiny_fixtures() -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12)
    x = rng.uniform(0, 1, (3, 10, 12)).astype(np.float32)
    arrays = {"input": x}
    for name, build, pad in (("tiny_srvgg", tiny_srvgg, 0), ("tiny_upconv7", tiny_upconv7, 7)):
        layers, weights, input_blob, output_blob = build(rng)
        text, data = encode_ncnn(layers, weights, fp16=True)
        (ASSETS / f"{name}.param").write_text(text)
        (ASSETS / f"{name}.bin").write_bytes(data)
        arrays[name] = run_ncnn(ASSETS / f"{name}.param", ASSETS / f"{name}.bin", x, input_blob, output_blob, pad)
        print(f"{name}: output {arrays[name].shape}, .bin {len(data)} bytes")
    np.savez_compressed(ASSETS / "reference.npz", **arrays)
    print(f"wrote {ASSETS / 'reference.npz'}")


def real_models(folder: Path) -> None:
    import torch

    from sketch2anime.upscale.upscaler import Upscaler

    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (3, 16, 16)).astype(np.float32)
    arrays = {"input": x}
    for name, blobs, pad in (("animevideov3-x4", ("data", "output"), 0), ("waifu2x-upconv7-x2", ("Input1", "Eltwise4"), 7)):
        source = folder / name / "source"
        params = sorted(source.glob("*.param"))
        if not params:
            print(f"{name}: not installed in {folder}, skipped")
            continue
        reference = run_ncnn(params[0], params[0].with_suffix(".bin"), x, *blobs, pad=pad)
        upscaler = Upscaler.from_pretrained(folder / name)
        with torch.inference_mode():
            mine = upscaler.network(torch.from_numpy(x)[None]).numpy()[0]
        diff = np.abs(mine - reference)
        print(f"{name}: ncnn vs sketch2anime on a 16x16 input: max |diff| {diff.max():.2e}, "
              f"mean {diff.mean():.2e} (1/255 = {1 / 255:.2e})")
        arrays[name] = reference.astype(np.float16)
    np.savez_compressed(ASSETS / "real_reference.npz", **arrays)
    print(f"wrote {ASSETS / 'real_reference.npz'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=None, help="folder of installed upscalers (cache/upscalers)")
    args = parser.parse_args()
    tiny_fixtures()
    if args.real:
        real_models(args.real)


if __name__ == "__main__":
    main()
