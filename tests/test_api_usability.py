"""Issue 14's usability points: lists in the Python API, pipe.to, hints without alpha, the HTTP API's
documentation, the panel's PGM upload, CLI help texts, extras."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from sketch2anime.cli import build_parser, main
from sketch2anime.data.hints import hint_layer, rgba_to_hint
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.server.app import create_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Sketch2AnimePipeline:
    from test_server_api import build_tiny_pipeline

    return Sketch2AnimePipeline.from_pretrained(build_tiny_pipeline(tmp_path_factory.mktemp("m") / "tiny"), device="cpu")


def sketch(offset: int = 0, size: int = 256) -> Image.Image:
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).ellipse((40 + offset, 40, 200, 220), outline=0, width=4)
    return image


def arrays(images: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(image, dtype=int) for image in images]


# ---------------------------------------------------------------------------------------------
# Python API

def test_a_list_of_sketches_gives_a_list_like_single_calls(pipe, monkeypatch) -> None:
    sketches = [sketch(0), sketch(20, 300), sketch(40)]
    hints = [None, Image.new("RGBA", (64, 64), (200, 30, 30, 255)), None]
    monkeypatch.setattr(Sketch2AnimePipeline, "BATCH_SIZE", 2)  # two forward passes: 2 + 1
    batched = pipe(sketches, hint=hints, seed=3, return_projected=True)
    assert isinstance(batched, list) and len(batched) == 3
    assert batched[1][0].size == (300, 300)
    for (image, projected), one, hint in zip(batched, sketches, hints):
        single, single_projected = pipe(one, hint=hint, seed=3, return_projected=True)
        assert np.abs(np.asarray(image, int) - np.asarray(single, int)).max() <= 2
        assert projected.size == single_projected.size
    # one hint for all; tuples too
    assert len(pipe((sketch(0), sketch(10)), hint=hints[1])) == 2


def test_list_errors_name_the_item(pipe) -> None:
    with pytest.raises(ValueError, match="sketch 1 of the list: no such image file"):
        pipe([sketch(), "missing.png"])
    with pytest.raises(ValueError, match="2 sketches but 1 hints"):
        pipe([sketch(), sketch()], hint=[None])
    with pytest.raises(ValueError, match="empty list"):
        pipe([])


def test_to_moves_the_pipeline_and_returns_it(pipe) -> None:
    assert pipe.to("cpu") is pipe and pipe.device.type == "cpu"
    assert next(pipe.generator.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="device"):
        pipe.to("tpu")


def test_hint_without_alpha_white_means_no_hint(pipe) -> None:
    rgba = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle((10, 10, 60, 40), fill=(40, 90, 220, 255))
    on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    assert np.array_equal(np.asarray(hint_layer(on_white))[..., 3], np.asarray(rgba)[..., 3])
    assert np.array_equal(rgba_to_hint(on_white, 64, 4), rgba_to_hint(rgba, 64, 4))
    # an all-white RGB layer hints nothing, exactly like no hint at all
    blank = Image.new("RGB", (100, 100), "white")
    assert np.array_equal(*arrays([pipe(sketch(), hint=blank, seed=0), pipe(sketch(), seed=0)]))
    # a layer with alpha keeps its meaning: an opaque white pixel there IS a white hint
    white_hint = rgba.copy()
    ImageDraw.Draw(white_hint).rectangle((80, 80, 120, 120), fill=(255, 255, 255, 255))
    assert rgba_to_hint(white_hint, 64, 4)[3].sum() > rgba_to_hint(rgba, 64, 4)[3].sum()


# ---------------------------------------------------------------------------------------------
# HTTP API

@pytest.fixture(scope="module")
def client(pipe) -> TestClient:
    return TestClient(create_app({"tiny": pipe}), base_url="http://127.0.0.1")  # the server answers loopback Hosts only


def test_openapi_and_docs_are_served_without_outside_scripts(client) -> None:
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    fields = paths["/api/generate"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "/api/generate" in paths and "/api/variations" in paths and "/" not in paths
    for url in ("/docs", "/redoc"):
        page = client.get(url)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Content-Security-Policy" in page.headers and "<script" not in page.text
        assert "http://" not in page.text.replace("http://127.0.0.1", "") and "https://" not in page.text
        for text in ("POST /api/generate", "projection", "≥ 0, ≤ 1<", "≤ 4294967295<", "batch endpoint", "8 MB", "output_size"):
            assert text in page.text, text
    assert fields  # the form is described (resolved by the page through $ref)


def test_the_panels_pgm_upload_equals_the_png(client) -> None:
    image = sketch(size=512)
    png, pgm = io.BytesIO(), io.BytesIO()
    image.save(png, format="PNG")
    image.save(pgm, format="PPM")  # PIL writes L images as binary PGM (P5), like the panel
    assert pgm.getvalue().startswith(b"P5")
    answers = []
    for name, data, kind in (("s.png", png.getvalue(), "image/png"), ("s.pgm", pgm.getvalue(), "image/x-portable-graymap")):
        response = client.post("/api/generate", files={"sketch": (name, data, kind)},
                               data={"seed": "0", "output_size": "model"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["server_ms"] >= body["elapsed_ms"] > 0
        answers.append(body["image"])
    assert answers[0] == answers[1]


# ---------------------------------------------------------------------------------------------
# CLI and packaging

def test_help_texts(capsys) -> None:
    parser = build_parser()
    top = parser.format_help()
    assert "``" not in top and "SKETCH2ANIME_HOME" in top
    sub = {name: action for action in parser._subparsers._group_actions for name, action in action.choices.items()}
    generate = sub["generate"].format_help()
    for flag in ("--seed", "--model", "--device", "--out"):
        line = next(l for l in generate.splitlines() if l.strip().startswith(flag) or f", {flag}" in l)
        assert len(line.split(maxsplit=2)) > 2 or flag == "--out", line  # text after the flag
    assert "random seed" in generate and "white" in generate and "cuda" in generate
    assert "SKETCH2ANIME_HOME" in sub["weights"].format_help()


def test_train_dry_run_prints_the_resolved_output_dir(capsys) -> None:
    assert main(["train", str(ROOT / "configs/ae64.toml"), "--dry-run"]) == 0
    assert 'output_dir = "runs/ae64"' in capsys.readouterr().out


def test_extras_match_the_code() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("tensorboard") for req in extras["tensorboard"])
    # Accelerate is not used anywhere, so no extra may promise it
    assert "accelerate" not in extras
    assert not [p for p in (ROOT / "src").rglob("*.py") if "import accelerate" in p.read_text()
                or "from accelerate" in p.read_text()]


def test_a_small_hint_layer_is_used_at_its_own_size(pipe) -> None:
    # The panel sends 128 px hints for its 512 px canvas; stretching them first must change nothing.
    hint = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    ImageDraw.Draw(hint).line([(10, 20), (100, 30)], fill=(200, 60, 30, 255), width=9)
    small = pipe.prepare(sketch(size=512), hint)[1]
    stretched = pipe.prepare(sketch(size=512), hint.resize((512, 512), Image.Resampling.NEAREST))[1]
    assert torch.allclose(small, stretched, atol=1e-5) and small[0, 3].sum() > 0
