"""The guided U-Net (the default model's generator), its guide, and its training stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import draw_face, load_script
from sketch2anime.checkpoint import read_tensors
from sketch2anime.config import ConfigError
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset
from sketch2anime.grow_model import grow_pipeline
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.guide import autoencoder_input, encode_sketch, guide_from_latent
from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig, recentre_latent_modulation
from sketch2anime.models.projection import LatentBank
from sketch2anime.training.config import load_experiment
from sketch2anime.training.run import train_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

pytestmark = pytest.mark.usefixtures("one_thread")


def _prepared(tmp_path_factory: pytest.TempPathFactory, size: int) -> Path:
    source = tmp_path_factory.mktemp(f"faces{size}")
    for i in range(10):
        draw_face(size, i).save(source / f"face_{i:02d}.png")
    out = tmp_path_factory.mktemp("data") / f"tiny{size}"
    prepare_dataset(source, out, PrepareConfig(size=size, extractors=("detail", "xdog"), val_fraction=0.2, workers=1),
                    progress=False)
    return out


@pytest.fixture(scope="module")
def dataset64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _prepared(tmp_path_factory, 64)


@pytest.fixture(scope="module")
def autoencoder64(tmp_path_factory: pytest.TempPathFactory, dataset64: Path) -> Path:
    """A stage-1 run at 64 px: the guided stage below runs at 128 px on top of it."""
    torch.set_num_threads(1)
    dataset = dataset64
    out = tmp_path_factory.mktemp("runs") / "ae"
    train_experiment(load_experiment(CONFIGS / "test_autoencoder.toml", [
        f"data.root={json.dumps(str(dataset))}", f"experiment.output_dir={json.dumps(str(out))}", "train.steps=4"]))
    return out


@pytest.fixture(scope="module")
def dataset128(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _prepared(tmp_path_factory, 128)


def _guided_config(dataset: Path, ae: Path, out: Path, *extra: str):
    return load_experiment(CONFIGS / "test_guided.toml", [
        f"data.root={json.dumps(str(dataset))}", f"experiment.output_dir={json.dumps(str(out))}",
        f"experiment.autoencoder_dir={json.dumps(str(ae))}", *extra])


# ---- the network ----------------------------------------------------------------------------

def _inputs(n: int = 2, size: int = 64, hint_size: int = 16, latent: int = 8):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, size, size, generator=g) * 2 - 1, torch.rand(n, 1, size, size, generator=g) * 2 - 1,
            torch.zeros(n, 4, hint_size, hint_size), torch.randn(n, latent, generator=g))


def test_guided_unet_shapes_and_range() -> None:
    net = GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=8, base_channels=4, max_channels=16, depth=3))
    sketch, guide, hint, z = _inputs()
    out = net(sketch, guide, hint, z)
    assert out.shape == (2, 3, 64, 64)
    assert float(out.detach().abs().max()) <= 1.0


def test_guided_unet_uses_every_input() -> None:
    """Changing the user sketch, the guide, the hint or z each changes the picture."""
    torch.manual_seed(0)
    net = GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=8, base_channels=4, max_channels=16, depth=3))
    for block in net.middle:  # FiLM starts as the identity; give z a real effect for this check
        torch.nn.init.normal_(block.film.weight, std=0.5)
    sketch, guide, hint, z = _inputs()
    hinted = hint.clone()
    hinted[:, :3, 4:8, 4:8] = 0.8
    hinted[:, 3, 4:8, 4:8] = 1.0
    base = net(sketch, guide, hint, z)
    for changed in (net(-sketch, guide, hint, z), net(sketch, -guide, hint, z), net(sketch, guide, hinted, z),
                    net(sketch, guide, hint, -z)):
        assert float((changed - base).detach().abs().mean()) > 1e-3


def test_guided_unet_refuses_bad_inputs() -> None:
    net = GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=8, base_channels=4, max_channels=16, depth=3))
    sketch, guide, hint, z = _inputs()
    with pytest.raises(ValueError, match="z of shape"):
        net(sketch, guide, hint, None)
    with pytest.raises(ValueError):
        net(sketch, guide[:, :, :32, :32], hint, z)
    with pytest.raises(ValueError):
        net(sketch, guide, torch.zeros(2, 4, 32, 32), z)
    no_latent = GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=0, base_channels=4, max_channels=16, depth=3))
    assert no_latent(sketch, guide, hint).shape == (2, 3, 64, 64)


def test_recentred_modulation_keeps_the_mean_latent_output_and_ignores_z() -> None:
    """After recentring, any z gives what the old weights gave at the mean latent (not at z = 0)."""
    torch.manual_seed(0)
    net = GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=8, base_channels=4, max_channels=16, depth=3))
    for block in net.middle:
        torch.nn.init.normal_(block.film.weight, std=0.5)
        torch.nn.init.normal_(block.film.bias, std=0.1)
    sketch, guide, hint, z = _inputs()
    mean = torch.randn(8) * 2
    with torch.no_grad():
        at_mean = net(sketch, guide, hint, mean.expand(2, 8))
        at_zero = net(sketch, guide, hint, torch.zeros(2, 8))
        recentre_latent_modulation(net, mean)
        after = net(sketch, guide, hint, z)
    assert torch.allclose(after, at_mean, atol=1e-5)
    assert float((after - at_zero).abs().mean()) > 1e-3  # dropping the weights alone would give this
    assert all(float(block.film.weight.detach().abs().max()) == 0 for block in net.middle)
    with pytest.raises(ValueError, match="mean latent"):
        recentre_latent_modulation(net, torch.zeros(7))


@pytest.mark.parametrize("changes, message", [({"image_size": 96}, "power of two"), ({"depth": 5}, "depth"),
                                              ({"hint_downscale": 32}, "hint_downscale"), ({"norm": "batch"}, "norm")])
def test_guided_unet_config_validation(changes: dict, message: str) -> None:
    values = {"image_size": 64, "depth": 3, **changes}
    with pytest.raises(ConfigError, match=message):
        GuidedUNetConfig(**values)


# ---- the guide ------------------------------------------------------------------------------

def test_autoencoder_input_keeps_thin_lines_dark() -> None:
    sketch = torch.ones(1, 1, 128, 128)
    sketch[..., 41, :] = -1.0  # a 1 px line on an odd row: plain 2x averaging would make it grey (0)
    pooled = autoencoder_input(sketch, 64)
    assert pooled.shape == (1, 1, 64, 64)
    assert float(pooled[0, 0, 20].max()) == -1.0  # the line, still full ink
    assert float(pooled[0, 0, 10].min()) == 1.0   # paper stays paper
    with pytest.raises(ValueError, match="cannot be pooled"):
        autoencoder_input(torch.ones(1, 1, 96, 96), 64)


def test_guide_is_the_decoded_latent_at_model_size() -> None:
    torch.manual_seed(0)
    ae = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=16, base_channels=4, max_channels=16)).eval()
    sketch = torch.ones(2, 1, 128, 128)
    sketch[:, :, 30:90, 60:62] = -1.0
    with torch.no_grad():
        z = encode_sketch(ae, sketch)
        assert torch.allclose(z, ae.encode(autoencoder_input(sketch, 64)))
        guide = guide_from_latent(ae, z, 128)
        small = ae.decode_sketch(z)
    assert guide.shape == (2, 1, 128, 128)
    # Upsampled, then averaged back down, it is the decoder's own picture.
    back = torch.nn.functional.avg_pool2d(guide, 2)
    assert float((back - small).abs().mean()) < 0.05


# ---- the stage --------------------------------------------------------------------------------

def test_guided_stage_trains_and_exports_a_standalone_128px_pipeline(autoencoder64: Path, dataset128: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "guided"
    train_experiment(_guided_config(dataset128, autoencoder64, out))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4
    for key in ("d_loss", "g_adv", "l1", "fm", "hint"):
        assert np.isfinite(records[-1][key]), key
    bank = LatentBank.load(out / "bank" / "latent_bank")
    assert all(i.split("/")[1] in ("detail", "xdog") for i in bank.ids)
    model = out / "model"
    description = json.loads((model / "pipeline.json").read_text())
    assert description["pipeline_type"] == "guided" and description["image_size"] == 128
    assert read_tensors(model / "latent_bank.safetensors")["latents"].dtype == torch.float16

    autoencoder64.rename(autoencoder64.with_name("moved"))  # the folder stands alone
    try:
        pipe = Sketch2AnimePipeline.from_pretrained(model, device="cpu")
        sketch = np.full((90, 150), 255, np.uint8)
        sketch[20:70, 40:43] = 0
        picture, projected = pipe(sketch, projection=0.7, return_projected=True)
        assert picture.size == (150, 90) and picture.mode == "RGB"
        assert projected.size == (150, 90)
        tensors = pipe.generate_tensors(torch.ones(1, 1, 128, 128), projection=0.0)
        assert tensors["image"].shape == (1, 3, 128, 128) and tensors["projected_sketch"].shape == (1, 1, 128, 128)
    finally:
        autoencoder64.with_name("moved").rename(autoencoder64)


def test_guided_stage_resumes_exactly(autoencoder64: Path, dataset128: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    train_experiment(_guided_config(dataset128, autoencoder64, straight))
    resumed = tmp_path / "resumed"
    train_experiment(_guided_config(dataset128, autoencoder64, resumed, "train.steps=2"))
    train_experiment(_guided_config(dataset128, autoencoder64, resumed), resume=True)
    a = read_tensors(straight / "model" / "generator" / "model.safetensors")
    b = read_tensors(resumed / "model" / "generator" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_guided_stage_with_a_multiscale_discriminator_trains_and_resumes_exactly(
        autoencoder64: Path, dataset128: Path, tmp_path: Path) -> None:
    """discriminator.scales = 2: both scales train, their state is saved, and a resumed run matches."""
    straight = tmp_path / "straight"
    train_experiment(_guided_config(dataset128, autoencoder64, straight, "discriminator.scales=2"))
    resumed = tmp_path / "resumed"
    train_experiment(_guided_config(dataset128, autoencoder64, resumed, "discriminator.scales=2", "train.steps=2"))
    train_experiment(_guided_config(dataset128, autoencoder64, resumed, "discriminator.scales=2"), resume=True)
    a = read_tensors(straight / "model" / "generator" / "model.safetensors")
    b = read_tensors(resumed / "model" / "generator" / "model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)
    plain = tmp_path / "plain"  # the coarse scale reaches the generator: one scale trains it otherwise
    train_experiment(_guided_config(dataset128, autoencoder64, plain))
    c = read_tensors(plain / "model" / "generator" / "model.safetensors")
    assert not all(torch.allclose(a[key], c[key]) for key in a)


def test_flatness_weight_adds_the_region_flatness_loss_to_the_generator_update(
        autoencoder64: Path, dataset128: Path, tmp_path: Path) -> None:
    plain, weighted = tmp_path / "plain", tmp_path / "flat"
    train_experiment(_guided_config(dataset128, autoencoder64, plain, "train.log_every=1"))
    train_experiment(_guided_config(dataset128, autoencoder64, weighted, "train.log_every=1",
                                    "train.flatness_weight=50"))
    read = lambda run: [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    without, with_flatness = read(plain)[0], read(weighted)[0]
    assert "flatness" not in without and with_flatness["flatness"] > 0  # the drawn faces enclose regions
    # Same seed, same first fake: the totals differ by the weighted term alone.
    added = with_flatness["g_loss"] - without["g_loss"]
    assert added == pytest.approx(50 * with_flatness["flatness"], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("regions", ["clean", "input"])
def test_flatness_regions_come_from_the_chosen_sketch(autoencoder64: Path, dataset128: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, regions: str) -> None:
    from sketch2anime.training import guided_stage

    seen: dict[str, list[torch.Tensor]] = {"clean": [], "input": [], "lines": []}
    condition, labels = guided_stage.GuidedStage.condition, guided_stage.region_labels

    def recording_condition(self, clean, user, ids):
        seen["clean"].append(clean.clone())
        seen["input"].append(user.clone())
        return condition(self, clean, user, ids)

    def recording_labels(lines, *args):
        seen["lines"].append(lines.clone())
        return labels(lines, *args)

    monkeypatch.setattr(guided_stage.GuidedStage, "condition", recording_condition)
    monkeypatch.setattr(guided_stage, "region_labels", recording_labels)
    train_experiment(_guided_config(dataset128, autoencoder64, tmp_path / "run", "train.flatness_weight=5",
                                    f"train.flatness_regions={json.dumps(regions)}", "data.rough_probability=1"))
    assert len(seen["lines"]) == len(seen["clean"]) >= 1
    assert not torch.equal(seen["clean"][0], seen["input"][0])  # every input was roughened
    for step, lines in enumerate(seen["lines"]):
        assert torch.equal(lines, seen[regions][step])


def test_denoise_puts_the_clean_up_between_the_generator_and_every_loss_and_ships_it(
        autoencoder64: Path, dataset128: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sketch2anime.models.denoise import DenoiseConfig, bilateral_denoise
    from sketch2anime.training import guided_stage

    raw_pictures, judged = [], []
    discriminator_update = guided_stage.GuidedStage.discriminator_update
    generator_update = guided_stage.GuidedStage.generator_update

    def recording_d(self, image, fake, *args):
        judged.append(("d", fake.detach().clone()))
        return discriminator_update(self, image, fake, *args)

    def recording_g(self, image, fake, *args):
        judged.append(("g", fake.detach().clone()))
        return generator_update(self, image, fake, *args)

    monkeypatch.setattr(guided_stage.GuidedStage, "discriminator_update", recording_d)
    monkeypatch.setattr(guided_stage.GuidedStage, "generator_update", recording_g)
    original_init = guided_stage.GuidedStage.__init__

    def hooked_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.G.register_forward_hook(lambda module, inputs, output: raw_pictures.append(output.detach().clone())
                                     if module.training else None)

    monkeypatch.setattr(guided_stage.GuidedStage, "__init__", hooked_init)
    setting = DenoiseConfig(5, 40.0, 2.0)
    run = tmp_path / "run"
    train_experiment(_guided_config(dataset128, autoencoder64, run, "train.steps=2", 'train.denoise="5,40,2"'))
    assert len(raw_pictures) == 2 and [kind for kind, _ in judged] == ["d", "g", "d", "g"]
    for step, raw in enumerate(raw_pictures):
        expected = bilateral_denoise(raw, setting)
        assert not torch.allclose(expected, raw, atol=1e-3)  # so a loss fed the raw picture fails below
        for kind, fake in judged[2 * step:2 * step + 2]:
            assert torch.allclose(fake, expected, atol=1e-5), kind
    # The exported folder shows its pictures through the same clean-up, so it scores what was trained.
    description = json.loads((run / "model" / "pipeline.json").read_text())
    assert description["denoise"] == setting.to_dict()
    assert Sketch2AnimePipeline.from_pretrained(run / "model", device="cpu").description.denoise == setting


def test_flip_consistency_pulls_the_picture_towards_its_mirrored_twin(
        autoencoder64: Path, dataset128: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sketch2anime.training import guided_stage

    calls, passed = [], []
    generator_update = guided_stage.GuidedStage.generator_update

    def recording_g(self, *args):
        passed.append(args[-1])
        return generator_update(self, *args)

    monkeypatch.setattr(guided_stage.GuidedStage, "generator_update", recording_g)
    original_init = guided_stage.GuidedStage.__init__

    def hooked_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.G.register_forward_hook(lambda module, inputs, output: calls.append(
            ([x.detach().clone() for x in inputs[:3]], output.detach().clone())) if module.training else None)

    monkeypatch.setattr(guided_stage.GuidedStage, "__init__", hooked_init)
    plain, weighted = tmp_path / "plain", tmp_path / "flip"
    train_experiment(_guided_config(dataset128, autoencoder64, weighted, "train.log_every=1", "train.steps=1",
                                    "train.flip_consistency_weight=50"))
    assert len(calls) == 2 and passed[0] is not None
    (inputs, picture), (mirrored_inputs, mirrored_picture) = calls
    for given, flipped in zip(inputs, mirrored_inputs):  # sketch, guide, hint: all mirrored
        assert torch.equal(flipped, given.flip(-1))
    assert torch.allclose(passed[0], mirrored_picture.flip(-1))  # and the picture mirrored back
    assert not torch.allclose(passed[0], picture, atol=1e-3)
    half_gap = 0.5 * float((picture.float() - passed[0].float()).abs().mean())
    calls.clear()
    passed.clear()
    train_experiment(_guided_config(dataset128, autoencoder64, plain, "train.log_every=1", "train.steps=1"))
    assert len(calls) == 1 and passed == [None]
    read = lambda run: [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    without, with_flip = read(plain)[0], read(weighted)[0]
    assert "flip" not in without and with_flip["flip"] > 0
    # the distance to the mean of the two pictures (half that to the twin), and the only change to the total
    assert with_flip["flip"] == pytest.approx(half_gap, rel=1e-3)
    assert with_flip["g_loss"] - without["g_loss"] == pytest.approx(50 * with_flip["flip"], rel=1e-3, abs=1e-5)
    with pytest.raises(ConfigError, match="flip_consistency_weight is only used by the guided stage"):
        load_experiment(CONFIGS / "test_pix2pix.toml", ["train.flip_consistency_weight=1"])


def test_denoise_needs_the_setting_form_and_the_guided_stage(autoencoder64: Path, dataset128: Path,
                                                             tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.denoise.*DIAMETER,SIGMA_COLOUR,SIGMA_SPACE"):
        _guided_config(dataset128, autoencoder64, tmp_path / "a", 'train.denoise="7,5"')
    with pytest.raises(ConfigError, match="train.denoise.*odd"):
        _guided_config(dataset128, autoencoder64, tmp_path / "b", 'train.denoise="6,5,3"')
    with pytest.raises(ConfigError, match="train.denoise is only used by the guided stage"):
        load_experiment(CONFIGS / "test_pix2pix.toml", ['train.denoise="7,5,3"'])
    plain = tmp_path / "plain"
    train_experiment(_guided_config(dataset128, autoencoder64, plain, "train.steps=1"))
    assert "denoise" not in json.loads((plain / "model" / "pipeline.json").read_text())


def test_guided_stage_fine_tunes_from_an_exported_generator(autoencoder64: Path, dataset128: Path,
                                                             tmp_path: Path) -> None:
    """init_generator starts G from a pipeline's weights: at a vanishing lr the export is those weights exactly."""
    first = tmp_path / "first"  # another seed: its weights differ from a fresh seed-0 start
    train_experiment(_guided_config(dataset128, autoencoder64, first, "experiment.seed=1"))
    tuned = tmp_path / "tuned"
    train_experiment(_guided_config(dataset128, autoencoder64, tuned, "train.lr=1e-12", "train.steps=2",
                                    f"experiment.init_generator={json.dumps(str(first / 'model'))}"))
    start = read_tensors(first / "model" / "generator" / "model.safetensors")
    after = read_tensors(tuned / "model" / "generator" / "model.safetensors")
    assert all(torch.allclose(start[key], after[key], atol=1e-6) for key in start)
    fresh = tmp_path / "fresh"  # the same run without init_generator starts elsewhere
    train_experiment(_guided_config(dataset128, autoencoder64, fresh, "train.lr=1e-12", "train.steps=2"))
    other = read_tensors(fresh / "model" / "generator" / "model.safetensors")
    assert not all(torch.allclose(start[key], other[key], atol=1e-3) for key in start)
    with pytest.raises(ConfigError, match="sketch2anime grow"):
        train_experiment(_guided_config(dataset128, autoencoder64, tmp_path / "wide", "guided_unet.base_channels=8",
                                        f"experiment.init_generator={json.dumps(str(first / 'model'))}"))
    # ... and a grown copy starts that wider run from the same pictures
    grown = grow_pipeline(first / "model", tmp_path / "grown", base_channels=8, res_blocks=2)
    wide = tmp_path / "wide_from_grown"
    train_experiment(_guided_config(dataset128, autoencoder64, wide, "train.lr=1e-12", "train.steps=2",
                                    "guided_unet.base_channels=8", "guided_unet.res_blocks=2",
                                    f"experiment.init_generator={json.dumps(str(grown))}"))
    start = read_tensors(grown / "generator" / "model.safetensors")
    after = read_tensors(wide / "model" / "generator" / "model.safetensors")
    assert start["stem.0.weight"].shape[0] == 8
    assert all(torch.allclose(start[key], after[key], atol=1e-6) for key in start)
    with pytest.raises(ConfigError, match="init_generator"):
        train_experiment(_guided_config(dataset128, autoencoder64, tmp_path / "none",
                                        f"experiment.init_generator={json.dumps(str(tmp_path / 'nothing'))}"))


def test_fine_tuning_onto_another_autoencoder_recentres_the_latent_modulation(
        autoencoder64: Path, dataset64: Path, dataset128: Path, tmp_path: Path) -> None:
    """A generator trained on autoencoder A, fine-tuned on B: its FiLM layers start at A's mean latent."""
    first = tmp_path / "first"
    train_experiment(_guided_config(dataset128, autoencoder64, first, "experiment.seed=1", "train.lr=1e-2"))
    other_ae = tmp_path / "ae_b"
    train_experiment(load_experiment(CONFIGS / "test_autoencoder.toml", [
        f"data.root={json.dumps(str(dataset64))}",
        f"experiment.output_dir={json.dumps(str(other_ae))}", "train.steps=2", "experiment.seed=7"]))
    tuned = tmp_path / "tuned"
    train_experiment(load_experiment(CONFIGS / "test_guided.toml", [
        f"data.root={json.dumps(str(dataset128))}", f"experiment.output_dir={json.dumps(str(tuned))}",
        f"experiment.autoencoder_dir={json.dumps(str(other_ae))}", "train.lr=1e-12", "train.steps=2",
        f"experiment.init_generator={json.dumps(str(first / 'model'))}"]))
    start = read_tensors(first / "model" / "generator" / "model.safetensors")
    after = read_tensors(tuned / "model" / "generator" / "model.safetensors")
    mean = LatentBank.load(first / "model" / "latent_bank").latents.mean(dim=0)
    films = [key[:-len(".weight")] for key in start if ".film." in key and key.endswith(".weight")]
    assert films and any(float(start[f + ".weight"].abs().max()) > 1e-4 for f in films)
    for film in films:
        assert float(after[film + ".weight"].abs().max()) < 1e-6
        assert torch.allclose(after[film + ".bias"], start[film + ".weight"] @ mean + start[film + ".bias"],
                              atol=1e-4)
    other = [key for key in start if ".film." not in key]
    assert all(torch.allclose(start[key], after[key], atol=1e-6) for key in other)


def test_guided_stage_refuses_a_latent_size_the_autoencoder_lacks(autoencoder64: Path, dataset128: Path,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="latent_dim"):
        train_experiment(_guided_config(dataset128, autoencoder64, tmp_path / "x", "guided_unet.latent_dim=16"))
    assert not (tmp_path / "x" / "metrics.jsonl").exists()


def test_front_door(capsys: pytest.CaptureFixture) -> None:
    import subprocess
    import sys

    import sketch2anime
    from sketch2anime import Sketch2AnimePipeline as FromTop
    from sketch2anime.cli import main

    assert FromTop is Sketch2AnimePipeline
    with pytest.raises(AttributeError):
        sketch2anime.NoSuchThing  # noqa: B018
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and sketch2anime.__version__ in capsys.readouterr().out
    done = subprocess.run([sys.executable, "-m", "sketch2anime", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"sketch2anime {sketch2anime.__version__}"


# ---- colour schemes for Seed and Variations ---------------------------------------------------

def test_palette_hints_add_colours_only_where_the_user_did_not_hint() -> None:
    from sketch2anime.data.palettes import palette_hints

    hint = torch.zeros(1, 4, 32, 32)
    hint[0, :3, 0:10, 0:10] = torch.tensor([0.2, -0.4, 0.6])[:, None, None]
    hint[0, 3, 0:10, 0:10] = 1.0
    thumbnails = torch.full((1, 16, 16, 3), 200, dtype=torch.uint8)
    out = palette_hints(hint, thumbnails, torch.Generator().manual_seed(0), count=6)
    assert torch.equal(out[:, :, 0:10, 0:10], hint[:, :, 0:10, 0:10])  # the user's hint untouched
    added = (out[0, 3] > 0) & (hint[0, 3] == 0)
    assert int(added.sum()) > 6
    assert not bool(added[:13, :13].any())  # the margin around the user's hint stays free
    assert torch.allclose(out[0, :3][:, added], torch.full((3, int(added.sum())), 200 / 127.5 - 1))
    again = palette_hints(hint, thumbnails, torch.Generator().manual_seed(0), count=6)
    other = palette_hints(hint, thumbnails, torch.Generator().manual_seed(1), count=6)
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_seed_borrows_a_neighbours_colour_scheme(autoencoder64: Path, dataset128: Path, tmp_path: Path) -> None:
    """Seed 0 / None: the model's own colours; other seeds: distinct colourings; user hints still win."""
    out = tmp_path / "guided"
    train_experiment(_guided_config(dataset128, autoencoder64, out))
    assert (out / "model" / "palettes.json").is_file()
    pipe = Sketch2AnimePipeline.from_pretrained(out / "model", device="cpu")
    assert pipe.palettes is not None and len(pipe.palettes) > 0
    sketch = torch.ones(1, 1, 128, 128)
    sketch[:, :, 30:100, 60:62] = -1.0
    own = pipe.generate_tensors(sketch, projection=0.5)["image"]
    assert torch.equal(own, pipe.generate_tensors(sketch, projection=0.5, seed=0)["image"])
    seeded = [pipe.generate_tensors(sketch, projection=0.5, seed=s)["image"] for s in (1, 2, 3)]
    assert torch.equal(seeded[0], pipe.generate_tensors(sketch, projection=0.5, seed=1)["image"])
    assert all(float((x - own).abs().mean()) > 1e-4 for x in seeded)
    assert float((seeded[0] - seeded[1]).abs().mean()) > 1e-4 or float((seeded[0] - seeded[2]).abs().mean()) > 1e-4
    pictures = pipe.variations(np.full((128, 128), 255, np.uint8), count=3, seed=5)
    arrays = [np.asarray(p, dtype=np.float32) for p in pictures]
    assert np.abs(arrays[1] - arrays[2]).mean() > 0.01


# ---- scripts/guide_usage.py: does the generator use its guide? -------------------------------

def test_guide_usage_tells_a_generator_that_ignores_its_guide(autoencoder64: Path, dataset128: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "guided"
    train_experiment(_guided_config(dataset128, autoencoder64, out, "train.lr=1e-2"))
    pipe = Sketch2AnimePipeline.from_pretrained(out / "model", device="cpu")
    images, data = tmp_path / "faces", tmp_path / "with-val"
    images.mkdir()
    for i in range(4):
        draw_face(128, i).save(images / f"face_{i}.png")
    prepare_dataset(images, data, PrepareConfig(size=128, extractors=("detail",), val_fraction=0.5, workers=1),
                    progress=False)
    script = load_script("guide_usage")
    rows = script.guide_usage(pipe, data, limit=2)
    assert [r["name"] for r in rows] == ["user (t = 0)", "projected (t = 1)", "clean (oracle)"]
    assert rows[0]["guide_change"] == rows[0]["image_change"] == 0.0
    assert all(r["guide_change"] > 0.1 and r["image_change"] > 0.01 for r in rows[1:])
    assert all(-1.0 <= r["ssim"] <= 1.0 for r in rows)

    real_forward = pipe.generator.forward  # the same generator, blind to guide and latent
    pipe.generator.forward = lambda sketch, guide, hint, z=None: real_forward(sketch, torch.zeros_like(guide), hint,
                                                                              None if z is None else torch.zeros_like(z))
    blind = script.guide_usage(pipe, data, limit=2)
    assert all(r["guide_change"] > 0.1 and r["image_change"] == 0.0 for r in blind[1:])
    assert blind[1]["ssim"] == blind[0]["ssim"]


def test_a_generator_trained_at_64px_starts_a_128px_run_with_its_weights(autoencoder64: Path, dataset64: Path,
                                                                         dataset128: Path, tmp_path: Path) -> None:
    """The network is fully convolutional: init_generator may differ from the run in image_size only."""
    small = tmp_path / "small"
    train_experiment(load_experiment(CONFIGS / "test_guided.toml", [
        f"data.root={json.dumps(str(dataset64))}", f"experiment.output_dir={json.dumps(str(small))}",
        f"experiment.autoencoder_dir={json.dumps(str(autoencoder64))}", "experiment.image_size=64",
        "guided_unet.image_size=64", "experiment.seed=1"]))
    big = tmp_path / "big"
    train_experiment(_guided_config(dataset128, autoencoder64, big, "train.lr=1e-12", "train.steps=2",
                                    f"experiment.init_generator={json.dumps(str(small / 'model'))}"))
    start = read_tensors(small / "model" / "generator" / "model.safetensors")
    after = read_tensors(big / "model" / "generator" / "model.safetensors")
    assert start.keys() == after.keys()
    assert all(torch.allclose(start[key], after[key], atol=1e-6) for key in start)
    assert json.loads((big / "model" / "generator" / "config.json").read_text())["config"]["image_size"] == 128
    with pytest.raises(ConfigError, match="only image_size may differ"):
        train_experiment(_guided_config(dataset128, autoencoder64, tmp_path / "deep", "guided_unet.depth=2",
                                        f"experiment.init_generator={json.dumps(str(small / 'model'))}"))


def test_a_generator_trained_elsewhere_is_assembled_into_the_pipeline_its_run_would_export(
        autoencoder64: Path, dataset128: Path, tmp_path: Path) -> None:
    """scripts/assemble_gpu_model.py: the device brings back only the generator and the run's config."""
    run = tmp_path / "run"
    train_experiment(_guided_config(dataset128, autoencoder64, run, "experiment.seed=1"))
    assemble = load_script("assemble_gpu_model")
    out = assemble.assemble(run / "model" / "generator", run / "config.toml", tmp_path / "assembled",
                            dataset128, parts_from=autoencoder64 / "model")
    for name in ("generator/model.safetensors", "latent_bank.safetensors", "palettes.safetensors"):
        trained, assembled = read_tensors(run / "model" / name), read_tensors(out / name)
        assert trained.keys() == assembled.keys(), name
        assert all(torch.equal(trained[k], assembled[k]) for k in trained), name
    description = json.loads((out / "pipeline.json").read_text())
    assert description["training"]["step"] == 4 and description["image_size"] == 128
    pipe = Sketch2AnimePipeline.from_pretrained(out, device="cpu")
    assert pipe(np.full((64, 64), 255, np.uint8)).size == (64, 64)
    with pytest.raises(ValueError, match="not empty"):
        assemble.assemble(run / "model" / "generator", run / "config.toml", out, dataset128,
                          parts_from=autoencoder64 / "model")
