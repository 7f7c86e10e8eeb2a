"""Sketch autoencoder, hint generator, patch discriminator: shapes, ranges, conditioning, saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sketch2anime.checkpoint import load_model, save_model
from sketch2anime.config import ConfigError, from_dict
from sketch2anime.models import MODEL_CLASSES
from sketch2anime.models.autoencoder import (
    AutoencoderConfig,
    SketchAutoencoder,
    logits_to_sketch,
    sketch_reconstruction_loss,
)
from sketch2anime.models.discriminator import (
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    PatchDiscriminator,
    make_discriminator,
)
from sketch2anime.models.generator import GeneratorConfig, HintGenerator, hint_upsampled


pytestmark = pytest.mark.usefixtures("one_thread")


def line_sketch(size: int = 64, seed: int = 0) -> torch.Tensor:
    """(1, 1, S, S) sketch in [-1, 1]: a circle and a few 1-px lines on white."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(4, size - 4, 4))
        draw.line((x0, y0, x1, y1), fill=0, width=1)
    s = size / 64
    draw.ellipse([16 * s, 16 * s, 48 * s, 48 * s], outline=0, width=1)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)[None, None]


def tiny_ae(size: int = 64, **kw) -> SketchAutoencoder:
    torch.manual_seed(0)
    return SketchAutoencoder(AutoencoderConfig(image_size=size, latent_dim=16, base_channels=4, max_channels=16, **kw))


def tiny_gen(size: int = 64, **kw) -> HintGenerator:
    torch.manual_seed(0)
    defaults = dict(image_size=size, latent_dim=16, base_channels=4, max_channels=16, hint_channels=8, modulation_hidden=8)
    defaults.update(kw)
    return HintGenerator(GeneratorConfig(**defaults))


def random_hint(n: int, size: int, seed: int = 0, hint_downscale: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = size // hint_downscale
    mask = (torch.rand(n, 1, h, h, generator=g) < 0.1).float()
    rgb = (torch.rand(n, 3, h, h, generator=g) * 2 - 1) * mask
    return torch.cat([rgb, mask], dim=1)


# ---------------------------------------------------------------------------------------------
# autoencoder

@pytest.mark.parametrize("size", [64, 128])
def test_autoencoder_shapes_and_ranges(size):
    ae = tiny_ae(size).eval()
    x = torch.cat([line_sketch(size, 0), line_sketch(size, 1)])
    z, logits = ae(x)
    assert z.shape == (2, 16)
    assert logits.shape == (2, 1, size, size)
    sketch = ae.decode_sketch(z)
    assert sketch.shape == (2, 1, size, size)
    assert sketch.min() >= -1 and sketch.max() <= 1
    assert torch.allclose(ae.encode(x), z)
    assert torch.allclose(ae.decode(z), logits)


def test_logits_to_sketch_convention():
    # Ink probability 1 -> -1 (ink), 0 -> +1 (paper).
    out = logits_to_sketch(torch.tensor([[[[20.0, -20.0]]]]))
    assert out[0, 0, 0, 0] == pytest.approx(-1.0, abs=1e-6)
    assert out[0, 0, 0, 1] == pytest.approx(1.0, abs=1e-6)


def test_autoencoder_rejects_bad_input():
    ae = tiny_ae()
    with pytest.raises(ValueError, match="shape"):
        ae.encode(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="shape"):
        ae.encode(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="latent"):
        ae.decode(torch.zeros(1, 15))


def test_configs_validate():
    with pytest.raises(ConfigError, match="image_size"):
        AutoencoderConfig(image_size=100)
    with pytest.raises(ConfigError, match="norm"):
        AutoencoderConfig(norm="batch")
    with pytest.raises(ConfigError, match="hint_downscale"):
        GeneratorConfig(image_size=64, hint_downscale=32)
    with pytest.raises(ConfigError, match="hint_downscale"):
        GeneratorConfig(hint_downscale=3)
    with pytest.raises(ConfigError):
        from_dict(GeneratorConfig, {"conditioning": "text"})
    with pytest.raises(ConfigError, match="n_layers"):
        DiscriminatorConfig(image_size=64, n_layers=5)
    with pytest.raises(ConfigError, match="in_channels"):
        DiscriminatorConfig(in_channels=5)


def test_reconstruction_loss_prefers_lines_over_blank():
    target = line_sketch(64)
    ink = target < 0
    perfect = torch.where(ink, 8.0, -8.0)
    blank = torch.full_like(target, -8.0)
    assert sketch_reconstruction_loss(perfect, target) < 0.05
    assert sketch_reconstruction_loss(blank, target) > 1.0
    # A blank page is the right answer for a blank target.
    empty = torch.ones_like(target)
    assert sketch_reconstruction_loss(blank, empty) < 0.05
    with pytest.raises(ValueError):
        sketch_reconstruction_loss(perfect, target[:, :, :32])


def test_reconstruction_training_does_not_collapse_to_blank():
    x = torch.cat([line_sketch(64, 0), line_sketch(64, 1)])
    target_ink = x < 0
    ae = tiny_ae()
    opt = torch.optim.Adam(ae.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        _, logits = ae(x)
        loss = sketch_reconstruction_loss(logits, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    with torch.no_grad():
        decoded = ae.eval().decode_sketch(ae.encode(x))
    drawn = decoded < 0
    recall = (drawn & target_ink).sum() / target_ink.sum()
    assert drawn.sum() > 0
    assert recall > 0.5, f"only {recall:.2f} of the lines were drawn"


# ---------------------------------------------------------------------------------------------
# generator

GEN_VARIANTS = [
    dict(conditioning="latent", use_decoded_sketch=True, hint_injection="multiscale"),
    dict(conditioning="latent", use_decoded_sketch=False, hint_injection="multiscale"),
    dict(conditioning="latent", use_decoded_sketch=True, hint_injection="input"),
    dict(conditioning="sketch", hint_injection="multiscale"),
    dict(conditioning="sketch", hint_injection="input"),
]


def gen_inputs(gen: HintGenerator, n: int = 2, seed: int = 0):
    cfg = gen.config
    size = cfg.image_size
    sketch = torch.cat([line_sketch(size, seed + i) for i in range(n)])
    hint = random_hint(n, size, seed, cfg.hint_downscale)
    if cfg.conditioning == "latent":
        cond = torch.randn(n, cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    else:
        cond = sketch
    return cond, hint, sketch


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("variant", GEN_VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_generator_shapes_and_range(size, variant):
    gen = tiny_gen(size, **variant).eval()
    cond, hint, sketch = gen_inputs(gen)
    out = gen(cond, hint, sketch)
    assert out.shape == (2, 3, size, size)
    assert out.min() >= -1 and out.max() <= 1
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [256, 512])
def test_generator_large_sizes(size):
    gen = tiny_gen(size, base_channels=2, max_channels=8, hint_channels=4, modulation_hidden=4).eval()
    cond, hint, sketch = gen_inputs(gen, n=1)
    with torch.no_grad():
        assert gen(cond, hint, sketch).shape == (1, 3, size, size)


@pytest.mark.parametrize("variant", GEN_VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_generator_uses_hint(variant):
    gen = tiny_gen(64, **variant).eval()
    cond, hint, sketch = gen_inputs(gen)
    base = gen(cond, hint, sketch)
    changed = hint.clone()
    changed[:, :3, 4:8, 4:8] = torch.tensor([1.0, -1.0, -1.0])[None, :, None, None]  # a red patch
    changed[:, 3, 4:8, 4:8] = 1.0
    assert (gen(cond, changed, sketch) - base).abs().max() > 1e-3
    # No hint at all is a valid input and differs too.
    assert (gen(cond, torch.zeros_like(hint), sketch) - base).abs().max() > 1e-3


@pytest.mark.parametrize("variant", GEN_VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_generator_uses_condition(variant):
    gen = tiny_gen(64, **variant).eval()
    cond, hint, sketch = gen_inputs(gen, seed=0)
    cond2, _, sketch2 = gen_inputs(gen, seed=5)
    base = gen(cond, hint, sketch)
    assert (gen(cond2, hint, sketch2 if variant["conditioning"] == "latent" else None) - base).abs().max() > 1e-3
    if variant["conditioning"] == "latent":
        # Latent alone changes the picture; the decoded sketch does iff it is used.
        assert (gen(cond2, hint, sketch) - base).abs().max() > 1e-3
        sketch_effect = (gen(cond, hint, sketch2) - base).abs().max()
        if variant["use_decoded_sketch"]:
            assert sketch_effect > 1e-3
        else:
            assert sketch_effect == 0


def test_generator_is_per_sample_and_mode_independent():
    gen = tiny_gen(64).train()
    cond, hint, sketch = gen_inputs(gen, n=3)
    with torch.no_grad():
        batch = gen(cond, hint, sketch)
        single = gen(cond[1:2], hint[1:2], sketch[1:2])
        gen.eval()
        evaluated = gen(cond, hint, sketch)
    assert torch.allclose(batch[1:2], single, atol=1e-4)  # no batch statistics
    assert torch.allclose(batch, evaluated, atol=1e-6)  # train == eval


def test_generator_rejects_bad_input():
    gen = tiny_gen(64)
    cond, hint, sketch = gen_inputs(gen)
    with pytest.raises(ValueError, match="sketch"):
        gen(cond, hint, None)
    with pytest.raises(ValueError, match="hint"):
        gen(cond, hint[:, :, :8, :8], sketch)
    with pytest.raises(ValueError, match="latent"):
        gen(cond[:, :8], hint, sketch)
    simple = tiny_gen(64, conditioning="sketch")
    with pytest.raises(ValueError, match="sketch"):
        simple(cond, hint)


def test_default_generator_size():
    gen = HintGenerator(GeneratorConfig(image_size=64))
    assert sum(p.numel() for p in gen.parameters()) <= 10_000_000


def test_hint_upsampled():
    hint = random_hint(1, 64)
    up = hint_upsampled(hint, 64)
    assert up.shape == (1, 4, 64, 64)
    assert torch.equal(up[:, :, ::4, ::4], hint)


# ---------------------------------------------------------------------------------------------
# discriminator

def tiny_disc(size: int = 64, **kw) -> PatchDiscriminator:
    torch.manual_seed(0)
    return PatchDiscriminator(DiscriminatorConfig(image_size=size, base_channels=4, max_channels=16, **kw))


@pytest.mark.parametrize("size,patches", [(64, 6), (128, 14)])
def test_discriminator_shapes(size, patches):
    disc = tiny_disc(size).eval()
    image = torch.rand(2, 3, size, size) * 2 - 1
    sketch = torch.cat([line_sketch(size, 0), line_sketch(size, 1)])
    hint = random_hint(2, size)
    logits, features = disc(image, sketch, hint)
    assert logits.shape == (2, 1, patches, patches)
    assert len(features) == disc.config.n_layers + 1
    assert [f.shape[1] for f in features] == [4, 8, 16, 16]
    # The hint is seen: changing it changes the verdict.
    logits2, _ = disc(image, sketch, torch.zeros_like(hint))
    assert (logits2 - logits).abs().max() > 1e-4


def test_discriminator_spectral_norm_and_channels():
    disc = tiny_disc()
    assert any("parametrizations" in name for name, _ in disc.named_parameters())
    plain = tiny_disc(spectral_norm=False)
    assert not any("parametrizations" in name for name, _ in plain.named_parameters())
    image = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ValueError, match="input channels"):
        disc(image, None, random_hint(1, 64))
    image_only = tiny_disc(in_channels=3).eval()
    assert image_only(image)[0].shape == (1, 1, 6, 6)


def test_multiscale_discriminator_sees_the_whole_face_at_its_coarse_scale():
    """Scale 1 is a 64 px PatchGAN on the pooled inputs; its centre patch reaches the picture's corner,
    which the full-size PatchGAN's 70 px patches cannot: that is what it is for."""
    torch.manual_seed(0)
    config = DiscriminatorConfig(image_size=128, base_channels=4, max_channels=16, scales=2)
    disc = make_discriminator(config).eval()
    assert isinstance(disc, MultiScaleDiscriminator) and len(disc.scales) == 2
    assert type(make_discriminator(DiscriminatorConfig(image_size=128))) is PatchDiscriminator
    image = (torch.rand(2, 3, 128, 128) * 2 - 1).requires_grad_(True)
    sketch = torch.cat([line_sketch(128, 0), line_sketch(128, 1)])
    hint = random_hint(2, 128)
    logits, features = disc(image, sketch, hint)
    assert [tuple(x.shape) for x in logits] == [(2, 1, 14, 14), (2, 1, 6, 6)]
    assert len(features) == 2 * (config.n_layers + 1)
    coarse, _ = disc.scales[1](torch.nn.functional.avg_pool2d(image, 2), torch.nn.functional.avg_pool2d(sketch, 2), hint)
    assert torch.allclose(coarse, logits[1])
    fine_grad, = torch.autograd.grad(logits[0][0, 0, 7, 7], image, retain_graph=True)
    coarse_grad, = torch.autograd.grad(logits[1][0, 0, 3, 3], image)
    assert float(fine_grad[0, :, :8, :8].abs().sum()) == 0  # the corner is outside a fine patch
    assert float(coarse_grad[0, :, :8, :8].abs().sum()) > 0
    with pytest.raises(ValueError, match="input channels"):
        disc(image.detach(), None, hint)


@pytest.mark.parametrize("changes", [dict(scales=0), dict(image_size=64, scales=2), dict(image_size=128, scales=2, n_layers=5)])
def test_multiscale_discriminator_config_validation(changes: dict) -> None:
    with pytest.raises(ConfigError, match="scales"):
        DiscriminatorConfig(**changes)


# ---------------------------------------------------------------------------------------------
# registry + checkpoints

def test_registry_names():
    assert MODEL_CLASSES["sketch_autoencoder"] == (SketchAutoencoder, AutoencoderConfig)
    assert MODEL_CLASSES["hint_generator"] == (HintGenerator, GeneratorConfig)
    assert MODEL_CLASSES["patch_discriminator"] == (PatchDiscriminator, DiscriminatorConfig)


def _perturb(module: torch.nn.Module) -> None:
    # Non-default values everywhere so a reload that silently re-initialises would be caught.
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.01 * torch.randn_like(p))


@pytest.mark.parametrize("kind", ["sketch_autoencoder", "hint_generator", "hint_generator_sketch", "patch_discriminator"])
def test_save_load_round_trip(tmp_path, kind):
    torch.manual_seed(1)
    if kind == "sketch_autoencoder":
        model = tiny_ae()
        x = line_sketch(64)
        run = lambda m: m(x)[1]  # noqa: E731
    elif kind.startswith("hint_generator"):
        model = tiny_gen(64, conditioning="sketch" if kind.endswith("sketch") else "latent")
        cond, hint, sketch = gen_inputs(model)
        run = lambda m: m(cond, hint, sketch)  # noqa: E731
    else:
        model = tiny_disc()
        image, sketch, hint = torch.rand(1, 3, 64, 64), line_sketch(64), random_hint(1, 64)
        model.train()
        model(image, sketch, hint)  # one power iteration so u/v differ from their initial values
        run = lambda m: m(image, sketch, hint)[0]  # noqa: E731
    _perturb(model)
    model.eval()
    folder = save_model(model, tmp_path / "m")
    loaded = load_model(folder)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(run(loaded), run(model))
