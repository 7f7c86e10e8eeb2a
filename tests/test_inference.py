"""Sketch2AnimePipeline and `sketch2anime generate` on tiny random pipeline folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketch2anime.generate import GenerateConfig, run_generate
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.pipeline_format import PipelineDescription
from sketch2anime.testing import tiny_pipeline


pytestmark = pytest.mark.usefixtures("one_thread")


def _write_pipeline(folder: Path, kind: str) -> Path:
    # A bank of 20 encoded sketches and k = 4: projection moves latents by a measurable amount.
    return tiny_pipeline(folder, kind, channels=16, bank_size=20, projection_k=4, encoded_bank=True)


@pytest.fixture(scope="module")
def s2a_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_pipeline(tmp_path_factory.mktemp("s2a"), "sketch2anime")


@pytest.fixture(scope="module")
def simple_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_pipeline(tmp_path_factory.mktemp("simple"), "simple_gan")


def _sketch(width: int, height: int) -> np.ndarray:
    array = np.full((height, width), 255, np.uint8)
    array[height // 4: 3 * height // 4, width // 3: width // 3 + 3] = 0
    array[height // 2, width // 4: 3 * width // 4] = 0
    return array


def test_from_pretrained_reads_the_folder(s2a_folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    assert (pipe.pipeline_type, pipe.image_size, pipe.hint_size) == ("sketch2anime", 64, 16)
    assert pipe.uses_projection and len(pipe.bank) == 20 and pipe.projection_k == 4


def test_default_model_missing_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sketch2anime.inference.DEFAULT_MODEL_DIR", tmp_path / "not-installed")
    with pytest.raises(ValueError, match="no default model is installed.*sketch2anime train"):
        Sketch2AnimePipeline.from_pretrained("default")


def test_default_name_resolves_to_the_package_folder(s2a_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sketch2anime.inference.DEFAULT_MODEL_DIR", s2a_folder)
    pipe = Sketch2AnimePipeline.from_pretrained("default", device="cpu")
    assert pipe.folder == s2a_folder and pipe.uses_projection


def test_thin_pen_lines_stay_dark_at_the_model_size(s2a_folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    canvas = np.full((512, 512), 255, np.uint8)
    canvas[100:400, 254:258] = 0  # a 4 px pen line, the panel's default brush
    sketch, _, _ = pipe.prepare(canvas)
    column = sketch[0, 0, 20:44].min(dim=1).values  # darkest pixel of each row crossing the line
    assert column.max() < -0.5, "the line must stay ink (< -0.5 in [-1, 1]), not fade to grey"
    assert (sketch[0, 0] < 0).sum() <= 3 * 38, "and must not be smeared much wider than a few pixels"
    blank, _, _ = pipe.prepare(np.full((512, 512), 255, np.uint8))
    assert torch.all(blank == 1.0)


def test_bad_folders_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        Sketch2AnimePipeline.from_pretrained(tmp_path / "nope")
    with pytest.raises(ValueError, match="pipeline.json"):
        Sketch2AnimePipeline.from_pretrained(tmp_path)
    ae_only = _write_pipeline(tmp_path / "ae", "autoencoder")
    with pytest.raises(ValueError, match="only a stage-1"):
        Sketch2AnimePipeline.from_pretrained(ae_only)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "pipeline.json").write_text(json.dumps(PipelineDescription("diffusion", 64, 4).to_dict()))
    with pytest.raises(ValueError, match="diffusion"):
        Sketch2AnimePipeline.from_pretrained(tmp_path / "odd")


@pytest.mark.parametrize("size", [(64, 64), (150, 90), (37, 200), (640, 480)])
def test_output_has_the_input_size(s2a_folder: Path, size: tuple[int, int]) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    picture, projected = pipe(_sketch(*size), return_projected=True)
    assert picture.size == size and picture.mode == "RGB"
    assert projected.size == size and projected.mode == "L"


@pytest.mark.parametrize("size, expected", [((64, 64), (64, 64)), ((640, 480), (64, 48)), ((90, 150), (38, 64))])
def test_model_output_size_keeps_the_framing(s2a_folder: Path, size: tuple[int, int],
                                             expected: tuple[int, int]) -> None:
    # output_size="model": the model's square output with the padding cut off, not resized.
    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    small, projected = pipe(_sketch(*size), seed=3, return_projected=True, output_size="model")
    assert small.size == projected.size == expected
    full = pipe(_sketch(*size), seed=3)
    back = np.asarray(full.resize(expected, Image.Resampling.BOX), dtype=int)
    assert np.abs(back - np.asarray(small, dtype=int)).mean() < 8  # the same picture, only smaller
    assert [p.size for p in pipe.variations(_sketch(*size), count=2, output_size="model")] == [expected] * 2
    with pytest.raises(ValueError, match="output_size"):
        pipe(_sketch(*size), output_size="512")


def test_inputs_as_path_pil_and_array_agree(s2a_folder: Path, tmp_path: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    array = _sketch(100, 70)
    Image.fromarray(array).save(tmp_path / "s.png")
    hint = np.zeros((70, 100, 4), np.uint8)
    hint[5:30, 5:40] = (200, 30, 30, 255)
    Image.fromarray(hint, "RGBA").save(tmp_path / "h.png")
    a = np.asarray(pipe(array, hint=hint))
    b = np.asarray(pipe(tmp_path / "s.png", hint=tmp_path / "h.png"))
    c = np.asarray(pipe(Image.fromarray(array), hint=Image.fromarray(hint, "RGBA")))
    assert np.array_equal(a, b) and np.array_equal(a, c)
    no_hint = np.asarray(pipe(array))
    assert not np.array_equal(a, no_hint)


def test_hint_is_padded_like_the_sketch(s2a_folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    # A wide 200x100 input sits in rows 16..47 of the 64 px square (hint rows 4..11).
    hint = np.zeros((100, 200, 4), np.uint8)
    hint[:, :100] = (255, 0, 0, 255)  # left half painted red
    _, hint_tensor, size = pipe.prepare(_sketch(200, 100), hint)
    assert size == (200, 100)
    mask = hint_tensor[0, 3]
    assert mask[:4].sum() == 0 and mask[12:].sum() == 0  # the padding has no hint
    assert mask[5:11, :7].all() and mask[5:11, 9:].sum() == 0
    assert torch.allclose(hint_tensor[0, :3, 6, 2], torch.tensor([1.0, -1.0, -1.0]))
    sketch_tensor = pipe.prepare(_sketch(200, 100))[0]
    assert sketch_tensor.shape == (1, 1, 64, 64)
    assert (sketch_tensor[0, 0, :15] == 1).all()  # padded on white paper


def test_generate_tensors_and_projection(s2a_folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    sketch = torch.from_numpy(np.stack([_sketch(64, 64), _sketch(64, 64)[::-1]])).float()[:, None] / 127.5 - 1
    out0 = pipe.generate_tensors(sketch, None, projection=0.0)
    out1 = pipe.generate_tensors(sketch, torch.zeros(2, 4, 16, 16), projection=1.0)
    assert out0["image"].shape == (2, 3, 64, 64) and out0["projected_sketch"].shape == (2, 1, 64, 64)
    assert out0["image"].abs().max() <= 1
    assert not torch.equal(out0["image"], out1["image"])
    assert not torch.equal(out0["projected_sketch"], out1["projected_sketch"])
    with pytest.raises(ValueError, match="projection"):
        pipe.generate_tensors(sketch, None, projection=1.5)
    for bad in (float("nan"), np.bool_(True), "0.5"):
        with pytest.raises(ValueError, match="projection"):
            pipe.generate_tensors(sketch, None, projection=bad)
    # numpy scalars (a value read from an array) are numbers like any other
    assert torch.equal(pipe.generate_tensors(sketch, None, projection=np.float32(0.0))["image"], out0["image"])
    with pytest.raises(ValueError, match="hint"):
        pipe.generate_tensors(sketch, torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="sketch"):
        pipe.generate_tensors(torch.zeros(2, 3, 64, 64))


def test_projection_strength_moves_the_latent_towards_the_bank(s2a_folder: Path) -> None:
    # t = 0 keeps the sketch's own latent, t = 1 reaches the bank manifold, t = 0.5 lies half way
    # (an inverted or ignored strength fails here, not only "the outputs differ").
    from sketch2anime.models.guide import encode_sketch
    from sketch2anime.models.projection import project

    pipe = Sketch2AnimePipeline.from_pretrained(s2a_folder, device="cpu")
    sketch = pipe.prepare(_sketch(64, 64))[0]
    with torch.inference_mode():
        own = encode_sketch(pipe.autoencoder, sketch)
        _, details = project(own, pipe.bank, k=pipe.projection_k, reg=pipe.projection_reg, return_details=True)
        gap = float((own - details.manifold).norm())
        to_manifold = [float((pipe._latents(sketch, t)[0] - details.manifold).norm()) for t in (0.0, 0.5, 1.0)]
    assert gap > 0.1
    assert to_manifold == pytest.approx([gap, gap / 2, 0.0], abs=1e-4 * gap + 1e-5)


def test_variations_differ_and_first_is_the_plain_result(s2a_folder: Path, simple_folder: Path) -> None:
    for folder in (s2a_folder, simple_folder):
        pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
        sketch = _sketch(80, 60)
        pictures = pipe.variations(sketch, count=3, seed=5)
        assert len(pictures) == 3 and all(p.size == (80, 60) for p in pictures)
        arrays = [np.asarray(p, dtype=np.int16) for p in pictures]
        assert np.array_equal(arrays[0], np.asarray(pipe(sketch), dtype=np.int16))
        assert not np.array_equal(arrays[1], arrays[0]) and not np.array_equal(arrays[2], arrays[1])
        again = pipe.variations(sketch, count=3, seed=5)
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(pictures, again))
    with pytest.raises(ValueError, match="count"):
        pipe.variations(sketch, count=0)


def test_simple_gan_ignores_projection(simple_folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(simple_folder, device="cpu")
    assert not pipe.uses_projection
    sketch = _sketch(64, 64)
    a, projected = pipe(sketch, projection=0.0, return_projected=True)
    assert projected is None
    assert np.array_equal(np.asarray(a), np.asarray(pipe(sketch, projection=1.0)))


def _config(sketch: Path, out: Path, model: Path, **extra) -> GenerateConfig:
    return GenerateConfig(sketch=sketch, out=out, model=str(model), seed=0, device="cpu", **extra)


def test_generate_config_refuses_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sketch2anime.cli import main

    for bad, message in ((dict(projection=1.5), "projection"), (dict(upscale=3), "upscale must be one of"),
                         (dict(lines=2.0), "lines"), (dict(seed=1.5), "seed"), (dict(device=""), "device")):
        with pytest.raises(ValueError, match=message):
            GenerateConfig(sketch=tmp_path / "a.png", out=tmp_path / "b.png", **bad)
    config = GenerateConfig(sketch="a.png", out="b", hint="h.png")
    assert (config.sketch, config.out, config.hint, config.model) == (Path("a.png"), Path("b"), Path("h.png"), "default")
    # The command line reaches the same checks: exit 2 with the message, nothing written.
    assert main(["generate", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--projection", "2"]) == 2
    assert "projection must be a number between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()


def test_generate_command_single_file(s2a_folder: Path, tmp_path: Path) -> None:
    Image.fromarray(_sketch(120, 90)).save(tmp_path / "drawing.png")
    assert run_generate(_config(tmp_path / "drawing.png", tmp_path / "result.png", s2a_folder,
                                  save_projected=True)) == 0
    assert Image.open(tmp_path / "result.png").size == (120, 90)
    assert Image.open(tmp_path / "result_projected.png").mode == "L"
    # An output folder gets <stem>.png.
    (tmp_path / "outdir").mkdir()
    assert run_generate(_config(tmp_path / "drawing.png", tmp_path / "outdir", s2a_folder)) == 0
    assert (tmp_path / "outdir" / "drawing.png").is_file()


def test_generate_command_folder_with_hints_and_a_corrupt_file(s2a_folder: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    sketches, hints = tmp_path / "sketches", tmp_path / "hints"
    (sketches / "sub").mkdir(parents=True)
    hints.mkdir()
    Image.fromarray(_sketch(64, 64)).save(sketches / "a.png")
    Image.fromarray(_sketch(90, 60)).save(sketches / "sub" / "b.jpg")
    (sketches / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    hint = np.zeros((64, 64, 4), np.uint8)
    hint[:20, :20] = (0, 0, 255, 255)
    Image.fromarray(hint, "RGBA").save(hints / "a.png")
    out = tmp_path / "out"
    code = run_generate(_config(sketches, out, s2a_folder, hint=hints))
    assert code == 1
    captured = capsys.readouterr()
    assert "broken.png" in captured.err
    assert (out / "a.png").is_file() and Image.open(out / "sub" / "b.png").size == (90, 60)
    assert not (out / "broken.png").exists()
    # The hint was matched by stem: a.png differs from the same sketch without a hint.
    plain = tmp_path / "plain.png"
    assert run_generate(_config(sketches / "a.png", plain, s2a_folder)) == 0
    assert not np.array_equal(np.asarray(Image.open(out / "a.png")), np.asarray(Image.open(plain)))


def test_generate_via_cli_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sketch2anime.cli import main

    monkeypatch.setattr("sketch2anime.inference.DEFAULT_MODEL_DIR", tmp_path / "not-installed")
    Image.fromarray(_sketch(64, 64)).save(tmp_path / "s.png")
    assert main(["generate", str(tmp_path / "s.png"), "-o", str(tmp_path / "o.png")]) == 2
    assert "no default model" in capsys.readouterr().err


def test_generate_on_a_full_disk_says_so(s2a_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from sketch2anime.cli import main

    Image.fromarray(_sketch(64, 64)).save(tmp_path / "s.png")

    def full_disk(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    code = main(["generate", str(tmp_path / "s.png"), "--model", str(s2a_folder), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "o.png" in err and "Traceback" not in err
