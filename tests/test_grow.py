"""Function-preserving growth of a guided generator (``sketch2anime grow``, Net2Net)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sketch2anime.checkpoint import read_json
from sketch2anime.cli import main
from sketch2anime.grow_model import grow_pipeline
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.grow import grow_guided_unet
from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig
from sketch2anime.models.projection import LatentBank
from sketch2anime.pipeline_format import PipelineDescription, write_pipeline_folder

pytestmark = pytest.mark.usefixtures("one_thread")

LATENT = 8
SMALL = GuidedUNetConfig(image_size=32, latent_dim=LATENT, base_channels=4, max_channels=16, depth=2, res_blocks=1)


def _trained_like(config: GuidedUNetConfig, seed: int = 0) -> GuidedUNet:
    """A generator whose every weight (FiLM and norms included) is non-trivial, as after training."""
    torch.manual_seed(seed)
    model = GuidedUNet(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return model.eval()


def _inputs(n: int = 3, size: int = 32, latent: int = LATENT):
    torch.manual_seed(5)
    hint = torch.zeros(n, 4, size // 4, size // 4)
    hint[:, :3, 2:4, 2:4] = torch.rand(n, 3, 2, 2) * 2 - 1
    hint[:, 3, 2:4, 2:4] = 1
    return torch.rand(n, 1, size, size) * 2 - 1, torch.rand(n, 1, size, size) * 2 - 1, hint, torch.randn(n, latent)


@pytest.mark.parametrize("sizes", [dict(base_channels=6), dict(base_channels=8, max_channels=32),
                                   dict(res_blocks=3), dict(base_channels=7, res_blocks=2)])
def test_the_grown_generator_draws_what_the_source_draws(sizes: dict) -> None:
    source = _trained_like(SMALL)
    config = replace(SMALL, **sizes)
    grown = grow_guided_unet(source, config, seed=1).eval()
    assert grown.config == config
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in source.parameters())
    inputs = _inputs()
    with torch.no_grad():
        before, after = source(*inputs), grown(*inputs)
    assert (before - after).abs().max() < 1e-5
    # the outputs depend on the inputs (a constant picture would pass trivially)
    assert before.std(dim=0).mean() > 0.01


def test_copied_channels_learn_apart() -> None:
    """The weight splits are unequal, so a copy gets another gradient than its source: a uniform split
    (plain duplication) would keep the two identical for ever and add no capacity."""
    grown = grow_guided_unet(_trained_like(SMALL), replace(SMALL, base_channels=8), seed=3)
    sketch, guide, hint, z = _inputs()
    grown(sketch, guide, hint, z).square().mean().backward()
    stem = grown.stem[0].weight
    # channel j >= 4 copies some old channel; find it by equal weights
    for copy in range(4, 8):
        source = next(c for c in range(4) if torch.equal(stem[c], stem[copy]))
        assert not torch.allclose(stem.grad[copy], stem.grad[source], atol=1e-7)


def test_added_bottleneck_blocks_start_as_the_identity_and_train() -> None:
    grown = grow_guided_unet(_trained_like(SMALL), replace(SMALL, res_blocks=2))
    added = grown.middle[1]
    x, z = torch.randn(2, 16, 8, 8), torch.randn(2, LATENT)
    assert torch.equal(added(x, z), x)
    added(x, z).square().mean().backward()
    assert added.norm2.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("sizes, message", [
    (dict(base_channels=2), "cannot remove capacity"),
    (dict(res_blocks=0), "cannot remove capacity"),
    (dict(depth=3), "can only grow"),
    (dict(latent_dim=4), "can only grow"),
])
def test_refuses_what_is_not_growth(sizes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grow_guided_unet(_trained_like(SMALL), replace(SMALL, **sizes))
    with pytest.raises(ValueError, match="instance norm"):
        grow_guided_unet(_trained_like(replace(SMALL, norm="group")), replace(SMALL, norm="group", base_channels=8))


def _tiny_folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    autoencoder = SketchAutoencoder(AutoencoderConfig(image_size=32, latent_dim=LATENT, base_channels=4,
                                                      max_channels=16))
    bank = LatentBank(torch.randn(12, LATENT), [f"face_{i}" for i in range(12)])
    folder = tmp_path / "source"
    write_pipeline_folder(folder, PipelineDescription("guided", 32, 4, latent_dim=LATENT),
                          {"autoencoder": autoencoder, "generator": _trained_like(SMALL)}, bank=bank,
                          meta={"generator": {"experiment": "tiny"}})
    return folder


def test_grown_folder_loads_and_draws_the_source_pictures_at_every_projection(tmp_path: Path) -> None:
    source = _tiny_folder(tmp_path)
    out = grow_pipeline(source, tmp_path / "grown", base_channels=6, res_blocks=2, seed=2)
    config = read_json(out / "generator" / "config.json")
    assert (config["config"]["base_channels"], config["config"]["res_blocks"]) == (6, 2)
    assert config["meta"]["grown"]["sizes"]["base_channels"] == [4, 6]
    a, b = (Sketch2AnimePipeline.from_pretrained(f, device="cpu") for f in (source, out))
    sketch, _, hint, _ = _inputs(2)
    for projection in (0.0, 1.0):
        first = a.generate_tensors(sketch, hint, projection)
        second = b.generate_tensors(sketch, hint, projection)
        assert (first["image"] - second["image"]).abs().max() < 1e-5
        assert torch.equal(first["projected_sketch"], second["projected_sketch"])


def test_command_line_writes_a_grown_copy_and_refuses_bad_requests(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = _tiny_folder(tmp_path)
    assert main(["grow", str(source), "--base-channels", "8", "--out", str(tmp_path / "g")]) == 0
    assert read_json(tmp_path / "g" / "generator" / "config.json")["config"]["base_channels"] == 8
    assert main(["grow", str(source), "--out", str(tmp_path / "same")]) == 2
    assert "nothing to grow" in capsys.readouterr().err
    assert main(["grow", str(source), "--base-channels", "2", "--out", str(tmp_path / "less")]) == 2
    assert "cannot remove capacity" in capsys.readouterr().err
    assert main(["grow", str(source), "--base-channels", "8", "--out", str(tmp_path / "g")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "same").exists() and not (tmp_path / "less").exists()
