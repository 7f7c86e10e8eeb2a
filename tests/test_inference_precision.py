"""bf16 inference (``Sketch2AnimePipeline.set_precision``, ``runtime.fastest_inference_precision``):
the networks really run in bf16, the projection never does, "auto" decides by measurement, and every
entry point (API, generate, serve, evaluate marks, benchmark) takes the setting or refuses bad ones."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from conftest import draw_face
from sketch2anime import runtime
from sketch2anime.generate import GenerateConfig
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig
from sketch2anime.models.latent_bank import knn_exact
from sketch2anime.models.part_guide import PartLayout
from sketch2anime.models.projection import LatentBank, project
from sketch2anime.pipeline_format import PipelineDescription, write_parts_folder, write_pipeline_folder
from sketch2anime.server.app import ServeConfig

REPO = Path(__file__).resolve().parents[1]
LATENT = 16

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def guided(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 px guided pipeline with a per-part guide, random weights."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("precision") / "guided"
    layout = PartLayout()
    part_ae = SketchAutoencoder(AutoencoderConfig(image_size=32, latent_dim=LATENT, base_channels=4, max_channels=16))
    write_parts_folder(folder, layout, part_ae, {name: LatentBank(torch.randn(12, LATENT), [f"f{i}" for i in range(12)])
                                                 for name in layout.names})
    write_pipeline_folder(
        folder, PipelineDescription("guided", 64, 4, latent_dim=LATENT),
        {"autoencoder": SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=LATENT, base_channels=4,
                                                            max_channels=16)),
         "generator": GuidedUNet(GuidedUNetConfig(image_size=64, latent_dim=LATENT, base_channels=4, max_channels=16,
                                                  depth=3))},
        bank=LatentBank(torch.randn(12, LATENT), [f"face_{i}" for i in range(12)]))
    return folder


def _conv_output_dtypes(pipe: Sketch2AnimePipeline) -> dict[str, set[torch.dtype]]:
    """Record the output dtype of every conv of the three networks during the next calls."""
    seen: dict[str, set[torch.dtype]] = {"generator": set(), "autoencoder": set(), "parts": set()}
    for name, module in (("generator", pipe.generator), ("autoencoder", pipe.autoencoder), ("parts", pipe.parts)):
        for layer in module.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.register_forward_hook(lambda m, i, out, name=name: seen[name].add(out.dtype))
    return seen


def test_bf16_runs_every_network_in_bf16_and_answers_float32_close_to_fp32(guided: Path) -> None:
    sketch, hint, _ = Sketch2AnimePipeline.from_pretrained(guided, device="cpu").prepare(draw_face(64, 1))
    results = {}
    for precision in ("fp32", "bf16"):
        pipe = Sketch2AnimePipeline.from_pretrained(guided, device="cpu", precision=precision)
        assert pipe.precision == precision
        seen = _conv_output_dtypes(pipe)
        results[precision] = pipe.generate_tensors(sketch, hint, projection=0.5)
        wanted = torch.bfloat16 if precision == "bf16" else torch.float32
        assert seen == {"generator": {wanted}, "autoencoder": {wanted}, "parts": {wanted}}, seen
    for key in ("image", "projected_sketch"):
        a, b = results["fp32"][key], results["bf16"][key]
        assert a.dtype == b.dtype == torch.float32
        difference = (a - b).abs()
        assert 0 < difference.mean() < 0.02, (key, float(difference.mean()))  # rounded, not another picture


def test_the_projection_and_the_bank_search_ignore_autocast() -> None:
    # Clusters of near-duplicates: their distances differ far below bf16's resolution, so a
    # search that rounded its scores would pick other neighbours.
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(40, 64, generator=generator)
    latents = (centres[:, None] + 0.01 * torch.randn(40, 10, 64, generator=generator)).reshape(400, 64)
    bank = LatentBank(latents, [str(i) for i in range(400)])
    queries = centres[:6] + 0.01 * torch.randn(6, 64, generator=generator)
    plain = project(queries, bank, k=4, strength=0.7, return_details=True)
    plain_knn = knn_exact(queries, bank.latents, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = project(queries, bank, k=4, strength=0.7, return_details=True)
        rounded_knn = knn_exact(queries, bank.latents, 4)
        # Without the guard the ranking matmul itself would come out in bf16:
        assert torch.addmm(bank._sq_norms()[None], queries, bank.latents.T, alpha=-2.0).dtype == torch.bfloat16
    assert torch.equal(plain[0], rounded[0]) and torch.equal(plain[1].indices, rounded[1].indices)
    assert torch.equal(plain_knn[1], rounded_knn[1]) and torch.equal(plain_knn[0], rounded_knn[0])


def _fake_run(fp32_s: float, bf16_s: float):
    calls = {"fp32": 0, "bf16": 0}

    def run() -> None:
        precision = "bf16" if torch.is_autocast_enabled("cpu") else "fp32"
        calls[precision] += 1
        time.sleep(fp32_s if precision == "fp32" else bf16_s)
    return run, calls


@pytest.mark.parametrize("fp32_s, bf16_s, expected", [(0.02, 0.005, "bf16"), (0.005, 0.02, "fp32"),
                                                      (0.03, 0.029, "fp32")])  # a tie is not worth bf16
def test_auto_picks_bf16_only_when_measured_clearly_faster(monkeypatch: pytest.MonkeyPatch, fp32_s: float,
                                                           bf16_s: float, expected: str) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512_bf16"})
    run, calls = _fake_run(fp32_s, bf16_s)
    assert runtime.fastest_inference_precision(run, torch.device("cpu"), repeats=3) == expected
    assert calls == {"fp32": 4, "bf16": 4}  # one warm-up each, then the timed calls


def test_auto_is_fp32_unmeasured_without_bf16_instructions_or_on_cuda(monkeypatch: pytest.MonkeyPatch,
                                                                      guided: Path) -> None:
    never = lambda: pytest.fail("must not measure")  # noqa: E731
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "fma"})
    assert runtime.fastest_inference_precision(never, torch.device("cpu")) == "fp32"
    assert Sketch2AnimePipeline.from_pretrained(guided, device="cpu", precision="auto").precision == "fp32"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"amx_bf16"})
    assert runtime.fastest_inference_precision(never, torch.device("cuda")) == "fp32"


def test_auto_times_the_models_own_generator(monkeypatch: pytest.MonkeyPatch, guided: Path) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512_bf16"})
    pipe = Sketch2AnimePipeline.from_pretrained(guided, device="cpu")
    calls = []
    pipe.generator.register_forward_hook(lambda m, i, out: calls.append(out.dtype))
    assert pipe.set_precision("auto") is pipe and pipe.precision in ("fp32", "bf16")
    assert calls.count(torch.float32) == calls.count(torch.bfloat16) == 4


def test_work_scale_views_and_the_part_cache_follow_the_precision(guided: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(guided, device="cpu")
    big = pipe.at_scale(2)
    pipe(draw_face(64, 2), projection=0.5)
    assert len(pipe.part_cache)  # the parts were decoded in fp32 ...
    big.set_precision("bf16")
    assert (pipe.precision, big.precision) == ("bf16", "bf16")
    assert not len(pipe.part_cache)  # ... and are not reused for bf16
    seen = _conv_output_dtypes(big)
    big(draw_face(128, 2), projection=0.5)
    assert seen["generator"] == {torch.bfloat16}


def test_bad_precisions_are_refused_everywhere(guided: Path, tmp_path: Path) -> None:
    from sketch2anime.cli import main
    from sketch2anime.evaluation.models_under_test import _model_name, parse_model_spec

    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, auto"):
        Sketch2AnimePipeline.from_pretrained(guided, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        Sketch2AnimePipeline.from_pretrained(guided, device="cpu").set_precision("half")
    with pytest.raises(ValueError, match="precision must be one of"):
        GenerateConfig(sketch=tmp_path / "a.png", out=tmp_path / "b.png", precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        ServeConfig(precision="bf32")
    with pytest.raises(SystemExit):
        main(["serve", "--precision", "fp16"])
    with pytest.raises(ValueError, match="after @precision= give one of fp32, bf16, auto"):
        parse_model_spec(f"{guided}@precision=fp64")
    spec = parse_model_spec(f"{guided}@precision=bf16@lines=1")
    assert (spec.folder, spec.precision, spec.lines) == (str(guided), "bf16", 1.0)
    assert _model_name(f"{guided}@precision=bf16", set()) == "guided-bf16"


def test_generate_in_bf16_writes_the_picture(guided: Path, tmp_path: Path) -> None:
    from sketch2anime.cli import main

    draw_face(64, 3).save(tmp_path / "face.png")
    assert main(["generate", str(tmp_path / "face.png"), "-o", str(tmp_path / "out.png"), "--model", str(guided),
                 "--device", "cpu", "--precision", "bf16"]) == 0
    assert (tmp_path / "out.png").stat().st_size > 0


def test_the_panel_api_says_what_each_model_runs_in(guided: Path) -> None:
    from fastapi.testclient import TestClient

    from sketch2anime.server.app import create_app

    pipes = {"plain": Sketch2AnimePipeline.from_pretrained(guided, device="cpu"),
             "fast": Sketch2AnimePipeline.from_pretrained(guided, device="cpu", precision="bf16")}
    models = TestClient(create_app(pipes), base_url="http://127.0.0.1").get("/api/models").json()["models"]
    assert {m["name"]: m["precision"] for m in models} == {"plain": "fp32", "fast": "bf16"}


def test_precision_benchmark_table(guided: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks import inference_precision

    assert inference_precision.main(["--model", str(guided), "--repeats", "2", "--warmup", "0", "--count", "2",
                                     "--no-write"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    assert [r.split("|")[1].strip().split(" (")[0] for r in rows] == [
        "sketch encoder", "guide decoder", "part guide", "generator", "**whole update**"]
    assert all(r.split("|")[6].strip().endswith("×") for r in rows)
    assert "of 2 sketches" in out and "picks **" in out


def test_asking_for_bf16_on_a_cpu_without_it_warns(monkeypatch: pytest.MonkeyPatch, guided: Path) -> None:
    from sketch2anime import inference

    pipe = Sketch2AnimePipeline.from_pretrained(guided, device="cpu")
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no bf16 instructions"):
        pipe.set_precision("bf16")
    assert pipe.precision == "bf16"  # a warning, not a refusal: it still works, only slower
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.set_precision("bf16")
