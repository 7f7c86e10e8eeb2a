"""Every way an image enters: arbitrary bytes and arrays decode to a valid image or a typed error.

Property tests (hypothesis) over ``data.image_io`` and ``Sketch2AnimePipeline.__call__`` on a tiny
random pipeline, plus each named awkward-file kind checked explicitly. ``named_inputs()`` is also
the input table of ``scripts/reliability.py``, so the report and the tests try the same files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from test_server_api import build_tiny_pipeline
from sketch2anime.data import image_io
from sketch2anime.data.image_io import ImageInputError, load_rgb, load_rgba, load_sketch
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.testing.images import draw_face, png_bytes
from sketch2anime.testing.bad_inputs import CASES, REGRESSIONS, SEED_FILES, InputCase, outcome  # noqa: F401

# Modest budgets: the whole file runs in well under 30 s on 2 busy cores.
FAST = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(FAST, max_examples=20)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Sketch2AnimePipeline:
    torch.set_num_threads(1)
    return Sketch2AnimePipeline.from_pretrained(build_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "m"), device="cpu")


# ---------------------------------------------------------------------------------------------
# each named kind, explicitly

@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_named_input_gives_expected_outcome(case: InputCase, pipe: Sketch2AnimePipeline, tmp_path: Path) -> None:
    assert outcome(load_rgb, case.data) == case.expect
    if isinstance(case.data, bytes):  # the CLI's way in: a path, with whatever extension it came with
        path = tmp_path / f"{case.name}{case.suffix}"
        path.write_bytes(case.data)
        assert outcome(load_sketch, path) == case.expect
    if case.expect == "ok":
        width, height = load_sketch(case.data).size
        picture = pipe(case.data, seed=0)
        assert picture.mode == "RGB" and picture.size == (width, height)
        assert np.array_equal(np.asarray(picture), np.asarray(pipe(case.data, seed=0)))
    else:
        with pytest.raises(ImageInputError):
            pipe(case.data)
        with pytest.raises(ImageInputError):  # a bad hint layer is refused the same way
            pipe(np.full((32, 32), 255, np.uint8), hint=case.data)


def _case(name: str) -> InputCase:
    return next(c for c in CASES if c.name == name)


def test_conversions_keep_the_picture() -> None:
    # 16-bit: scaled down, not clipped to white.
    assert 30 < np.asarray(load_sketch(_case("sixteen_bit").data)).mean() < 240
    # CMYK: colours survive the conversion (JPEG is lossy, so loosely).
    face = np.asarray(draw_face(96, 1)).astype(int)
    assert np.abs(np.asarray(load_rgb(_case("cmyk_jpeg").data)).astype(int) - face).mean() < 25
    # EXIF orientation 6: stored 120x80, shown 80x120 with the red half on top.
    rotated = np.asarray(load_rgb(_case("exif_rotated").data)).astype(int)
    assert rotated.shape == (120, 80, 3)
    assert rotated[10, 40, 0] > 150 > rotated[10, 40, 2] and rotated[110, 40, 2] > 150 > rotated[110, 40, 0]
    # Animated GIF: the first (red) frame.
    first = np.asarray(load_rgb(_case("animated_gif").data)).astype(int)
    assert first[20, 20, 0] > 150 and first[20, 20, 2] < 100
    # Transparency (palette index or alpha) becomes white paper.
    palette = np.asarray(load_rgb(_case("palette_transparent").data))
    assert palette[4, 2].tolist() == [255, 255, 255] and palette[4, 12].tolist() == [200, 0, 0]
    assert np.asarray(load_sketch(_case("rgba_png").data)).min() == 255
    assert load_rgb(_case("one_by_one").data).getpixel((0, 0)) == (10, 200, 30)


def test_pixel_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_bytes(draw_face(200, 0))
    assert outcome(load_rgb, data) == "ok"
    monkeypatch.setattr(image_io, "MAX_PIXELS", 100 * 100)
    assert outcome(load_rgb, data) == "too_large"


def test_odd_python_values_are_refused(pipe: Sketch2AnimePipeline, tmp_path: Path) -> None:
    for value in (None, 3, [1, 2], torch.zeros(1, 1, 64, 64), tmp_path, tmp_path / "missing.png"):
        assert outcome(load_rgb, value) in {"bad_type", "missing"}
        with pytest.raises(ImageInputError):
            pipe(value)


def test_empty_and_black_sketches_colour_sensibly(pipe: Sketch2AnimePipeline) -> None:
    for fill in (255, 0):
        sketch = np.full((48, 80), fill, np.uint8)
        picture, projected = pipe(sketch, seed=1, return_projected=True)
        assert picture.size == (80, 48) and projected.size == (80, 48)
        # the check must see the model's float output: an 8-bit picture is always finite
        sketch_tensor, hint_tensor, _ = pipe.prepare(sketch)
        with torch.inference_mode():
            z, decoded = pipe._latents(sketch_tensor, 0.5)
            raw = pipe.generator(z, hint_tensor, decoded if pipe.generator.config.use_decoded_sketch else None)
        assert torch.isfinite(raw).all() and torch.isfinite(decoded).all()


def test_nan_weights_are_refused_not_painted_black(tmp_path: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(build_tiny_pipeline(tmp_path / "model"), device="cpu")
    with torch.no_grad():
        next(pipe.generator.parameters()).fill_(float("nan"))
    sketch = np.full((32, 32), 255, np.uint8)
    with pytest.raises(ValueError, match="NaN or infinite"):
        pipe(sketch)
    with pytest.raises(ValueError, match="NaN or infinite"):
        pipe.variations(sketch, count=2)


def test_tensor_api_refuses_non_finite(pipe: Sketch2AnimePipeline) -> None:
    sketch = torch.ones(1, 1, 64, 64)
    sketch[0, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="sketch tensor contains NaN"):
        pipe.generate_tensors(sketch)
    hint = torch.zeros(1, 4, 16, 16)
    hint[0, 1, 2, 2] = float("inf")
    with pytest.raises(ValueError, match="hint tensor contains NaN"):
        pipe.generate_tensors(torch.ones(1, 1, 64, 64), hint)


# ---------------------------------------------------------------------------------------------
# properties

@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid file of some format with a few bytes changed, cut or inserted: gets past the magic."""
    data = bytearray(draw(st.sampled_from(SEED_FILES)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(["set", "cut", "insert", "truncate"]))
        if kind == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[position:position + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[position:]
    return bytes(data)


any_bytes = st.one_of(st.binary(max_size=512), mutated_files(), st.sampled_from(list(REGRESSIONS.values())))


def _valid_image(image: Image.Image, mode: str) -> None:
    assert image.mode == mode
    width, height = image.size
    assert width >= 1 and height >= 1 and width * height <= image_io.MAX_PIXELS
    assert max(width, height) <= image_io.MAX_ASPECT * min(width, height)


@FAST
@given(data=any_bytes)
def test_any_bytes_decode_or_raise_typed(data: bytes) -> None:
    for loader, mode in ((load_rgb, "RGB"), (load_rgba, "RGBA"), (load_sketch, "L")):
        try:
            image = loader(data)
        except ImageInputError as exc:
            assert str(exc) and exc.reason
            continue
        _valid_image(image, mode)


@SLOW
@given(data=any_bytes)
def test_any_bytes_through_the_pipeline(pipe: Sketch2AnimePipeline, data: bytes) -> None:
    try:
        size = load_sketch(data).size
    except ImageInputError:
        with pytest.raises(ImageInputError):
            pipe(data)
        with pytest.raises(ImageInputError):
            pipe(np.full((16, 16), 255, np.uint8), hint=data)
        return
    assert pipe(data, seed=0).size == size
    assert pipe(np.full((16, 16), 255, np.uint8), hint=data, seed=0).size == (16, 16)


DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64]
any_array = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)))


@FAST
@given(array=any_array)
def test_any_array_gives_image_or_typed_error(array: np.ndarray) -> None:
    try:
        image = load_rgb(array)
    except ImageInputError as exc:
        assert exc.reason in {"bad_shape", "bad_type", "bad_range", "empty", "not_finite"}
        return
    _valid_image(image, "RGB")
    if np.issubdtype(array.dtype, np.floating):
        assert np.isfinite(array).all()  # a NaN or inf never becomes a picture


@SLOW
@given(array=any_array)
def test_any_array_through_the_pipeline(pipe: Sketch2AnimePipeline, array: np.ndarray) -> None:
    try:
        size = load_sketch(array).size
    except ImageInputError:
        with pytest.raises(ImageInputError):
            pipe(array)
        return
    assert pipe(array, seed=0).size == size


gray_arrays = hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)))


@FAST
@given(array=gray_arrays)
def test_valid_gray_arrays_round_trip_exactly(array: np.ndarray) -> None:
    assert np.array_equal(np.asarray(load_sketch(array)), array)


@FAST
@given(array=hnp.arrays(np.float32, st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([3, 4])),
                        elements=st.floats(0, 1, width=32)),
       where=st.tuples(st.integers(0, 23), st.integers(0, 23)), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_one_non_finite_value_is_always_refused(array: np.ndarray, where: tuple[int, int], bad: float) -> None:
    assert outcome(load_rgb, array) == "ok"
    array = array.copy()
    array[where[0] % array.shape[0], where[1] % array.shape[1], 0] = bad
    assert outcome(load_rgb, array) == "not_finite"


@SLOW
@given(projection=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.booleans()),
       seed=st.one_of(st.none(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True)))
def test_settings_are_validated(pipe: Sketch2AnimePipeline, projection: float, seed: int | float | None) -> None:
    sketch = np.full((24, 24), 255, np.uint8)
    good_projection = not isinstance(projection, bool) and 0.0 <= projection <= 1.0
    good_seed = seed is None or (isinstance(seed, int) and -2**63 <= seed < 2**64)
    if good_projection and good_seed:
        first = pipe(sketch, projection=projection, seed=seed)
        if seed is not None:
            assert np.array_equal(np.asarray(first), np.asarray(pipe(sketch, projection=projection, seed=seed)))
    else:
        with pytest.raises(ValueError):
            pipe(sketch, projection=projection, seed=seed)


# ---------------------------------------------------------------------------------------------
# files the user cannot read, symbolic links that lead nowhere, absurd settings (issue 16, defect 10)

def test_permission_denied_is_not_called_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.png"
    path.write_bytes(png_bytes(draw_face(32, 0)))
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: make open() fail as it would for a user
            def denied(*args, **kwargs):
                raise PermissionError(13, "Permission denied", str(path))
            monkeypatch.setattr(image_io.Image, "open", denied)
        with pytest.raises(ImageInputError, match="cannot be read: permission denied") as error:
            load_sketch(path)
        assert error.value.reason == "permission_denied"
    finally:
        path.chmod(0o644)


def _broken_links(folder: Path) -> None:
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    (folder / "loop_a.png").symlink_to(folder / "loop_b.png")
    (folder / "loop_b.png").symlink_to(folder / "loop_a.png")


def test_broken_symlinks_are_listed_and_named(tmp_path: Path) -> None:
    draw_face(32, 0).save(tmp_path / "face.png")
    _broken_links(tmp_path)
    assert [p.name for p in image_io.list_images(tmp_path)] == ["dangling.png", "face.png", "loop_a.png", "loop_b.png"]
    for name in ("dangling.png", "loop_a.png"):
        with pytest.raises(ImageInputError, match="broken symbolic link") as error:
            load_sketch(tmp_path / name)
        assert error.value.reason == "broken_link"


def test_prepare_reports_broken_symlinks(tmp_path: Path) -> None:
    from sketch2anime.data.prepare import PrepareConfig, prepare_dataset

    source = tmp_path / "src"
    source.mkdir()
    for i in range(3):
        draw_face(64, i).save(source / f"face_{i}.png")
    _broken_links(source)
    report = prepare_dataset(source, tmp_path / "out", PrepareConfig(extractors=("detail",), workers=1, val_fraction=0.0),
                             progress=False)
    assert report.prepared == 3
    assert sorted((s["source"], s["reason"]) for s in report.skipped) == [
        ("dangling.png", "broken_link"), ("loop_a.png", "broken_link"), ("loop_b.png", "broken_link")]


@pytest.mark.parametrize("setting, message", [
    ("train.steps=1e20", "train.steps: 1e+20 is too large for an integer setting"),
    ("train.steps=100000000000000000000", "train.steps must be at most 1,000,000,000"),
    ("train.checkpoint_every=1e12", "train.checkpoint_every must be at most 1,000,000,000"),
])
def test_absurd_step_counts_are_refused_at_load(setting: str, message: str) -> None:
    from sketch2anime.config import ConfigError
    from sketch2anime.training.config import load_experiment

    config = Path(__file__).resolve().parents[1] / "configs" / "test_autoencoder.toml"
    assert load_experiment(config, ["train.steps=1e3"]).train.steps == 1000  # exact floats still count
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_experiment(config, [setting])
