"""Running a guided pipeline's generator at a multiple of its trained size (``work_scale.py``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import draw_face
from sketch2anime.cli import main
from sketch2anime.generate import GenerateConfig
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig
from sketch2anime.models.projection import LatentBank
from sketch2anime.pipeline_format import PipelineDescription, write_pipeline_folder

pytestmark = pytest.mark.usefixtures("one_thread")

SPRITES = Path(__file__).parent / "assets" / "sprites"
LATENT = 16


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 px guided pipeline with random weights."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "guided"
    autoencoder = SketchAutoencoder(AutoencoderConfig(image_size=32, latent_dim=LATENT, base_channels=4,
                                                      max_channels=16))
    generator = GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=LATENT, base_channels=4, max_channels=16,
                                            depth=3))
    bank = LatentBank(torch.randn(12, LATENT), [f"face_{i}" for i in range(12)])
    write_pipeline_folder(folder, PipelineDescription("guided", 64, 4, latent_dim=LATENT),
                          {"autoencoder": autoencoder, "generator": generator}, bank=bank)
    return folder


def test_twice_the_size_shares_the_weights_and_sees_the_sketch_at_full_resolution(tiny: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(tiny, device="cpu")
    big = pipe.at_scale(2)
    assert (big.image_size, big.hint_size, big.work_scale) == (128, 32, 2)
    assert (pipe.image_size, pipe.hint_size, pipe.work_scale) == (64, 16, 1)  # the model itself is unchanged
    assert pipe.at_scale(1) is pipe
    assert pipe.at_scale(2) is big and big.at_scale(2) is big and big.at_scale(1) is pipe  # built once, kept
    assert pipe.to("cpu").at_scale(2) is not big  # moving the model drops the views
    big = pipe.at_scale(2)
    for (name, a), b in zip(pipe.generator.named_parameters(), big.generator.parameters()):
        assert a.data_ptr() == b.data_ptr(), name  # one set of weights in memory
    sketch = draw_face(128, 3).convert("L")
    prepared, hint, _ = big.prepare(sketch)
    assert prepared.shape == (1, 1, 128, 128) and hint.shape == (1, 4, 32, 32)
    pixels = torch.from_numpy(np.asarray(sketch, np.float32)) / 127.5 - 1
    assert torch.allclose(prepared[0, 0], pixels, atol=1e-6)  # not resampled through the model's 64 px
    picture = big(sketch, seed=0, output_size="model")
    assert picture.size == (128, 128)
    assert big(sketch, seed=0).size == sketch.size
    # the generator at 128 px is the trained network run on the larger input, nothing else
    z, guide = big._latents(prepared, 0.5)
    expected = big.generator(prepared, guide, hint, z)
    assert torch.allclose(big.generate_tensors(prepared, hint, 0.5)["image"], expected.clamp(-1, 1), atol=1e-6)


def test_moving_a_view_moves_the_model_it_views(tiny: Path) -> None:
    """``view.to(device)`` must not leave the model's weights behind (the meta device stands in for a GPU)."""
    pipe = Sketch2AnimePipeline.from_pretrained(tiny, device="cpu")
    big = pipe.at_scale(2)
    assert big.to(torch.device("meta")) is big
    assert pipe.device == big.device == torch.device("meta")
    for module in (pipe.generator, pipe.autoencoder, big.generator):
        assert all(p.device.type == "meta" for p in module.parameters())
    assert pipe.at_scale(2) is big and big.work_base is pipe and big.image_size == 128


def test_saving_a_scaled_pipeline_writes_the_model_as_trained(tiny: Path, tmp_path: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(tiny, device="cpu")
    pipe.at_scale(2).save_pretrained(tmp_path / "saved")
    again = Sketch2AnimePipeline.from_pretrained(tmp_path / "saved", device="cpu")
    assert again.image_size == 64 and again.generator.config.image_size == 64
    sketch = np.asarray(draw_face(64, 1).convert("L"))
    assert np.array_equal(np.asarray(again(sketch, seed=0)), np.asarray(pipe(sketch, seed=0)))


def test_bad_work_scales_are_refused(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(tiny, device="cpu")
    for bad in (3, 0, 2.0, True, "2"):
        with pytest.raises(ValueError, match="work scale must be 1, 2 or 4"):
            pipe.at_scale(bad)
    with pytest.raises(ValueError, match="work scale must be 1, 2 or 4"):
        GenerateConfig(sketch=Path("s.png"), out=Path("o.png"), work_scale=3)
    monkeypatch.setattr(pipe, "image_size", 256)
    with pytest.raises(ValueError, match="at most 512 px"):
        pipe.at_scale(4)
    monkeypatch.setattr(pipe, "pipeline_type", "pix2pix")
    with pytest.raises(ValueError, match="only guided pipelines"):
        pipe.at_scale(2)


def test_the_default_at_twice_its_size_paints_a_full_length_figure_in_finer_detail(tmp_path: Path) -> None:
    """A whole sprite on a 512 px page: at 128 px its head is ~30 px and the picture is a soft blur;
    at 256 px the same weights draw eyes, hair strands and folds. Fine detail = the variance of the
    Laplacian of the picture at 256 px (the 128 px result enlarged as a viewer would)."""
    from conftest import load_script

    sketch = load_script("work_scale_figure").full_length_line_art(SPRITES / "eileen_happy.png")
    pipe = Sketch2AnimePipeline.from_pretrained("default", device="cpu")
    small = pipe(sketch, seed=0, output_size="model").resize((256, 256), Image.Resampling.BICUBIC)
    large = pipe.at_scale(2)(sketch, seed=0, output_size="model")
    assert large.size == (256, 256)
    detail = [cv2.Laplacian(np.asarray(p.convert("L"), np.float32), cv2.CV_32F).var() for p in (small, large)]
    assert detail[1] > 2.5 * detail[0]
    # and it is still this drawing's picture: the paper around the figure stays light
    corner = np.asarray(large.convert("L"), np.float32)[:24, :24]
    assert corner.mean() > 200
    sketch.save(tmp_path / "figure.png")
    assert main(["generate", str(tmp_path / "figure.png"), "-o", str(tmp_path / "out.png"), "--seed", "0",
                 "--work-scale", "2"]) == 0
    written = np.asarray(Image.open(tmp_path / "out.png").convert("RGB").resize((256, 256), Image.Resampling.BOX),
                         np.int16)
    expected = np.asarray(pipe.at_scale(2)(sketch, seed=0).resize((256, 256), Image.Resampling.BOX), np.int16)
    assert np.abs(written - expected).max() <= 1
    with pytest.raises(SystemExit) as refused:
        main(["generate", str(tmp_path / "figure.png"), "-o", str(tmp_path / "bad.png"), "--work-scale", "3"])
    assert refused.value.code == 2
    assert not (tmp_path / "bad.png").exists()


def test_the_pairs_script_scores_both_sizes_against_the_same_targets(tiny: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from conftest import load_script

    for i in range(3):
        face = draw_face(256, i)
        (tmp_path / "pairs" / "sketch").mkdir(parents=True, exist_ok=True)
        (tmp_path / "pairs" / "color").mkdir(exist_ok=True)
        face.save(tmp_path / "pairs" / "color" / f"{i}.png")
        face.convert("L").point(lambda v: 255 if v > 120 else 0).save(tmp_path / "pairs" / "sketch" / f"{i}.png")
    script = load_script("work_scale_pairs")
    monkeypatch.setattr("sys.argv", ["work_scale_pairs.py", "--model", str(tiny), "--pairs", str(tmp_path / "pairs")])
    script.main()
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    names = [r[0].strip() for r in rows]
    assert names == ["floor: the 128 px sketch", "floor: the 64 px sketch enlarged", f"{tiny} at 64 px, enlarged",
                     f"{tiny} at 128 px (work scale 2)"]
    scores = [float(r[1]) for r in rows]
    assert all(-1 <= s <= 1 for s in scores) and scores[0] != scores[1]
    # a model of another size would be scored against the first model's targets: refused
    other = tmp_path / "guided32"
    write_pipeline_folder(other, PipelineDescription("guided", 32, 4, latent_dim=LATENT),
                          {"autoencoder": SketchAutoencoder(AutoencoderConfig(image_size=32, latent_dim=LATENT,
                                                                              base_channels=4, max_channels=16)),
                           "generator": GuidedUNet(GuidedUNetConfig(image_size=32, latent_dim=LATENT, base_channels=4,
                                                                    max_channels=16, depth=3))},
                          bank=LatentBank(torch.randn(12, LATENT), [f"face_{i}" for i in range(12)]))
    monkeypatch.setattr("sys.argv", ["work_scale_pairs.py", "--model", str(tiny), "--model", str(other),
                                     "--pairs", str(tmp_path / "pairs")])
    with pytest.raises(SystemExit, match="one size per run"):
        script.main()


def test_the_http_api_runs_a_guided_model_at_twice_its_size_on_request(tiny: Path, tmp_path: Path) -> None:
    import base64
    import io

    from fastapi.testclient import TestClient

    from sketch2anime.server.app import create_app
    from sketch2anime.testing import tiny_pipeline
    from sketch2anime.testing.images import sketch_png

    guided = Sketch2AnimePipeline.from_pretrained(tiny, device="cpu")
    plain = Sketch2AnimePipeline.from_pretrained(tiny_pipeline(tmp_path / "plain", "simple_gan"), device="cpu")
    client = TestClient(create_app({"guided": guided, "plain": plain}), base_url="http://127.0.0.1")
    sketch = sketch_png(256)
    form = {"projection": "0.3", "seed": "5", "output_size": "model"}

    def picture(body: dict) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1]))))

    res = client.post("/api/generate", files={"sketch": ("s.png", sketch, "image/png")}, data={**form, "work_scale": "2"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["work_scale"] == 2
    expected = guided.at_scale(2)(Image.open(io.BytesIO(sketch)), projection=0.3, seed=5, output_size="model")
    assert picture(body).shape == (128, 128, 3) and np.array_equal(picture(body), np.asarray(expected))
    variations = client.post("/api/variations", files={"sketch": ("s.png", sketch, "image/png")},
                             data={**form, "work_scale": "2", "count": "2"}).json()["images"]
    assert np.array_equal(picture({"image": variations[0]}), picture(body))  # the candidates at the same size
    own = client.post("/api/generate", files={"sketch": ("s.png", sketch, "image/png")}, data=form).json()
    assert own["work_scale"] == 1 and picture(own).shape == (64, 64, 3)  # by default the model's own size
    refused = client.post("/api/generate", files={"sketch": ("s.png", sketch, "image/png")},
                          data={**form, "work_scale": "2", "model": "plain"})
    assert refused.status_code == 400 and "only guided pipelines" in refused.json()["detail"]
    from test_server_api import FakePipeline  # any object with a pipeline's call, but no at_scale

    fake = TestClient(create_app({"fake": FakePipeline()}), base_url="http://127.0.0.1")
    answer = fake.post("/api/generate", files={"sketch": ("s.png", sketch, "image/png")},
                       data={**form, "work_scale": "2"})
    assert answer.status_code == 400 and "cannot run at another size" in answer.json()["detail"]
    for bad in ("3", "0", "big"):
        assert client.post("/api/generate", files={"sketch": ("s.png", sketch, "image/png")},
                           data={**form, "work_scale": bad}).status_code == 422
