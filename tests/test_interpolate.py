"""Weight interpolation between two fine-tunes of one generator (``sketch2anime interpolate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import draw_face
from sketch2anime.checkpoint import read_json, read_tensors
from sketch2anime.cli import main
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.interpolate import interpolate_pipelines, interpolate_state
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig
from sketch2anime.models.projection import LatentBank
from sketch2anime.models.part_guide import PartLayout
from sketch2anime.pipeline_format import PipelineDescription, has_parts, write_parts_folder, write_pipeline_folder

pytestmark = pytest.mark.usefixtures("one_thread")

LATENT = 16


def _tiny_pair(tmp_path: Path, parts: bool = False) -> tuple[Path, Path]:
    """Two guided folders with one autoencoder and bank (and part guide) and two different generators."""
    torch.manual_seed(0)
    layout = PartLayout()
    part_autoencoder = SketchAutoencoder(AutoencoderConfig(image_size=32, latent_dim=LATENT, base_channels=4,
                                                           max_channels=16))
    part_banks = {name: LatentBank(torch.randn(12, LATENT), [f"face_{i}" for i in range(12)])
                  for name in layout.names}
    autoencoder = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=LATENT, base_channels=4,
                                                      max_channels=16))
    bank = LatentBank(torch.randn(12, LATENT), [f"face_{i}" for i in range(12)])
    folders = []
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        generator = GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=LATENT, base_channels=4, max_channels=16,
                                                depth=3))
        folder = tmp_path / name
        if parts:
            write_parts_folder(folder, layout, part_autoencoder, part_banks)
        write_pipeline_folder(folder, PipelineDescription("guided", 64, 4, latent_dim=LATENT),
                              {"autoencoder": autoencoder, "generator": generator}, bank=bank,
                              meta={"generator": {"experiment": name}})
        folders.append(folder)
    return folders[0], folders[1]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return read_tensors(folder / "generator" / "model.safetensors")


def test_alpha_moves_every_weight_from_a_to_b(tmp_path: Path) -> None:
    a, b = _tiny_pair(tmp_path)
    wa, wb = _weights(a), _weights(b)
    for alpha in (0.0, 0.25, 1.0):
        out = interpolate_pipelines(a, b, alpha, tmp_path / f"soup{alpha}")
        mixed = _weights(out)
        for name in wa:
            if wa[name].is_floating_point():
                torch.testing.assert_close(mixed[name], wa[name] + alpha * (wb[name] - wa[name]))
    # A quarter of the way: the distance to A is a third of the distance to B, not the reverse.
    quarter = _weights(tmp_path / "soup0.25")
    to_a = sum(float((quarter[n] - wa[n]).abs().sum()) for n in wa if wa[n].is_floating_point())
    to_b = sum(float((quarter[n] - wb[n]).abs().sum()) for n in wa if wa[n].is_floating_point())
    assert to_a == pytest.approx(to_b / 3, rel=1e-4)
    description = PipelineDescription.read(tmp_path / "soup0.25")
    assert description.training["interpolated"]["alpha"] == 0.25
    assert read_json(tmp_path / "soup0.25" / "generator" / "config.json")["meta"]["interpolated"]["b"] == str(b)


@pytest.mark.parametrize("parts", [False, True], ids=["whole-face guide", "with part guide"])
def test_interpolated_folder_loads_and_its_ends_draw_like_the_originals(tmp_path: Path, parts: bool) -> None:
    a, b = _tiny_pair(tmp_path, parts)
    sketch = np.asarray(draw_face(64, 3).convert("L"))
    results = {}
    for name, folder in (("a", a), ("b", b), ("soup0", interpolate_pipelines(a, b, 0.0, tmp_path / "s0")),
                         ("soup1", interpolate_pipelines(a, b, 1.0, tmp_path / "s1")),
                         ("soup.5", interpolate_pipelines(a, b, 0.5, tmp_path / "s5"))):
        pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
        assert (pipe.parts is not None) == parts == has_parts(folder)
        results[name] = np.asarray(pipe(sketch, projection=1.0, output_size="model"), dtype=np.float64)
    assert np.array_equal(results["soup0"], results["a"])
    assert np.array_equal(results["soup1"], results["b"])
    assert np.abs(results["a"] - results["b"]).mean() > 1.0  # the two generators really differ
    assert not np.array_equal(results["soup.5"], results["a"])
    assert not np.array_equal(results["soup.5"], results["b"])


def test_refuses_unrelated_models_bad_alpha_and_an_existing_output(tmp_path: Path) -> None:
    a, b = _tiny_pair(tmp_path)
    with pytest.raises(ValueError, match="alpha must be"):
        interpolate_pipelines(a, b, 1.5, tmp_path / "x")
    with pytest.raises(ValueError, match="alpha must be"):
        interpolate_pipelines(a, b, float("nan"), tmp_path / "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists"):
        interpolate_pipelines(a, b, 0.5, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    # Another autoencoder: the latents mean different things, so averaging generators is refused.
    torch.manual_seed(5)
    other = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=LATENT, base_channels=4, max_channels=16))
    write_pipeline_folder(b, PipelineDescription("guided", 64, 4, latent_dim=LATENT), {"autoencoder": other})
    with pytest.raises(ValueError, match="differ in autoencoder"):
        interpolate_pipelines(a, b, 0.5, tmp_path / "y")
    assert not (tmp_path / "y").exists()
    with pytest.raises(ValueError, match="not a model folder"):
        interpolate_pipelines(a, tmp_path / "nowhere", 0.5, tmp_path / "z")


def test_refuses_generators_of_other_shapes() -> None:
    a = {"w": torch.zeros(2, 3), "count": torch.tensor(3)}
    with pytest.raises(ValueError, match="shape"):
        interpolate_state(a, {"w": torch.zeros(3, 3), "count": torch.tensor(3)}, 0.5)
    with pytest.raises(ValueError, match="different names"):
        interpolate_state(a, {"v": torch.zeros(2, 3), "count": torch.tensor(3)}, 0.5)
    with pytest.raises(ValueError, match="integer buffer"):
        interpolate_state(a, {"w": torch.zeros(2, 3), "count": torch.tensor(4)}, 0.5)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _tiny_pair(tmp_path)
    assert main(["interpolate", str(a), str(b), "--alpha", "0.5", "--out", str(tmp_path / "soup")]) == 0
    assert (tmp_path / "soup" / "pipeline.json").is_file()
    assert main(["interpolate", str(a), str(b), "--alpha", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "alpha must be" in capsys.readouterr().err


def test_a_shipped_folder_and_its_fine_tune_mix_though_their_files_differ(tmp_path: Path) -> None:
    """The shipped default stores float16 weights and int8 banks; a run fine-tuned from it exports
    float32 weights and its own bank copy. Same autoencoder to float16 precision: accepted, with A's
    banks; an autoencoder changed beyond that precision is still refused."""
    from sketch2anime.checkpoint import atomic_save_tensors

    a, b = _tiny_pair(tmp_path, parts=True)
    for weights in (b / "autoencoder" / "model.safetensors", b / "parts" / "autoencoder" / "model.safetensors"):
        atomic_save_tensors(weights, {k: v.half() for k, v in read_tensors(weights).items()})
    bank = b / "latent_bank.safetensors"
    atomic_save_tensors(bank, {k: v[:6] if v.dim() else v for k, v in read_tensors(bank).items()})
    soup = interpolate_pipelines(a, b, 0.5, tmp_path / "soup")
    for name in ("latent_bank.safetensors", "autoencoder/model.safetensors", "parts/bank_mouth.safetensors"):
        assert (soup / name).read_bytes() == (a / name).read_bytes()
    Sketch2AnimePipeline.from_pretrained(soup, device="cpu")(np.asarray(draw_face(64, 1).convert("L")))

    weights = b / "autoencoder" / "model.safetensors"
    tensors = read_tensors(weights)
    first = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[first] = tensors[first].float() * 1.01
    atomic_save_tensors(weights, tensors)
    with pytest.raises(ValueError, match="differ in autoencoder/model.safetensors"):
        interpolate_pipelines(a, b, 0.5, tmp_path / "refused")


def test_default_names_the_shipped_model_as_in_every_other_command(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sketch2anime.inference as inference

    a, b = _tiny_pair(tmp_path)
    monkeypatch.setattr(inference, "DEFAULT_MODEL_DIR", a)
    soup = interpolate_pipelines("default", b, 0.25, tmp_path / "soup")
    wa, wb, ws = _weights(a), _weights(b), _weights(soup)
    key = next(k for k, v in wa.items() if v.is_floating_point() and not torch.equal(v, wb[k]))
    assert torch.allclose(ws[key], 0.75 * wa[key] + 0.25 * wb[key], atol=1e-6)
