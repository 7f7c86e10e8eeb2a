"""`sketch2anime evaluate`: the fixed protocol, metrics.json, the oracle check, reports and plots."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import draw_face, load_script, prepare_drawings
from sketch2anime.cli import main as cli_main
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset
from sketch2anime.evaluation.evaluate import (
    EvaluateConfig,
    EvalModel,
    add_deltas,
    oracle_model,
    run_evaluation,
)
from sketch2anime.evaluation.protocol import EvaluationProtocol, ProtocolConfig
from sketch2anime.evaluation.report import plot_training_logs, read_training_log, write_comparison
from sketch2anime.testing import tiny_pipeline

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_drawings(tmp_path_factory.mktemp("evaldata"), 12, 96, SIZE, extractors=("detail", "xdog"))


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained tiny pipeline folders: a sketch2anime one (with projection) and a simple GAN."""
    root = tmp_path_factory.mktemp("pipelines")
    s2a = tiny_pipeline(root / "s2a" / "model", image_size=SIZE, bank_size=20, projection_k=5)
    simple = tiny_pipeline(root / "simple", "simple_gan", image_size=SIZE)
    return {"s2a": s2a, "simple": simple}


class ChannelMeans:
    """A cheap stand-in feature extractor: per-image RGB means (N, 3)."""

    name = "test-channel-means"
    comparable_with_published = False
    feature_dim = 3

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return images.double().mean(dim=(2, 3)).numpy()

    def describe(self) -> dict:
        return {"extractor": self.name, "feature_dim": 3, "weights": "none", "comparable_with_published": False}


def _config(dataset: Path, out: Path, **changes) -> EvaluateConfig:
    values = dict(models=("x",), data=str(dataset), out=str(out), fid="none", limit=3, hint_levels=("none", "sparse"),
                  roughness=("none", "heavy"), projections=(0.0, 1.0), batch_size=3, grid_rows=2, kid_subsets=5)
    values.update(changes)
    return EvaluateConfig(**values)


# ---------------------------------------------------------------------------------------------
# protocol

def test_protocol_is_deterministic_and_per_image(dataset: Path) -> None:
    a = EvaluationProtocol(dataset, ProtocolConfig(seed=3))
    b = EvaluationProtocol(dataset, ProtocolConfig(seed=3))
    assert len(a) == a.val_total >= 3
    assert a.fingerprint() == b.fingerprint()
    for level in ("sparse", "dense"):
        assert np.array_equal(a.hints(level)[1], b.hints(level)[1])
        assert np.array_equal(a.hints(level)[0], b.hints(level)[0])
    assert np.array_equal(a.sketches("heavy"), b.sketches("heavy"))
    assert not np.array_equal(a.sketches("heavy"), a.sketches("none"))
    assert EvaluationProtocol(dataset, ProtocolConfig(seed=4)).fingerprint() != a.fingerprint()
    # Seeded per image id: a shorter run sees exactly the same inputs for the images it keeps.
    short = EvaluationProtocol(dataset, ProtocolConfig(seed=3, limit=2))
    assert short.ids == a.ids[:2]
    assert np.array_equal(short.hints("dense")[1], a.hints("dense")[1][:2])
    assert np.array_equal(short.sketches("medium"), a.sketches("medium")[:2])


def test_protocol_hint_levels_and_clean_sketch(dataset: Path) -> None:
    p = EvaluationProtocol(dataset, ProtocolConfig())
    assert p.extractor == "detail"  # the first extractor given to prepare
    assert not p.hints("none")[1].any()
    sparse, dense = p.hints("sparse")[1], p.hints("dense")[1]
    assert sparse.reshape(len(p), -1).any(axis=1).all()  # no empty samples at hinted levels
    assert dense.mean() > 2 * sparse.mean()
    # Hint colours are the image's colours (area-downscaled) under the mask.
    colours, masks = p.hints("dense")
    small = F.interpolate(p.target_tensor([0]), size=(p.hint_size, p.hint_size), mode="area")[0]
    hint = p.hint_tensor("dense", [0])[0]
    assert hint.shape == (4, SIZE // 4, SIZE // 4)
    assert torch.allclose(hint[:3][:, torch.from_numpy(masks[0])], small[:, torch.from_numpy(masks[0])], atol=0.02)


def test_protocol_rejects_bad_settings(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hint level"):
        ProtocolConfig(hint_levels=("some",))
    with pytest.raises(ValueError, match="roughness"):
        ProtocolConfig(roughness=("extreme",))
    no_val = tmp_path / "noval"
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(3):
        draw_face(64, i).save(images / f"{i}.png")
    prepare_dataset(images, no_val, PrepareConfig(size=SIZE, extractors=("xdog",), val_fraction=0.0, workers=1),
                    progress=False)
    with pytest.raises(ValueError, match="no validation images"):
        EvaluationProtocol(no_val)


def test_every_model_gets_identical_inputs(dataset: Path, tmp_path: Path) -> None:
    seen: dict[str, list] = {"a": [], "b": []}

    def recorder(name: str) -> EvalModel:
        def run(batch, projection, seed):
            seen[name].append((batch.sketch.clone(), None if batch.hint is None else batch.hint.clone(), seed))
            return torch.zeros_like(batch.target)
        return EvalModel(name=name, source=name, kind="test", run=run)

    run_evaluation(_config(dataset, tmp_path / "out", batch_size=2), models=[recorder("a"), recorder("b")],
                   progress=False)
    # validation: conditions x hint levels x batches; held-out line style: clean only x hint levels x batches
    assert len(seen["a"]) == len(seen["b"]) == 2 * 2 * 2 + 2 * 2
    for (sa, ha, seed_a), (sb, hb, seed_b) in zip(seen["a"], seen["b"]):
        assert torch.equal(sa, sb) and seed_a == seed_b
        assert (ha is None) == (hb is None) and (ha is None or torch.equal(ha, hb))
    assert sum(h is None for _, h, _ in seen["a"]) == 6  # level "none" passes no hint
    assert any(h is not None and h[:, 3].sum() > 0 for _, h, _ in seen["a"])


def test_projection_change_measures_what_the_slider_does(dataset: Path, tmp_path: Path) -> None:
    """Each strength against the weakest: 0.4 for a grey that brightens by 0.8 (0.4 on [0, 1]) from t=0 to
    t=1, 0 for a model that ignores t, None at the weakest strength itself (whatever order t is given in)."""
    def slider(batch, projection, seed):
        return torch.full_like(batch.target, (2 * projection - 1) * 0.4)

    def inert(batch, projection, seed):
        return torch.zeros_like(batch.target)

    models = [EvalModel(name="slider", source="s", kind="test", run=slider, projections=(1.0, 0.5, 0.0)),
              EvalModel(name="inert", source="i", kind="test", run=inert, projections=(0.0, 1.0))]
    result = run_evaluation(_config(dataset, tmp_path / "out"), models=models, progress=False)
    change = {(e["model"], e["projection"], e["condition"], e["hint_level"]): e["metrics"]["projection_change"]
              for e in result["entries"] if e.get("set", "val") == "val"}
    for condition in ("clean", "rough-heavy"):
        for level in ("none", "sparse"):
            assert change[("slider", 0.0, condition, level)] is None
            assert change[("slider", 0.5, condition, level)] == pytest.approx(0.2, abs=1e-6)
            assert change[("slider", 1.0, condition, level)] == pytest.approx(0.4, abs=1e-6)
            assert change[("inert", 1.0, condition, level)] == pytest.approx(0.0, abs=1e-9)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "change vs weakest t (/255)" in report and "| 102.0 |" in report  # 0.4 x 255 on the rough rows


def _guided_with_palettes(folder: Path) -> Path:
    """A tiny guided folder whose bank ids have training colour schemes: one flat colour per image."""
    from sketch2anime.data.palettes import PaletteBank
    from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
    from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig
    from sketch2anime.models.projection import LatentBank
    from sketch2anime.pipeline_format import PipelineDescription, write_pipeline_folder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        autoencoder = SketchAutoencoder(AutoencoderConfig(image_size=SIZE, latent_dim=16, base_channels=4,
                                                          max_channels=16))
        generator = GuidedUNet(GuidedUNetConfig(image_size=SIZE, latent_dim=16, base_channels=4, max_channels=16,
                                                depth=3))
        bank = LatentBank(torch.randn(12, 16), [f"face_{i}/detail" for i in range(12)])
    colours = [np.full((16, 16, 3), (20 * i, 255 - 20 * i, 40), np.uint8) for i in range(12)]
    palettes = PaletteBank.from_images(colours, [f"face_{i}" for i in range(12)])
    return write_pipeline_folder(folder, PipelineDescription("guided", SIZE, 4, latent_dim=16),
                                 {"autoencoder": autoencoder, "generator": generator}, bank=bank, palettes=palettes)


def test_model_at_seed_scores_the_panels_seed(dataset: Path, pipelines: dict[str, Path], tmp_path: Path) -> None:
    """``FOLDER@seed=N`` runs the pipeline exactly as the panel's Seed N does (borrowed colours), not
    its own colours; bad seeds and pipelines without colour schemes are refused."""
    from sketch2anime.evaluation.eval_model import Batch
    from sketch2anime.evaluation.models_under_test import ModelSpec, _model_name, _pipeline_model, parse_model_spec
    from sketch2anime.inference import Sketch2AnimePipeline

    folder = _guided_with_palettes(tmp_path / "guided" / "model")
    assert parse_model_spec(f"{folder}@seed=3") == ModelSpec(str(folder), 3)
    assert parse_model_spec(str(folder)) == ModelSpec(str(folder))
    taken: set[str] = set()
    assert _model_name(str(folder), taken) == "guided" and _model_name(f"{folder}@seed=2", taken) == "guided-seed2"
    assert _model_name("runs/long/snapshots/step_0006000", taken) == "long-step_0006000"
    protocol = EvaluationProtocol(dataset, ProtocolConfig(hint_levels=("sparse",), roughness=("none",), limit=3))
    indices = list(range(3))
    batch = Batch(protocol.sketch_tensor("none", indices), protocol.hint_tensor("sparse", indices),
                  protocol.target_tensor(indices), [str(i) for i in indices])
    own = _pipeline_model(str(folder), "cpu", (0.0,), "own")
    seeded = _pipeline_model(f"{folder}@seed=2", "cpu", (0.0,), "seeded")
    assert seeded.info["colour_seed"] == 2 and own.info["colour_seed"] is None and "Seed 2" in seeded.label
    pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    expected_seeded = pipe.generate_tensors(batch.sketch, batch.hint, projection=0.0, seed=2)["image"]
    expected_own = pipe.generate_tensors(batch.sketch, batch.hint, projection=0.0)["image"]
    assert torch.equal(seeded.run(batch, 0.0, 0), expected_seeded)
    assert torch.equal(own.run(batch, 0.0, 0), expected_own)
    assert float((expected_seeded - expected_own).abs().mean()) > 1e-4  # the dabs reach the picture
    for bad in ("@seed=0", "@seed=-1", "@seed=two", "@seed="):
        with pytest.raises(ValueError, match="positive integer"):
            _pipeline_model(f"{folder}{bad}", "cpu", (0.0,), "bad")
    with pytest.raises(ValueError, match="no training colour schemes"):
        _pipeline_model(f"{pipelines['s2a']}@seed=1", "cpu", (0.0,), "no-palettes")


def test_model_at_lines_multiplies_the_sketch_over_the_result(dataset: Path, pipelines: dict[str, Path]) -> None:
    """``FOLDER@lines=S`` scores what ``generate --lines S`` saves: paper pixels keep the model's colour,
    full ink turns black, half strength halves the darkening; marks combine, bad ones are refused."""
    from sketch2anime.evaluation.eval_model import Batch
    from sketch2anime.evaluation.models_under_test import ModelSpec, _model_name, _pipeline_model, parse_model_spec

    folder = str(pipelines["s2a"])
    assert parse_model_spec(f"{folder}@lines=0.5") == ModelSpec(folder, None, 0.5)
    assert parse_model_spec(f"{folder}@lines=1@seed=2") == ModelSpec(folder, 2, 1.0)
    assert parse_model_spec(f"{folder}@seed=2@lines=1") == ModelSpec(folder, 2, 1.0)
    assert _model_name(f"{folder}@lines=1", set()) == _model_name(folder, set()) + "-lines1"
    for bad, message in (("@lines=2", "line strength"), ("@lines=x", "line strength"),
                         ("@lines=1@lines=1", "twice")):
        with pytest.raises(ValueError, match=message):
            parse_model_spec(f"{folder}{bad}")
    with pytest.raises(ValueError, match="before the marks"):
        parse_model_spec("@lines=1")
    protocol = EvaluationProtocol(dataset, ProtocolConfig(hint_levels=("sparse",), roughness=("none",), limit=3))
    indices = list(range(3))
    sketch = protocol.sketch_tensor("none", indices)
    sketch[:, :, :4] = -1.0  # full ink on the top rows, the rest as extracted
    sketch[:, :, -4:] = 1.0  # bare paper on the bottom rows
    batch = Batch(sketch, protocol.hint_tensor("sparse", indices), protocol.target_tensor(indices),
                  [str(i) for i in indices])
    own = _pipeline_model(folder, "cpu", (0.0,), "own").run(batch, 0.0, 0)
    full = _pipeline_model(f"{folder}@lines=1", "cpu", (0.0,), "full").run(batch, 0.0, 0)
    half = _pipeline_model(f"{folder}@lines=0.5", "cpu", (0.0,), "half").run(batch, 0.0, 0)
    assert torch.allclose(full[:, :, -4:], own[:, :, -4:], atol=1e-6)  # paper: the model's colour
    assert torch.allclose(full[:, :, :4], torch.full_like(full[:, :, :4], -1.0), atol=1e-6)  # ink: black
    own01, full01, half01 = (own + 1) / 2, (full + 1) / 2, (half + 1) / 2
    assert torch.allclose(own01 - half01, (own01 - full01) / 2, atol=1e-5)
    assert float((own01 - full01).min()) >= -1e-6 and float((own01 - full01)[:, :, :4].mean()) > 0.05


def test_model_at_flat_scores_the_flattened_result(dataset: Path, pipelines: dict[str, Path]) -> None:
    """``FOLDER@flat=F`` scores what ``generate --flatten F`` saves: the model's picture flattened by the
    regions of the sketch it was given, before any ``@lines``; bad strengths are refused."""
    from sketch2anime.evaluation.eval_model import Batch, resize_images
    from sketch2anime.evaluation.models_under_test import ModelSpec, _model_name, _pipeline_model, parse_model_spec
    from sketch2anime.flatten import flatten_tensor

    folder = str(pipelines["s2a"])
    assert parse_model_spec(f"{folder}@flat=1@lines=0.5") == ModelSpec(folder, None, 0.5, 1.0)
    assert parse_model_spec(f"{folder}@flat=0.5") == ModelSpec(folder, flatten=0.5)
    assert _model_name(f"{folder}@flat=1", set()) == _model_name(folder, set()) + "-flat1"
    for bad, message in (("@flat=3", "flattening strength"), ("@flat=", "flattening strength"),
                         ("@flat=1@flat=1", "twice")):
        with pytest.raises(ValueError, match=message):
            parse_model_spec(f"{folder}{bad}")
    protocol = EvaluationProtocol(dataset, ProtocolConfig(hint_levels=("sparse",), roughness=("none",), limit=3))
    indices = list(range(3))
    batch = Batch(protocol.sketch_tensor("none", indices), protocol.hint_tensor("sparse", indices),
                  protocol.target_tensor(indices), [str(i) for i in indices])
    own = _pipeline_model(folder, "cpu", (0.0,), "own").run(batch, 0.0, 0)
    flat = _pipeline_model(f"{folder}@flat=1", "cpu", (0.0,), "flat")
    assert "one colour per closed region" in flat.label
    lines = resize_images(batch.sketch.float(), own.shape[-1])
    flattened = flat.run(batch, 0.0, 0)
    assert torch.allclose(flattened, flatten_tensor(own, lines, 1.0), atol=1e-6)
    assert float((flattened - own).abs().mean()) > 1e-3  # the regions were really filled


def test_display_script_agrees_with_the_evaluations_display_column(dataset: Path, pipelines: dict[str, Path],
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/display_upscalers.py: its bicubic row is evaluate's SSIM at the display size, its floor
    row the floor-mean's; an upscaler row enlarges then reduces to the display size."""
    script = load_script("display_upscalers")
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path / "empty-home"))  # no upscaler installed
    rows = dict(script.display_rows(str(pipelines["s2a"]), dataset, limit=3, size=96))
    assert list(rows) == ["model, bicubic", "floor-mean (mean training image), bicubic"]
    result = run_evaluation(_config(dataset, tmp_path / "out", models=(str(pipelines["s2a"]),), projections=(0.0,),
                                    hint_levels=("sparse",), roughness=("none",), display_size=96,
                                    heldout_lines=False), progress=False)
    display = {e["model"]: e["metrics"]["ssim_display_mean"] for e in result["entries"] if e.get("set", "val") == "val"}
    assert rows["model, bicubic"] == pytest.approx(display["s2a"], abs=1e-5)
    assert rows["floor-mean (mean training image), bicubic"] == pytest.approx(display["floor-mean"], abs=1e-5)

    class Nearest4x:  # a stand-in x4 upscaler of [0, 1] images: 4x4 blocks, so reduced to 2x it is 2x2 blocks
        scale = 4

        def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
            assert float(x.min()) >= 0 and float(x.max()) <= 1  # the upscalers take [0, 1], not [-1, 1]
            return F.interpolate(x, scale_factor=4, mode="nearest")

    images = torch.rand(2, 3, 64, 64) * 2 - 1
    shown = script.to_size(images, 128, Nearest4x())
    assert shown.shape == (2, 3, 128, 128)
    assert torch.allclose(shown, F.interpolate(images, size=(128, 128), mode="nearest"), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# end to end

def test_evaluate_cli_end_to_end(dataset: Path, pipelines: dict[str, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path / "empty-cache"))  # no HED weights: FID skipped
    run = tmp_path / "runs" / "s2a"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "time": s, "loss_g": 2.0 / s, "l1": 1.0 / s})
                                                 for s in (10, 20, 30)) + "\n{\"step\": 4", encoding="utf-8")
    out = tmp_path / "eval"
    code = cli_main(["evaluate", "--model", str(pipelines["s2a"]), "--model", str(pipelines["simple"]),
                     "--model", "oracle", "--data", str(dataset), "--out", str(out), "--limit", "3",
                     "--hint-levels", "none,sparse", "--roughness", "none,heavy", "--projection", "0,1",
                     "--batch-size", "3", "--grid-rows", "2", "--logs", str(run), "--quiet",
                     "--display-size", "96", "--table", str(tmp_path / "floors.md")])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "sketch2anime weights hed" in metrics["feature_extractor"]["skipped"]
    assert metrics["protocol"]["n_evaluated"] == 3 and metrics["protocol"]["clean_sketch_extractor"] == "detail"
    floors = ["floor-sketch", "floor-mean", "ref-colour16"]
    assert [m["name"] for m in metrics["models"]] == ["s2a", "simple", "oracle", *floors]
    assert metrics["floors"] == floors
    assert metrics["models"][0]["projections"] == [0.0, 1.0] and metrics["models"][1]["projections"] == [None]
    assert [s["name"] for s in metrics["sets"]] == ["val", "heldout-lines"]
    assert metrics["sets"][1]["clean_sketch"] == "gradient-lines" and metrics["sets"][1]["conditions"] == ["none"]
    all_entries = metrics["entries"]
    entries = [e for e in all_entries if e["set"] == "val"]
    # (s2a x 2 projections, simple, oracle, 3 floors) x conditions x hint levels; held-out: clean only
    assert len(entries) == (2 + 1 + 1 + 3) * 2 * 2
    assert len(all_entries) == len(entries) + (2 + 1 + 1 + 3) * 1 * 2
    for e in all_entries:
        m = e["metrics"]
        assert e["n"] == 3 and e["model_path"]
        assert -1.0 <= m["ssim_mean"] <= 1.0 and m["ssim_std"] >= 0
        assert 0.0 <= m["l1_mean"] <= 1.0 and m["psnr_mean"] > 0
        assert 0.0 <= m["line_recall"] <= 1.0 and m["line_chamfer"] >= 0
        assert m["fid"] is None and e["feature_extractor"] is None
        if e["hint_level"] == "none":
            assert m["hint_de00_median"] is None
        else:
            assert m["hint_de00_median"] >= 0 and m["hint_de00_p90"] >= m["hint_de00_median"] and m["hint_pixels"] > 0
        assert (e["delta_vs_clean"] is None) == (e["condition"] == "clean")
        assert e["timing"]["generate_seconds"] >= 0
        assert m["sensitivity"] is not None and m["sensitivity"] >= 0
        if e["condition"] == "clean":  # display scores: clean sketches only
            assert -1.0 <= m["ssim_display_mean"] <= 1.0  # the faces were drawn at 96 px
        else:
            assert m["ssim_display_mean"] is None
    untrained = [e for e in entries if e["model"] == "s2a"]
    assert all(e["metrics"]["ssim_mean"] < 0.5 for e in untrained)  # random weights are far from the target
    assert {e["projection"] for e in untrained} == {0.0, 1.0}
    for name in ("report.md", "report.html", "grid.png", "per_image.csv", "plots/s2a.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "Robustness to rough sketches" in report and "s2a" in report and "grid.png" in report
    assert "Against trivial floors" in report and "Held-out line style" in report and "floor-mean" in report
    table = (tmp_path / "floors.md").read_text()
    assert "| floor-sketch |" in table and "| s2a | 0 |" in table and "SSIM at 96 px" in table
    assert "Held-out line style" in table and "sensitivity" in table
    grid = Image.open(out / "grid.png")
    # 2 sections x (header + 2 rows of >= 128 px tiles); columns: sketch, hint, 2 s2a, simple, oracle, target
    assert grid.width >= 7 * 128 and grid.height >= 4 * 128
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == len(all_entries) * 3 and {r["set"] for r in rows} == {"val", "heldout-lines"}


def test_oracle_scores_perfect_and_fid_plumbing(dataset: Path, tmp_path: Path) -> None:
    def blank(batch, projection, seed):
        return torch.ones_like(batch.target)  # a white page: worst case for lines and hints

    models = [oracle_model(), EvalModel(name="white", source="white", kind="test", run=blank)]
    result = run_evaluation(_config(dataset, tmp_path / "out", hint_levels=("none", "sparse", "dense")),
                            models=models, feature_extractor=ChannelMeans(), progress=False)
    assert result["feature_extractor"]["label"] == "test-channel-means (NOT comparable with published FID)"
    val = [e for e in result["entries"] if e["set"] == "val"]  # FID is computed on the validation set only
    oracle = [e for e in val if e["model"] == "oracle"]
    white = {(e["condition"], e["hint_level"]): e for e in val if e["model"] == "white"}
    for e in oracle:
        m = e["metrics"]
        assert m["ssim_mean"] == pytest.approx(1.0, abs=1e-9) and m["l1_mean"] == 0.0
        assert m["fid"] == pytest.approx(0.0, abs=1e-6) and m["line_recall"] == 1.0
        if e["hint_level"] != "none":
            assert m["hint_de00_median"] < 0.5 and m["hint_de00_p90"] < 1.5  # uint8 rounding only
        if e["condition"] != "clean":
            assert all(v == pytest.approx(0.0, abs=1e-9) for k, v in e["delta_vs_clean"].items()
                       if v is not None and not k.endswith("_input"))
        w = white[(e["condition"], e["hint_level"])]["metrics"]
        assert w["fid"] > 0.01 and w["ssim_mean"] < m["ssim_mean"] and w["line_recall"] == 0.0
        if e["hint_level"] != "none":
            assert w["hint_de00_median"] > 5.0
    assert all(e["feature_extractor"] for e in val)
    assert all(e["metrics"]["fid"] is None for e in result["entries"] if e["set"] != "val")
    # each model's FID gap to the first model (the oracle), paired over the images; none for the first or floors
    for e in val:
        gap = e["metrics"]["fid_vs_first"]
        if e["model"] != "white":
            assert gap is None
            continue
        reference = next(o for o in oracle if (o["condition"], o["hint_level"]) == (e["condition"], e["hint_level"]))
        assert gap["reference"] == "oracle" and gap["draws"] == 500
        assert gap["difference"] == pytest.approx(e["metrics"]["fid"] - reference["metrics"]["fid"], rel=1e-6, abs=1e-9)
        assert gap["difference"] > 0 and gap["low"] <= gap["high"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "FID minus oracle's (clean, sparse hints; 90% paired bootstrap interval" in report
    off = run_evaluation(_config(dataset, tmp_path / "off", fid_draws=0), models=models,
                         feature_extractor=ChannelMeans(), progress=False)
    assert all(e["metrics"].get("fid_vs_first") is None for e in off["entries"])
    with pytest.raises(ValueError, match="--fid-draws"):
        _config(dataset, tmp_path / "bad", fid_draws=1)


def test_deltas_are_rough_minus_clean() -> None:
    def entry(roughness: str, ssim: float, fid: float | None) -> dict:
        return {"model": "m", "hint_level": "none", "projection": 0.5, "roughness": roughness,
                "metrics": {"ssim_mean": ssim, "fid": fid}}

    entries = [entry("none", 0.8, 10.0), entry("heavy", 0.6, None), entry("medium", 0.7, 12.5)]
    add_deltas(entries)
    assert entries[0]["delta_vs_clean"] is None
    assert entries[1]["delta_vs_clean"]["ssim_mean"] == pytest.approx(-0.2)
    assert entries[1]["delta_vs_clean"]["fid"] is None
    assert entries[2]["delta_vs_clean"]["fid"] == pytest.approx(2.5)


def test_style_transfer_is_skipped_with_a_reason_without_weights(dataset: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path / "empty-cache"))
    config = _config(dataset, tmp_path / "out", models=("style-transfer", "oracle"), limit=2, roughness=("none",),
                     floors=False)
    result = run_evaluation(config, progress=False)
    assert [m["name"] for m in result["models"]] == ["oracle"]
    assert "sketch2anime weights hed" in result["skipped_models"][0]["reason"]
    assert "Skipped `style-transfer`" in (tmp_path / "out" / "report.md").read_text()


def test_fid_conditions_must_be_evaluated(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fid-conditions"):
        run_evaluation(_config(dataset, tmp_path / "out", fid_conditions=("medium",)), models=[oracle_model()],
                       progress=False)


def test_comparison_page(dataset: Path, tmp_path: Path) -> None:
    result = run_evaluation(_config(dataset, tmp_path / "eval", limit=2), models=[oracle_model()], progress=False)
    budget = tmp_path / "budget.jsonl"
    budget.write_text(json.dumps({"name": "s2a64", "config": "configs/s2a64.toml", "steps": 50, "batch_size": 16,
                                  "seconds": 600}) + "\n", encoding="utf-8")
    doc = write_comparison(tmp_path / "docs" / "comparison.md", tmp_path / "eval" / "metrics.json", budget,
                           tmp_path / "eval" / "metrics.json")
    text = doc.read_text()
    assert "| s2a64 | configs/s2a64.toml | 50 | 16 | 800 | 10.0 min |" in text
    summary = text.split("## Summary")[1].split("## Clean")[0]
    assert "sparse hints" in summary
    assert any(row.startswith("| oracle | – | 1.000 | – | – |") and row.endswith("| +0.000 | +0.000 |")
               for row in summary.splitlines())  # perfect and unmoved by rough sketches
    assert "ΔSSIM heavy" in text and "style-transfer baseline (first 2" in text
    assert result["hardware"]["cpu_count"] and "Hardware:" in text
    # The grid shows dataset images: the doc names it in the run folder and copies nothing next to itself.
    assert not (tmp_path / "docs" / "images").exists() and "![" not in text
    assert str(tmp_path / "eval" / "grid.png") in text


def test_compare_script_is_valid_bash() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_baselines.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for config in ("ae64", "s2a64", "simple_gan64", "pix2pix64", "cyclegan64"):
        assert f"configs/{config}.toml" in text
        assert (script.parents[1] / "configs" / f"{config}.toml").is_file()


# ---------------------------------------------------------------------------------------------
# training-curve plots

def test_training_log_plots(tmp_path: Path) -> None:
    run = tmp_path / "ae64"
    (run / "eval").mkdir(parents=True)
    lines = [json.dumps({"step": s, "time": 0.1 * s, "loss": math.exp(-s / 50), "lr": 2e-4, "flag": True})
             for s in range(10, 210, 10)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\nnot json\n", encoding="utf-8")
    (run / "eval" / "metrics.jsonl").write_text(json.dumps({"step": 100, "ssim": 0.4}) + "\n", encoding="utf-8")
    series = read_training_log(run)
    assert set(series) == {"loss", "lr", "eval/ssim"}  # step/time/booleans are not series
    assert len(series["loss"]) == 20 and series["eval/ssim"] == [(100.0, 0.4)]
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = plot_training_logs([run, empty], tmp_path / "plots")
    assert [p.name for p in paths] == ["ae64.png"]
    image = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert image.shape[1] == 3 * 360 and (image != 255).any()
