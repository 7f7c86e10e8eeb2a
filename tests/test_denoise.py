"""The bilateral picture clean-up (models/denoise.py) and its pipeline.json entry."""

from __future__ import annotations

import json

import pytest
import torch

from sketch2anime.checkpoint import CheckpointError
from sketch2anime.models.denoise import DenoiseConfig, bilateral_denoise
from sketch2anime.pipeline_format import PipelineDescription


def _page(level: float = 0.2, side: int = 32) -> torch.Tensor:
    return torch.full((1, 3, side, side), level)


def test_a_flat_picture_stays_as_it_is() -> None:
    page = _page()
    assert torch.allclose(bilateral_denoise(page, DenoiseConfig()), page, atol=1e-6)


def test_faint_speckle_is_smoothed_and_a_strong_edge_is_kept() -> None:
    generator = torch.Generator().manual_seed(0)
    # left half dark, right half light (an inked edge, ~200 levels), both with speckle of ~5 levels
    clean = torch.full((1, 3, 32, 32), -0.7)
    clean[..., 16:] = 0.8
    speckled = clean + 0.04 * torch.randn(clean.shape, generator=generator)
    out = bilateral_denoise(speckled, DenoiseConfig(diameter=7, sigma_colour=15.0, sigma_space=3.0))
    assert out.shape == speckled.shape and out.dtype == speckled.dtype
    inside = (slice(None), slice(None), slice(4, 28))
    for half in (slice(2, 12), slice(20, 30)):
        noise_before = (speckled[inside][..., half] - clean[inside][..., half]).std()
        noise_after = (out[inside][..., half] - clean[inside][..., half]).std()
        assert noise_after < 0.5 * noise_before
    # the columns either side of the edge keep their level: no grey seam as a blur would leave
    assert (out[..., 15] - clean[..., 15]).abs().max() < 0.05
    assert (out[..., 16] - clean[..., 16]).abs().max() < 0.05


def test_the_colour_term_is_what_keeps_edges() -> None:
    # with a huge colour sigma the filter is a plain blur: the edge goes grey
    edge = torch.full((1, 3, 32, 32), -1.0)
    edge[..., 16:] = 1.0
    blurred = bilateral_denoise(edge, DenoiseConfig(sigma_colour=1e6))
    kept = bilateral_denoise(edge, DenoiseConfig(sigma_colour=15.0))
    assert (blurred[..., 16] - 1.0).abs().min() > 0.3
    assert torch.allclose(kept, edge, atol=1e-4)


def test_each_picture_is_filtered_on_its_own() -> None:
    generator = torch.Generator().manual_seed(1)
    batch = (torch.rand((3, 3, 24, 24), generator=generator) * 2 - 1)
    together = bilateral_denoise(batch, DenoiseConfig(diameter=5))
    one_by_one = torch.cat([bilateral_denoise(batch[i:i + 1], DenoiseConfig(diameter=5)) for i in range(3)])
    assert torch.allclose(together, one_by_one, atol=1e-6)
    assert together.min() >= -1 and together.max() <= 1


@pytest.mark.parametrize("bad", [dict(diameter=4), dict(diameter=1), dict(diameter=17), dict(diameter=7.0),
                                 dict(sigma_colour=0), dict(sigma_space=-1), dict(sigma_colour=float("nan")),
                                 dict(sigma_space=True)])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="denoise"):
        DenoiseConfig(**bad)


def test_bad_pictures_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        bilateral_denoise(torch.zeros(1, 1, 16, 16), DenoiseConfig())
    with pytest.raises(ValueError, match="larger than 3 px"):
        bilateral_denoise(torch.zeros(1, 3, 3, 3), DenoiseConfig(diameter=7))


def test_pipeline_json_carries_the_setting_both_ways() -> None:
    setting = DenoiseConfig(diameter=5, sigma_colour=12.0, sigma_space=2.0)
    description = PipelineDescription("guided", 32, 4, latent_dim=8, denoise=setting)
    again = PipelineDescription.from_dict(json.loads(json.dumps(description.to_dict())))
    assert again.denoise == setting and "denoise" not in again.extra
    plain = PipelineDescription("guided", 32, 4, latent_dim=8)
    assert "denoise" not in plain.to_dict() and PipelineDescription.from_dict(plain.to_dict()).denoise is None


@pytest.mark.parametrize("entry", [{"diameter": 4, "sigma_colour": 15.0, "sigma_space": 3.0},
                                   {"diameter": 7, "sigma_colour": 15.0},
                                   {"diameter": 7, "sigma_colour": 15.0, "sigma_space": 3.0, "strength": 1},
                                   "on"])
def test_a_bad_pipeline_json_entry_is_a_checkpoint_error(entry) -> None:
    data = PipelineDescription("guided", 32, 4, latent_dim=8).to_dict()
    data["denoise"] = entry
    with pytest.raises(CheckpointError, match="denoise"):
        PipelineDescription.from_dict(data, "x/pipeline.json")


# ---- in a pipeline folder ---------------------------------------------------------------------

def _sketch():
    from sketch2anime.testing.images import draw_face

    return draw_face(64, seed=3).convert("L")


def test_a_folder_with_the_setting_cleans_its_pictures_and_saves_it_back(tmp_path) -> None:
    import numpy as np

    from conftest import load_script
    from sketch2anime.inference import Sketch2AnimePipeline
    from sketch2anime.testing import tiny_pipeline

    set_denoise = load_script("set_denoise")
    raw_folder = tiny_pipeline(tmp_path / "raw", kind="sketch2anime")
    setting = DenoiseConfig(diameter=5, sigma_colour=30.0, sigma_space=2.0)
    assert set_denoise.main([str(raw_folder), "--out", str(tmp_path / "clean"), "--diameter", "5",
                             "--sigma-colour", "30", "--sigma-space", "2"]) == 0
    raw, clean = (Sketch2AnimePipeline.from_pretrained(f) for f in (raw_folder, tmp_path / "clean"))
    assert raw.description.denoise is None and clean.description.denoise == setting
    sketch = (torch.from_numpy(np.asarray(_sketch(), dtype=np.float32)) / 127.5 - 1)[None, None]
    before = raw.generate_tensors(sketch, projection=0.0)["image"]
    after = clean.generate_tensors(sketch, projection=0.0)["image"]
    assert not torch.allclose(before, after, atol=1e-3)  # an untrained generator's noise is filtered
    assert torch.allclose(after, bilateral_denoise(before, setting), atol=1e-5)
    # the image API and the variations go through the same clean-up
    picture = np.asarray(clean(_sketch(), projection=0.0, output_size="model"), dtype=np.float32)
    expected = (bilateral_denoise(before, setting)[0].permute(1, 2, 0).numpy() + 1) * 127.5
    assert np.abs(picture - expected).max() <= 1.0
    first = np.asarray(clean.variations(_sketch(), projection=0.0, count=2, seed=1, output_size="model")[0],
                       dtype=np.float32)
    assert np.abs(first - picture).max() <= 1.0
    clean.save_pretrained(tmp_path / "saved")
    assert Sketch2AnimePipeline.from_pretrained(tmp_path / "saved").description.denoise == setting
    # and off again, in place
    assert set_denoise.main([str(tmp_path / "clean"), "--off"]) == 0
    assert Sketch2AnimePipeline.from_pretrained(tmp_path / "clean").description.denoise is None


def test_set_denoise_refuses_bad_requests_and_changes_nothing(tmp_path, capsys) -> None:
    from conftest import load_script
    from sketch2anime.testing import tiny_pipeline

    set_denoise = load_script("set_denoise")
    folder = tiny_pipeline(tmp_path / "m", kind="sketch2anime")
    before = (folder / "pipeline.json").read_bytes()
    assert set_denoise.main([str(folder), "--diameter", "4"]) == 2
    assert set_denoise.main([str(folder), "--out", str(folder)]) == 2  # exists
    assert set_denoise.main([str(tmp_path / "nowhere")]) == 2
    assert (folder / "pipeline.json").read_bytes() == before
    assert "odd whole number" in capsys.readouterr().err


def test_denoise_false_gives_the_raw_pictures_on_every_path(tmp_path) -> None:
    import numpy as np

    from sketch2anime.cli import main as cli_main
    from sketch2anime.inference import Sketch2AnimePipeline
    from sketch2anime.pipeline_format import PipelineDescription
    from sketch2anime.testing import tiny_pipeline

    raw_folder = tiny_pipeline(tmp_path / "raw", kind="sketch2anime")
    clean_folder = tiny_pipeline(tmp_path / "clean", kind="sketch2anime")
    PipelineDescription.read(clean_folder).replace(denoise=DenoiseConfig(5, 30.0, 2.0)).write(clean_folder)
    raw, clean = (Sketch2AnimePipeline.from_pretrained(f) for f in (raw_folder, clean_folder))
    sketch = _sketch()
    as_array = lambda picture: np.asarray(picture, dtype=np.int16)  # noqa: E731
    plain = as_array(raw(sketch, projection=0.0))
    assert np.abs(as_array(clean(sketch, projection=0.0)) - plain).max() > 2  # the clean-up is on by default
    assert np.array_equal(as_array(clean(sketch, projection=0.0, denoise=False)), plain)
    # a batch may round a level differently; the clean-up moves pictures by far more
    assert np.abs(as_array(clean([sketch, sketch], projection=0.0, denoise=False)[1]) - plain).max() <= 1
    assert np.abs(as_array(clean.variations(sketch, projection=0.0, count=2, seed=1, denoise=False)[0])
                  - plain).max() <= 1
    lined = as_array(raw(sketch, projection=0.0, lines=1.0))  # the kept-lines path (upscale/pipeline.py)
    assert np.array_equal(as_array(clean(sketch, projection=0.0, lines=1.0, denoise=False)), lined)
    assert np.abs(as_array(clean(sketch, projection=0.0, lines=1.0)) - lined).max() > 2
    sketch.save(tmp_path / "sketch.png")
    for flag, expected_same in (([], False), (["--no-denoise"], True)):
        out = tmp_path / f"out{len(flag)}.png"
        assert cli_main(["generate", str(tmp_path / "sketch.png"), "-o", str(out), "--model", str(clean_folder),
                         "--projection", "0", *flag]) == 0
        from PIL import Image

        assert (np.abs(as_array(Image.open(out).convert("RGB")) - plain).max() <= 1) == expected_same
    with pytest.raises(ValueError, match="denoise must be True"):
        clean(sketch, denoise="no")


# ---- the flip average ----------------------------------------------------------------------------

def test_pipeline_json_carries_the_flip_average_and_refuses_a_bad_one() -> None:
    on = PipelineDescription("guided", 32, 4, latent_dim=8, flip_average=True)
    assert on.to_dict()["flip_average"] is True
    assert PipelineDescription.from_dict(json.loads(json.dumps(on.to_dict()))).flip_average is True
    off = PipelineDescription("guided", 32, 4, latent_dim=8)
    assert "flip_average" not in off.to_dict() and PipelineDescription.from_dict(off.to_dict()).flip_average is False
    for bad in ("yes", 1, None):
        with pytest.raises(CheckpointError, match="flip_average must be true or false"):
            PipelineDescription.from_dict({**off.to_dict(), "flip_average": bad}, "x/pipeline.json")


def test_the_flip_average_is_the_mean_with_the_mirrored_drawing_before_the_filter(tmp_path) -> None:
    """The picture is (G(x) + mirror(G(mirror(x)))) / 2 with x = sketch, hints and guide (the latent
    kept), then the bilateral filter; ``denoise=False`` skips both."""
    import numpy as np

    from conftest import load_script
    from sketch2anime.inference import Sketch2AnimePipeline
    from sketch2anime.testing import tiny_pipeline

    set_denoise = load_script("set_denoise")
    raw_folder = tiny_pipeline(tmp_path / "raw", kind="sketch2anime")
    setting = DenoiseConfig(5, 30.0, 2.0)
    assert set_denoise.main([str(raw_folder), "--out", str(tmp_path / "flip"), "--diameter", "5",
                             "--sigma-colour", "30", "--sigma-space", "2", "--flip-average"]) == 0
    raw, flip = (Sketch2AnimePipeline.from_pretrained(f) for f in (raw_folder, tmp_path / "flip"))
    assert flip.description.flip_average and flip.description.denoise == setting
    sketch = (torch.from_numpy(np.asarray(_sketch(), dtype=np.float32)) / 127.5 - 1)[None, None]
    hint = torch.zeros(1, 4, 16, 16)
    hint[0, :, 2:5, 3:6] = torch.tensor([1.0, -1.0, -1.0, 1.0])[:, None, None]  # a red dab on the left
    with torch.inference_mode():
        z, decoded = raw._latents(sketch, 0.0)
        direct = raw.run_generator(sketch, hint, z, decoded)
        mirrored = raw.run_generator(sketch.flip(-1), hint.flip(-1), z, decoded.flip(-1)).flip(-1)
    assert not torch.allclose(direct, mirrored, atol=1e-3)  # an untrained generator is not symmetric
    expected = bilateral_denoise((direct + mirrored) / 2, setting)
    assert torch.allclose(flip.generate_tensors(sketch, hint, projection=0.0)["image"], expected, atol=1e-5)
    assert torch.allclose(flip.generate_tensors(sketch, hint, projection=0.0, denoise=False)["image"],
                          direct.clamp(-1, 1), atol=1e-5)
    first = np.asarray(flip.variations(_sketch(), projection=0.0, count=2, seed=1, output_size="model")[0],
                       dtype=np.float32)
    picture = np.asarray(flip(_sketch(), projection=0.0, output_size="model"), dtype=np.float32)
    assert np.abs(first - picture).max() <= 1.0
    flip.save_pretrained(tmp_path / "saved")
    assert Sketch2AnimePipeline.from_pretrained(tmp_path / "saved").description.flip_average is True
    assert set_denoise.main([str(tmp_path / "flip"), "--off", "--flip-average"]) == 2
    assert set_denoise.main([str(tmp_path / "flip"), "--off"]) == 0
    assert not Sketch2AnimePipeline.from_pretrained(tmp_path / "flip").description.flip_average
