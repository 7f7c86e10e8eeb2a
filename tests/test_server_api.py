"""The panel's HTTP API through FastAPI's TestClient: results, limits, errors, concurrency."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sketch2anime.data.image_io import load_rgba, load_sketch
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.server import api as api_module
from sketch2anime.server.app import ServeConfig, _model_names, create_app, run_server
from sketch2anime.testing import tiny_pipeline
from sketch2anime.testing.images import hint_png, sketch_png


def build_tiny_pipeline(folder: Path, kind: str = "sketch2anime", size: int = 64, latent: int = 16) -> Path:
    """An untrained pipeline folder in the format ``sketch2anime train`` exports (no training run)."""
    return tiny_pipeline(folder, kind, image_size=size, latent_dim=latent)


class FakePipeline:
    """A stand-in with the pipeline's interface that is NOT thread-safe on purpose.

    Inputs are parked on ``self`` during a short sleep, so two unserialised calls swap inputs;
    the output (the sketch's size) depends on sketch, hint, projection and seed.
    """

    def __init__(self, image_size: int = 64) -> None:
        self.image_size = image_size
        self.hint_size = image_size // 4
        self.pipeline_type = "fake"
        self.uses_projection = True

    def __call__(self, sketch, hint=None, projection=0.5, seed=None, return_projected=False, output_size="input",
                 max_side=None, denoise=True):
        sketch_img = load_sketch(sketch)
        hint_img = None if hint is None else load_rgba(hint).resize(sketch_img.size, Image.Resampling.NEAREST)
        self._inputs = (sketch_img, hint_img, projection, seed)
        time.sleep(0.005)
        sketch_img, hint_img, projection, seed = self._inputs
        tint = np.random.default_rng(seed).integers(0, 256, 3)
        gray = np.asarray(sketch_img, dtype=np.float32)[..., None] / 255.0
        out = gray * tint[None, None, :] * (1.0 - 0.5 * projection)
        if hint_img is not None:
            rgba = np.asarray(hint_img)
            mask = rgba[..., 3] > 127
            out[mask] = rgba[..., :3][mask]
        image = Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")
        if output_size == "model":
            image, sketch_img = image.resize((self.image_size,) * 2), sketch_img.resize((self.image_size,) * 2)
        return (image, sketch_img) if return_projected else image

    def variations(self, sketch, hint=None, projection=0.5, count=4, seed=0, output_size="input", max_side=None,
                   denoise=True):
        return [self(sketch, hint, projection, seed + i, output_size=output_size) for i in range(count)]


def decode_data_url(url: str) -> Image.Image:
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sketch2AnimePipeline]:
    root = tmp_path_factory.mktemp("models")
    return {
        "tiny": Sketch2AnimePipeline.from_pretrained(build_tiny_pipeline(root / "tiny"), device="cpu"),
        "plain": Sketch2AnimePipeline.from_pretrained(build_tiny_pipeline(root / "plain", "simple_gan"), device="cpu"),
    }


@pytest.fixture(scope="module")
def client(tiny: dict[str, Sketch2AnimePipeline]) -> TestClient:
    return TestClient(create_app(tiny), base_url="http://127.0.0.1")


def files(sketch: bytes | None = None, hint: bytes | None = None) -> dict:
    out = {"sketch": ("sketch.png", sketch if sketch is not None else sketch_png(128), "image/png")}
    if hint is not None:
        out["hint"] = ("hint.png", hint, "image/png")
    return out


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# ---------------------------------------------------------------------------------------------
# happy paths (a real, untrained tiny model)

def test_health_and_models(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"status": "ok", "models": ["tiny", "plain"]}
    body = client.get("/api/models").json()
    assert body["default"] == "tiny"
    assert body["upscalers"] == []
    tiny, plain = body["models"]
    assert tiny == {"name": "tiny", "image_size": 64, "hint_size": 16, "pipeline_type": "sketch2anime",
                    "projection": True, "precision": "fp32"}
    assert plain == {"name": "plain", "image_size": 64, "hint_size": 16, "pipeline_type": "simple_gan",
                     "projection": False, "precision": "fp32"}


def test_generate_json_and_png(client: TestClient) -> None:
    res = client.post("/api/generate", files=files(sketch_png(512)), data={"projection": "0.3", "seed": "5"})
    assert res.status_code == 200, res.text
    body = res.json()
    image = decode_data_url(body["image"])
    assert image.size == (512, 512) and image.mode == "RGB"  # the pipeline answers at the sketch's size
    projected = decode_data_url(body["projected_sketch"])
    assert projected.size == (512, 512) and projected.mode == "L"
    assert body["model"] == "tiny" and body["seed"] == 5 and body["projection"] == 0.3
    assert body["width"] == body["height"] == 512 and body["elapsed_ms"] > 0

    png = client.post("/api/generate?format=png", files=files(sketch_png(512)), data={"projection": "0.3", "seed": "5"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert np.array_equal(png_array(png.content), np.asarray(image))

    plain = client.post("/api/generate", files=files(sketch_png(96)), data={"model": "plain"}).json()
    assert plain["model"] == "plain" and plain["projected_sketch"] is None  # no autoencoder, no shadow
    assert decode_data_url(plain["image"]).size == (96, 96)


def test_generate_and_variations_flatten_on_request(client: TestClient, tiny: dict) -> None:
    """``flatten`` gives the pipeline's picture flattened by the sketch's regions (flatten.py), for the
    live update and the candidates alike; out-of-range values are a 422, not a 500."""
    from sketch2anime.flatten import flatten_picture

    data = {"projection": "0.3", "seed": "5", "output_size": "model"}
    plain = decode_data_url(client.post("/api/generate", files=files(sketch_png(512)), data=data).json()["image"])
    body = client.post("/api/generate", files=files(sketch_png(512)), data={**data, "flatten": "1"}).json()
    flat = decode_data_url(body["image"])
    assert body["flatten"] == 1.0
    expected = flatten_picture(tiny["tiny"](sketch_png(512), projection=0.3, seed=5, output_size="model"),
                               sketch_png(512), 1.0)
    assert np.array_equal(np.asarray(flat), np.asarray(expected))
    assert not np.array_equal(np.asarray(flat), np.asarray(plain))
    variations = client.post("/api/variations", files=files(sketch_png(512)),
                             data={"count": "2", "flatten": "1", **data}).json()["images"]
    assert np.array_equal(np.asarray(decode_data_url(variations[0])), np.asarray(flat))
    for bad in ("2", "-0.1", "flat"):
        assert client.post("/api/generate", files=files(), data={"flatten": bad}).status_code == 422


def test_generate_and_variations_skip_the_clean_up_on_request(tmp_path: Path) -> None:
    """``denoise`` false gives the generator's raw picture, true (the default) the folder's clean-up,
    for the live update and the candidates alike; a value that is not a boolean is a 422."""
    from sketch2anime.models.denoise import DenoiseConfig

    folder = build_tiny_pipeline(tmp_path / "dn")
    description = json.loads((folder / "pipeline.json").read_text())
    setting = DenoiseConfig(5, 40.0, 2.0)
    (folder / "pipeline.json").write_text(json.dumps({**description, "denoise": setting.to_dict()}))
    pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    assert pipe.description.denoise == setting
    client = TestClient(create_app({"dn": pipe}), base_url="http://127.0.0.1")
    data = {"projection": "0.3", "seed": "5", "output_size": "model"}
    pictures = {}
    for flag in ("true", "false"):
        body = client.post("/api/generate", files=files(sketch_png(256)), data={**data, "denoise": flag}).json()
        assert body["denoise"] is (flag == "true")
        pictures[flag] = np.asarray(decode_data_url(body["image"]))
        expected = pipe(sketch_png(256), projection=0.3, seed=5, output_size="model", denoise=flag == "true")
        assert np.array_equal(pictures[flag], np.asarray(expected))
        candidates = client.post("/api/variations", files=files(sketch_png(256)),
                                 data={"count": "2", "denoise": flag, **data}).json()["images"]
        assert np.array_equal(np.asarray(decode_data_url(candidates[0])), pictures[flag])
    assert not np.array_equal(pictures["true"], pictures["false"])
    default = client.post("/api/generate", files=files(sketch_png(256)), data=data).json()
    assert np.array_equal(np.asarray(decode_data_url(default["image"])), pictures["true"])
    for bad in ("maybe", "2"):
        assert client.post("/api/generate", files=files(), data={"denoise": bad}).status_code == 422


def test_output_size_model_sends_the_model_resolution(client: TestClient, tiny: dict) -> None:
    # What the panel asks for: the same picture, at the model's 64 px, as the upscaled 512 px one.
    data = {"projection": "0.3", "seed": "5", "output_size": "model"}
    body = client.post("/api/generate", files=files(sketch_png(512)), data=data).json()
    small, projected = decode_data_url(body["image"]), decode_data_url(body["projected_sketch"])
    assert small.size == projected.size == (64, 64) and body["width"] == 64
    large = client.post("/api/generate?format=png", files=files(sketch_png(512)),
                        data={"projection": "0.3", "seed": "5"}).content
    direct = tiny["tiny"](sketch_png(512), projection=0.3, seed=5, output_size="model")
    assert np.array_equal(np.asarray(small), np.asarray(direct))
    shrunk = Image.open(io.BytesIO(large)).resize((64, 64), Image.Resampling.BOX)
    assert np.abs(np.asarray(shrunk, dtype=int) - np.asarray(small, dtype=int)).mean() < 6
    variations = client.post("/api/variations", files=files(sketch_png(512)), data={"count": "2", **data}).json()
    assert all(decode_data_url(u).size == (64, 64) for u in variations["images"])
    for bad in ("native", "512", "MODEL"):
        res = client.post("/api/generate", files=files(), data={"output_size": bad})
        assert res.status_code == 422, (bad, res.status_code)


def test_seed_projection_and_hint_reach_the_pipeline(client: TestClient) -> None:
    def run(**data):
        hint = data.pop("hint", None)
        res = client.post("/api/generate?format=png", files=files(hint=hint), data=data)
        assert res.status_code == 200, res.text
        return png_array(res.content).astype(int)

    a = run(seed="1", projection="0.0")
    assert np.array_equal(a, run(seed="1", projection="0.0"))
    assert np.abs(a - run(seed="1", projection="1.0")).mean() > 0.5
    green = run(seed="1", projection="0.0", hint=hint_png((0, 200, 0), size=128))
    red = run(seed="1", projection="0.0", hint=hint_png((200, 0, 0), size=128))
    assert np.abs(a - green).mean() > 0.5 and np.abs(green - red).mean() > 0.5
    # An empty (fully transparent) hint layer means "no hints".
    assert np.array_equal(a, run(seed="1", projection="0.0", hint=hint_png((0, 0, 0), size=128, empty=True)))


def test_variations_count(client: TestClient) -> None:
    res = client.post("/api/variations", files=files(), data={"count": "3", "seed": "7", "projection": "0.5"})
    assert res.status_code == 200, res.text
    images = [np.asarray(decode_data_url(u)) for u in res.json()["images"]]
    assert len(images) == 3 and all(i.shape == (128, 128, 3) for i in images)
    assert not np.array_equal(images[0], images[1])
    single = client.post("/api/generate?format=png", files=files(), data={"projection": "0.5"})
    assert np.array_equal(images[0], png_array(single.content))  # the first candidate is the plain result
    for count in ("0", "9", "two"):
        assert client.post("/api/variations", files=files(), data={"count": count}).status_code == 422


def test_export_zip(client: TestClient) -> None:
    result = client.post("/api/generate?format=png", files=files()).content
    res = client.post("/api/export", files={
        "sketch": ("s.png", sketch_png(), "image/png"),
        "hint": ("h.png", hint_png((255, 0, 0)), "image/png"),
        "result": ("r.png", result, "image/png"),
    }, data={"settings": json.dumps({"seed": 3, "projection": 0.5})})
    assert res.status_code == 200 and res.headers["content-type"] == "application/zip"
    assert "attachment" in res.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(res.content))
    assert sorted(archive.namelist()) == ["hint.png", "result.png", "settings.json", "sketch.png"]
    assert archive.read("result.png") == result
    assert Image.open(io.BytesIO(archive.read("hint.png"))).mode == "RGBA"
    assert json.loads(archive.read("settings.json")) == {"projection": 0.5, "seed": 3}
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(jpeg, format="JPEG")
    converted = client.post("/api/export", files={"sketch": ("s.jpg", jpeg.getvalue(), "image/jpeg")})
    assert zipfile.ZipFile(io.BytesIO(converted.content)).read("sketch.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.post("/api/export", files=files(), data={"settings": "[1, 2"}).status_code == 400
    assert client.post("/api/export", files=files(b"garbage!")).status_code == 415
    truncated = sketch_png()[:-200]  # the header reads fine, the pixels do not
    res = client.post("/api/export", files={"sketch": ("s.png", truncated, "image/png")})
    assert res.status_code == 400 and "corrupt" in res.json()["detail"]


def test_upscale_only_when_installed(tiny: dict) -> None:
    plain = TestClient(create_app(tiny), base_url="http://127.0.0.1")
    assert plain.post("/api/upscale", files={"image": ("r.png", sketch_png(64), "image/png")}).status_code == 404
    double = TestClient(create_app(tiny, upscalers={"x2": lambda im: im.resize((im.width * 2, im.height * 2))}), base_url="http://127.0.0.1")
    assert double.get("/api/models").json()["upscalers"] == ["x2"]
    res = double.post("/api/upscale", files={"image": ("r.png", sketch_png(64), "image/png")})
    assert res.status_code == 200 and Image.open(io.BytesIO(res.content)).size == (128, 128)


def test_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css"), ("favicon.svg", "svg")):
        res = client.get(f"/static/{name}")
        assert res.status_code == 200 and kind in res.headers["content-type"]
        assert f"/static/{name}" in page.text
    assert '"/static/drawing.js"' in client.get("/static/app.js").text  # the module app.js imports
    assert "javascript" in client.get("/static/drawing.js").headers["content-type"]
    # Offline: the page references nothing outside this server.
    for name in ("/", "/static/app.js", "/static/drawing.js", "/static/style.css"):
        text = client.get(name).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


@pytest.mark.parametrize("path", [
    "/static/../app.py", "/static/..%2fapi.py", "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/..%5c..%5capp.py", "/static/%2fetc%2fpasswd", "/static/__init__.py", "/static/",
    "/static/.%2e/app.py", "/app.py", "/server/app.py", "/static/nope.js", "/etc/passwd",
])
def test_no_file_outside_the_static_allow_list(client: TestClient, path: str) -> None:
    res = client.get(path)
    assert res.status_code == 404, (path, res.status_code)
    assert b"import" not in res.content


# ---------------------------------------------------------------------------------------------
# bad input never gives a 500

def test_bad_uploads(client: TestClient) -> None:
    assert client.post("/api/generate", data={"projection": "0.5"}).status_code == 422  # no sketch
    garbage = client.post("/api/generate", files=files(b"not an image at all" * 10))
    assert garbage.status_code == 415 and "not an image" in garbage.json()["detail"]
    assert client.post("/api/generate", files=files(b"")).status_code == 400
    text_type = client.post("/api/generate", files={"sketch": ("s.txt", sketch_png(), "text/plain")})
    assert text_type.status_code == 415
    truncated = client.post("/api/generate", files=files(sketch_png()[:200]))
    assert 400 <= truncated.status_code < 500
    bad_hint = client.post("/api/generate", files=files(hint=b"\x89PNG garbage"))
    assert bad_hint.status_code == 415 and "hint" in bad_hint.json()["detail"]
    thin = io.BytesIO()
    Image.new("RGBA", (3000, 20)).save(thin, format="PNG")
    res = client.post("/api/generate", files=files(hint=thin.getvalue()))
    assert res.status_code == 400 and "hint layer is 3000x20" in res.json()["detail"]


def test_huge_uploads_get_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    big = b"\x89PNG\r\n\x1a\n" + bytes(api_module.MAX_UPLOAD_BYTES + 10)
    res = client.post("/api/generate", files=files(big))
    assert res.status_code == 413 and "limit" in res.json()["detail"]
    # A body far over the total limit is refused from its declared length alone.
    huge = bytes(40 * 1024 * 1024)
    assert client.post("/api/generate", content=huge, headers={"content-type": "application/octet-stream"}).status_code == 413

    # Chunked bodies (no content-length) are counted while they stream in.
    def chunks():
        yield (b'--x\r\nContent-Disposition: form-data; name="sketch"; filename="s.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(40):
            yield bytes(1024 * 1024)
    res = client.post("/api/generate", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert res.status_code == 413


def test_decompression_bomb_dimensions_get_413(client: TestClient) -> None:
    # A 60-byte PNG whose header claims 8000x8000 pixels: refused from the header, never decoded.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 8000, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    res = client.post("/api/generate", files=files(bomb))
    assert res.status_code == 413 and "pixel limit" in res.json()["detail"]


@pytest.mark.parametrize("field,value", [
    ("projection", "2"), ("projection", "-0.1"), ("projection", "nan"), ("projection", "abc"),
    ("seed", "-1"), ("seed", "1.5"), ("seed", str(2**40)),
])
def test_bad_numbers_get_422(client: TestClient, field: str, value: str) -> None:
    res = client.post("/api/generate", files=files(), data={field: value})
    assert res.status_code == 422, res.text


def test_unknown_model_404(client: TestClient) -> None:
    res = client.post("/api/generate", files=files(), data={"model": "../../etc"})
    assert res.status_code == 404 and "unknown model" in res.json()["detail"]


def test_pipeline_value_errors_become_400_and_bugs_500(monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(create_app({"fake": FakePipeline()}), raise_server_exceptions=False, base_url="http://127.0.0.1")

    def refuse(*args, **kwargs):
        raise ValueError("the sketch is blank")
    monkeypatch.setattr(FakePipeline, "__call__", refuse)
    res = client.post("/api/generate", files=files())
    assert res.status_code == 400 and res.json()["detail"] == "the sketch is blank"

    def crash(*args, **kwargs):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(FakePipeline, "__call__", crash)
    res = client.post("/api/generate", files=files())
    assert res.status_code == 500 and "secret" not in res.text


# ---------------------------------------------------------------------------------------------
# several users at once

def concurrent_jobs_match_single_requests(client: TestClient, rounds: int) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    jobs = [(seed, colour, offset) for seed, (colour, offset) in enumerate(zip(colours, (0, 15, 30, 45)))]

    def request(job):
        seed, colour, offset = job
        res = client.post("/api/generate?format=png",
                          files=files(sketch_png(128, offset=offset), hint_png(colour, size=128)),
                          data={"seed": str(seed), "projection": str(0.2 * seed)})
        assert res.status_code == 200, res.text
        return png_array(res.content)

    expected = [request(job) for job in jobs]
    assert len({e.tobytes() for e in expected}) == len(jobs)  # the inputs really give distinct results
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for _ in range(rounds):
            for want, have in zip(expected, pool.map(request, jobs)):
                assert np.array_equal(want, have)


def test_concurrent_requests_get_their_own_results(client: TestClient) -> None:
    concurrent_jobs_match_single_requests(client, rounds=1)


def test_model_calls_are_serialised() -> None:
    # The fake swaps inputs between unserialised calls, so this fails without the server's lock.
    concurrent_jobs_match_single_requests(TestClient(create_app({"fake": FakePipeline()}), base_url="http://127.0.0.1"), rounds=3)


# ---------------------------------------------------------------------------------------------
# `sketch2anime serve` start-up

def test_model_names_are_unique() -> None:
    assert _model_names(["default", "runs/s2a64/model", "b/s2a64/model", "x/", "model"]) == \
        ["default", "s2a64", "s2a64-2", "x", "model"]


def test_serve_config_refuses_bad_settings() -> None:
    for bad, message in ((dict(port=0), "--port"), (dict(port=70000), "--port"), (dict(threads=0), "--threads"),
                         (dict(models=()), "--model"), (dict(host=""), "--host")):
        with pytest.raises(ValueError, match=message):
            ServeConfig(**bad)
    assert ServeConfig().models == ("default",)


def test_serve_command_reports_bad_models_and_busy_ports(tmp_path: Path, tiny: dict) -> None:
    with pytest.raises(ValueError, match="model folder not found"):
        run_server(ServeConfig(models=(str(tmp_path / "missing"),)))
    folder = build_tiny_pipeline(tmp_path / "m")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match="--port"):
            run_server(ServeConfig(models=(str(folder),), port=port))
