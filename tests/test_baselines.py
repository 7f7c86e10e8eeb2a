"""Baselines: Pix2Pix U-Net, PatchGAN geometry, CycleGAN generators, Gatys NST, training stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sketch2anime.checkpoint import load_model, save_model
from sketch2anime.evaluation.style_transfer import (
    FEATURES_LABEL,
    METHOD_LABEL,
    StyleTransferBaseline,
    StyleTransferConfig,
    StyleTransferLoss,
    gram,
    pick_style_indices,
    stylize,
)
from sketch2anime.models.cyclegan import ResnetGenerator, ResnetGeneratorConfig
from sketch2anime.models.patchgan import PatchGAN, PatchGANConfig, output_size, patch_bounds, receptive_field
from sketch2anime.models.pix2pix import UNetConfig, UNetGenerator


def tiny_unet(size: int = 64, **kw) -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(UNetConfig(image_size=size, base_channels=4, **kw))


# ---------------------------------------------------------------------------------------------
# Pix2Pix U-Net

@pytest.mark.parametrize("size", [64, 128])
def test_unet_shapes_and_range(size: int) -> None:
    g = tiny_unet(size).eval()
    sketch = torch.rand(2, 1, size, size) * 2 - 1
    hint = torch.zeros(2, 4, size // 4, size // 4)
    out = g(sketch, hint)
    assert out.shape == (2, 3, size, size)
    assert out.abs().max() <= 1.0
    assert len(g.down) == int(np.log2(size))  # bottleneck at 1x1
    assert torch.equal(g(sketch, None), out)  # None means "no hints": the all-zero hint map


def test_unet_depth_follows_paper_at_256() -> None:
    assert UNetConfig(image_size=256).depth == 8
    assert UNetConfig(image_size=64).depth == 6


def test_unet_rejects_wrong_input() -> None:
    g = tiny_unet(64)
    with pytest.raises(ValueError, match="64, 64"):
        g(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="hint"):
        g(torch.zeros(1, 1, 64, 64), torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="power of two"):
        UNetConfig(image_size=96)


def test_unet_hints_change_output_only_when_used() -> None:
    sketch = torch.rand(1, 1, 64, 64) * 2 - 1
    hint = torch.zeros(1, 4, 16, 16)
    hint[:, :3, 4:8, 4:8] = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    hint[:, 3, 4:8, 4:8] = 1.0
    with_hints = tiny_unet(64).eval()
    assert not torch.allclose(with_hints(sketch, hint), with_hints(sketch, None))
    without = tiny_unet(64, use_hint=False).eval()
    assert torch.equal(without(sketch, hint), without(sketch, None))
    assert without.down[0][0].in_channels == 1 and with_hints.down[0][0].in_channels == 5


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_unet_skip_connections_carry_fine_detail(norm: str) -> None:
    """With the bottleneck zeroed, only the skips can carry the input: a one-pixel change must still show."""
    g = tiny_unet(64, norm=norm).eval()
    g.down[-1].register_forward_hook(lambda module, args, out: torch.zeros_like(out))
    sketch = torch.ones(1, 1, 64, 64)
    changed = sketch.clone()
    changed[0, 0, 40, 21] = -1.0  # one ink pixel
    with torch.no_grad():
        diff = (g(changed) - g(sketch)).abs().sum(1)[0]
    assert diff[40, 21] > 0
    if norm == "batch":
        # Eval-mode batch norm is local (instance norm statistics are global), so the fine skips show
        # as a change concentrated next to the pixel.
        near = torch.zeros(64, 64, dtype=torch.bool)
        near[36:45, 17:26] = True
        assert diff[near].mean() > 100 * diff[~near].mean()


def test_unet_dropout_only_in_training() -> None:
    g = tiny_unet(64)
    sketch = torch.rand(2, 1, 64, 64) * 2 - 1
    g.train()
    assert not torch.equal(g(sketch), g(sketch))
    g.eval()
    assert torch.equal(g(sketch), g(sketch))
    dropouts = [m for m in g.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(m.p == 0.5 for m in dropouts)


# ---------------------------------------------------------------------------------------------
# PatchGAN

def test_patchgan_geometry_analytic() -> None:
    assert receptive_field(3) == 70
    assert receptive_field(1) == 16 and receptive_field(2) == 34
    assert output_size(256) == 30 and output_size(64) == 6
    assert patch_bounds(0) == (-23, 47)
    torch.manual_seed(0)
    d = PatchGAN(PatchGANConfig(in_channels=4, base_channels=4))
    assert d(torch.zeros(1, 4, 64, 64)).shape == (1, 1, 6, 6)
    assert d(torch.zeros(2, 4, 128, 128)).shape == (2, 1, output_size(128), output_size(128))


def test_patchgan_pixel_only_affects_patches_that_see_it() -> None:
    torch.manual_seed(0)
    # Eval-mode batch norm is a per-channel affine map, so locality is exact (instance norm is global).
    d = PatchGAN(PatchGANConfig(in_channels=3, base_channels=4, norm="batch")).double().eval()
    x = torch.rand(1, 3, 128, 128, dtype=torch.float64)
    y, xx = 10, 100
    changed = x.clone()
    changed[0, :, y, xx] += 5.0
    diff = (d(changed) - d(x)).abs()[0, 0]
    n = output_size(128)

    def seen(index: int, pixel: int) -> bool:
        start, stop = patch_bounds(index)
        return start <= pixel < stop

    expected = torch.tensor([[seen(i, y) and seen(j, xx) for j in range(n)] for i in range(n)])
    assert torch.equal(diff > 1e-12, expected)
    assert expected.sum() == 5 * 7  # rows 0-4, columns 7-13


# ---------------------------------------------------------------------------------------------
# CycleGAN

@pytest.mark.parametrize("size", [64, 128])
def test_cyclegan_generators_both_directions(size: int) -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(ResnetGeneratorConfig(image_size=size, in_channels=1, out_channels=3, base_channels=4)).eval()
    f = ResnetGenerator(ResnetGeneratorConfig(image_size=size, in_channels=3, out_channels=1, base_channels=4)).eval()
    sketch = torch.rand(2, 1, size, size) * 2 - 1
    colour = g(sketch)
    assert colour.shape == (2, 3, size, size) and colour.abs().max() <= 1
    assert f(colour).shape == sketch.shape
    hint = torch.rand(2, 4, size // 4, size // 4)
    assert torch.equal(g(sketch, hint), colour)  # unpaired model: hints are ignored
    with pytest.raises(ValueError, match="1, H, W"):
        g(torch.zeros(1, 3, size, size))


def test_cyclegan_block_count_follows_paper() -> None:
    assert ResnetGeneratorConfig(image_size=128).blocks == 6
    assert ResnetGeneratorConfig(image_size=256).blocks == 9
    assert ResnetGeneratorConfig(image_size=256, n_blocks=2).blocks == 2


# ---------------------------------------------------------------------------------------------
# checkpoints

def registered_examples() -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        UNetGenerator(UNetConfig(image_size=64, base_channels=4)),
        ResnetGenerator(ResnetGeneratorConfig(image_size=64, base_channels=4, n_blocks=2)),
        PatchGAN(PatchGANConfig(in_channels=4, base_channels=4)),
    ]


@pytest.mark.parametrize("index", range(3))
def test_checkpoint_round_trip(index: int, tmp_path) -> None:
    model = registered_examples()[index].eval()
    with torch.no_grad():  # non-trivial weights everywhere, including norm affine parameters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    channels = model.config.in_channels
    x = torch.rand(2, channels, 64, 64) * 2 - 1
    assert torch.equal(loaded(x), model(x))


# ---------------------------------------------------------------------------------------------
# neural style transfer

class TinyFeatures(nn.Module):
    """A random 4-stage conv net exposing VGG-style layer names (stands in for HED-VGG16)."""

    NAMES = {"relu1_2": 0, "relu2_2": 1, "relu3_3": 2, "relu4_2": 3, "relu4_3": 3}

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        widths = (3, 8, 12, 16, 16)
        self.stages = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1) for i in range(4))

    def forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
        outputs = []
        h = x
        for index, conv in enumerate(self.stages):
            if index:
                h = nn.functional.avg_pool2d(h, 2)
            h = torch.relu(conv(h))
            outputs.append(h)
        return [outputs[self.NAMES[name]] for name in layers]


def face_tensors(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    from conftest import draw_face

    sketch = torch.ones(1, 1, size, size)
    sketch[..., size // 4: 3 * size // 4, size // 3] = -1.0  # two strokes
    sketch[..., size // 2, size // 5: 4 * size // 5] = -1.0
    colour = torch.from_numpy(np.array(draw_face(size, 3))).permute(2, 0, 1)[None].float() / 127.5 - 1
    return sketch, colour


def test_style_transfer_loss_decreases() -> None:
    sketch, colour = face_tensors()
    net = TinyFeatures()
    config = StyleTransferConfig(steps=15, lr=0.05)
    history: list[float] = []
    out = stylize(sketch, colour, net, config, history=history)
    assert out.shape == (1, 3, 32, 32) and out.abs().max() <= 1
    assert history[-1] < 0.5 * history[0]
    loss = StyleTransferLoss(sketch, colour, net, config)
    _, style_before = loss.parts(sketch.expand(-1, 3, -1, -1))
    _, style_after = loss.parts(out)
    assert style_after < style_before


def test_style_transfer_keeps_content_from_noise() -> None:
    sketch, colour = face_tensors()
    config = StyleTransferConfig(steps=40, lr=0.1, init="noise", content_layers=("relu1_2",), style_weight=1.0)
    out = stylize(sketch, colour, TinyFeatures(), config, torch.Generator().manual_seed(0))
    grey = out.mean(1).flatten().numpy()
    corr = np.corrcoef(grey, sketch.flatten().numpy())[0, 1]
    assert corr > 0.5
    # Same seed, same result; the noise start itself is uncorrelated with the sketch.
    again = stylize(sketch, colour, TinyFeatures(), config, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_gram_matrix() -> None:
    f = torch.randn(2, 3, 4, 5)
    g = gram(f)
    assert g.shape == (2, 3, 3)
    assert torch.allclose(g[1, 0, 2], (f[1, 0] * f[1, 2]).sum() / 60)


def test_style_picks_are_seeded_and_order_independent() -> None:
    ids = [f"img{i}" for i in range(200)]
    picks = pick_style_indices(ids, 50, seed=0)
    assert all(0 <= p < 50 for p in picks)
    assert pick_style_indices(ids[::-1], 50, seed=0) == picks[::-1]
    assert pick_style_indices(ids, 50, seed=1) != picks
    assert len(set(picks)) > 25  # spread over the training images
    with pytest.raises(ValueError):
        pick_style_indices(ids, 0)


def test_style_transfer_labels_name_the_features() -> None:
    assert FEATURES_LABEL == "HED-VGG16 features (not ImageNet VGG)"
    assert FEATURES_LABEL in METHOD_LABEL and StyleTransferBaseline.label == METHOD_LABEL
    import sketch2anime.evaluation.style_transfer as module

    assert FEATURES_LABEL in module.__doc__ and FEATURES_LABEL[:13] in module.stylize.__doc__


@pytest.mark.slow
def test_style_transfer_with_hed_features() -> None:
    """The real HED-VGG16 features (skipped without `sketch2anime weights hed`)."""
    from sketch2anime.evaluation.style_transfer import hed_features_fn
    from sketch2anime.weights import MissingWeightsError

    try:
        features = hed_features_fn()
    except MissingWeightsError:
        pytest.skip("HED weights not installed")
    sketch, colour = face_tensors(64)
    history: list[float] = []
    out = stylize(sketch, colour, features, StyleTransferConfig(steps=10), history=history)
    assert out.shape == (1, 3, 64, 64) and history[-1] < history[0]


def test_style_transfer_baseline_interface() -> None:
    sketch, colour = face_tensors()
    styles = torch.cat([colour, -colour])
    baseline = StyleTransferBaseline(TinyFeatures(), styles, StyleTransferConfig(steps=2))
    out = baseline(sketch.expand(3, -1, -1, -1), torch.zeros(3, 4, 8, 8), sample_ids=["a", "b", "c"])
    assert out.shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="sample ids"):
        baseline(sketch, sample_ids=["a", "b"])


# ---------------------------------------------------------------------------------------------
# training stages, export, inference

CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from conftest import draw_face
    from sketch2anime.data.prepare import PrepareConfig, prepare_dataset

    root = tmp_path_factory.mktemp("baselines")
    src = root / "src"
    src.mkdir()
    for i in range(10):
        draw_face(96, i).save(src / f"face_{i:02d}.png")
    config = PrepareConfig(extractors=("xdog",), workers=1, batch_size=5, val_fraction=0.2,
                           near_duplicate_threshold=0)
    prepare_dataset(src, root / "data", config, progress=False)
    return root / "data"


def train_tiny(name: str, dataset, out, *extra: str, resume: bool = False, callback=None):
    from sketch2anime.training.config import load_experiment
    from sketch2anime.training.run import train_experiment

    config = load_experiment(CONFIGS / name, [f"data.root={dataset}", f"experiment.output_dir={out}", *extra])
    return train_experiment(config, resume=resume, callback=callback)


@pytest.mark.parametrize("name, pipeline_type, model_type", [
    ("test_pix2pix.toml", "pix2pix", "pix2pix_unet"),
    ("test_cyclegan.toml", "cyclegan", "cyclegan_resnet"),
])
def test_stage_trains_exports_and_loads_in_the_pipeline(name, pipeline_type, model_type, tiny_dataset, tmp_path) -> None:
    import json

    from sketch2anime.checkpoint import read_model_description
    from sketch2anime.inference import Sketch2AnimePipeline

    run = train_tiny(name, tiny_dataset, tmp_path / "run")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert metrics and all(np.isfinite(v) for m in metrics for v in m.get("losses", m).values()
                           if isinstance(v, float))
    assert sorted(p.name for p in (run / "samples").glob("*.png"))
    description = json.loads((run / "model" / "pipeline.json").read_text())
    assert description["pipeline_type"] == pipeline_type and description["image_size"] == 64
    assert description["hint_downscale"] == 4
    assert read_model_description(run / "model" / "generator")["model_type"] == model_type

    pipe = Sketch2AnimePipeline.from_pretrained(run / "model", device="cpu")
    sketch = torch.rand(2, 1, 64, 64) * 2 - 1
    hint = torch.zeros(2, 4, 16, 16)
    hint[:, 0, 3:6, 3:6], hint[:, 3, 3:6, 3:6] = 1.0, 1.0
    image = pipe.generate_tensors(sketch, hint)["image"]
    assert image.shape == (2, 3, 64, 64) and torch.isfinite(image).all()
    generator = load_model(run / "model" / "generator")
    with torch.no_grad():
        assert torch.allclose(image, generator(sketch, hint).clamp(-1, 1), atol=1e-6)
    from PIL import Image as PILImage

    picture = pipe(PILImage.new("L", (80, 60), 255))  # any size in, same size out
    assert picture.size == (80, 60)


@pytest.mark.parametrize("name", ["test_pix2pix.toml", "test_cyclegan.toml"])
def test_stage_resume_matches_uninterrupted_run(name, tiny_dataset, tmp_path) -> None:
    from safetensors.torch import load_file

    straight = train_tiny(name, tiny_dataset, tmp_path / "straight")

    def crash(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_tiny(name, tiny_dataset, tmp_path / "resumed", callback=crash)
    resumed = train_tiny(name, tiny_dataset, tmp_path / "resumed", resume=True)
    a = load_file(str(straight / "model" / "generator" / "model.safetensors"))
    b = load_file(str(resumed / "model" / "generator" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pix2pix_jitter_shares_one_crop() -> None:
    from sketch2anime.training.pix2pix_stage import random_jitter

    x = torch.arange(2 * 64 * 64, dtype=torch.float32).reshape(2, 1, 64, 64)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = random_jitter([(x, "bilinear"), (x.clone(), "nearest")], 1.12, g1)
    assert a.shape == b.shape == x.shape
    assert (a - b).abs().max() < 64  # same window: bilinear and nearest differ by under a pixel step
    assert not torch.equal(a, x)
    (c,) = random_jitter([(x, "bilinear")], 1.12, g2)
    assert torch.equal(a, c)
    assert random_jitter([(x, "bilinear")], 1.0, g2)[0] is x


def test_cyclegan_pool_and_unpaired_colours(tiny_dataset) -> None:
    from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset
    from sketch2anime.training.cyclegan_stage import ImagePool, UnpairedColours

    pool = ImagePool(3, torch.Generator().manual_seed(0))
    first = torch.randn(3, 1, 4, 4)
    assert torch.equal(pool.query(first), first) and len(pool.images) == 3
    second = torch.randn(8, 1, 4, 4)
    out = pool.query(second)
    from_history = [any(torch.equal(o, f) for f in first) for o in out]
    assert any(from_history) and not all(from_history) and len(pool.images) == 3
    assert ImagePool(0, torch.Generator()).query(second) is second

    base = PairedSketchDataset(DatasetConfig(root=str(tiny_dataset), flip=False))
    colours = UnpairedColours(base, seed=0, flip=False)
    assert len(colours) == len(base)
    assert torch.equal(colours[1]["image"], base[1]["image"]) and set(colours[1]) == {"image"}


def test_baseline_stage_rejects_bad_sections(tiny_dataset, tmp_path) -> None:
    from sketch2anime.config import ConfigError

    with pytest.raises(ConfigError, match="patchgan.in_channels"):
        train_tiny("test_pix2pix.toml", tiny_dataset, tmp_path / "a", "patchgan.in_channels=3")
    with pytest.raises(ConfigError, match="1 and 3"):
        train_tiny("test_cyclegan.toml", tiny_dataset, tmp_path / "b", "cyclegan.in_channels=3")
    with pytest.raises(ConfigError, match="jitter_scale"):
        train_tiny("test_cyclegan.toml", tiny_dataset, tmp_path / "c", "baseline.jitter_scale=0.5")
