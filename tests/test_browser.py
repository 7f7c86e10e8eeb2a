"""The drawing panel in headless Chromium: draw, hint, live result, undo, download.

Needs the Debian ``chromium`` package at /usr/bin/chromium and the ``playwright`` Python package
(never ``playwright install``: the system browser is used). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package (pip install playwright)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Recording:
    """Wraps a pipeline and keeps the inputs of each call: exactly what the page uploaded.

    (Chromium does not report multipart bodies with blobs to Playwright, so the payload is
    checked where it arrives.)
    """

    def __init__(self, pipeline) -> None:
        self._pipeline = pipeline
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._pipeline, name)

    def __call__(self, sketch, hint=None, **kwargs):
        self.calls.append({"sketch": sketch, "hint": hint, **kwargs})
        return self._pipeline(sketch, hint, **kwargs)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from sketch2anime.inference import Sketch2AnimePipeline
    from test_server_api import build_tiny_pipeline

    folder = build_tiny_pipeline(tmp_path_factory.mktemp("model") / "tiny")
    return Recording(Sketch2AnimePipeline.from_pretrained(folder, device="cpu"))


def _start_server(app) -> tuple:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the panel server did not start")
        time.sleep(0.05)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return server, thread, f"http://{host}:{port}"


@pytest.fixture(scope="module")
def server_url(pipeline):
    from sketch2anime.server.app import create_app

    server, thread, url = _start_server(create_app({"tiny": pipeline}))
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server_url):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    page.on("console", lambda msg: page.problems.append(msg.text) if msg.type == "error" else None)
    page.goto(server_url + "/")
    wait_idle(page, 0)
    yield page
    context.close()


LAYER_STATS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0, hash = 0;
  for (let i = 0; i < d.length; i++) { hash = (hash * 31 + d[i]) >>> 0; if (i % 4 === 3 && d[i] > 0) painted++; }
  return [painted, hash];
}"""


def generation(page) -> int:
    return int(page.get_attribute("#result", "data-generation"))


def wait_idle(page, after: int) -> int:
    """Wait until a result newer than generation ``after`` is shown and no request is running."""
    page.wait_for_function(
        "(n) => Number(document.getElementById('result').dataset.generation) > n"
        " && document.getElementById('busy').hidden", arg=after, timeout=15000)
    return generation(page)


def stroke(page, points: list[tuple[float, float]], canvas: str = "#sketch-layer") -> None:
    """Drag the mouse through ``points`` given in canvas pixels (0..512)."""
    box = page.locator(canvas).bounding_box()
    scale = box["width"] / 512
    xy = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for point in xy[1:]:
        page.mouse.move(*point, steps=6)
    page.mouse.up()


def test_draw_hint_undo_download(page, pipeline) -> None:
    start = generation(page)
    blank_result = page.evaluate(LAYER_STATS, "result")

    # Sketch strokes: the result follows each stroke end.
    stroke(page, [(140, 150), (120, 300), (256, 440), (392, 300), (372, 150)])
    stroke(page, [(200, 270), (230, 270)])
    now = wait_idle(page, start)
    assert page.evaluate(LAYER_STATS, "sketch-layer")[0] > 500
    assert page.evaluate(LAYER_STATS, "result") != blank_result

    # A green hint painted with the hint brush, colour typed as HEX.
    page.click("button[data-tool=hint]")
    page.fill("#hint-hex", "#00c040")
    page.press("#hint-hex", "Enter")
    assert page.input_value("#hint-color") == "#00c040"
    before_hint = page.evaluate(LAYER_STATS, "result")
    stroke(page, [(60, 60), (200, 60), (200, 90), (60, 90)])
    now = wait_idle(page, now)
    sent = pipeline.calls[-1]
    hint = np.asarray(Image.open(io.BytesIO(sent["hint"])))
    sketch = np.asarray(Image.open(io.BytesIO(sent["sketch"])).convert("L"))
    # The hint layer goes up at 128 px (the hint grid is coarser still), the sketch as a PGM at 4x the
    # model's 64 px: each pixel keeps the darkest ink of its 2x2 block of the canvas.
    assert hint.shape == (128, 128, 4) and sketch.shape == (256, 256)
    assert Image.open(io.BytesIO(sent["sketch"])).format == "PPM"
    on_stroke = hint[60 // 4, 130 // 4].astype(int)  # on the stroke's centre line
    assert on_stroke[3] == 255 and np.abs(on_stroke[:3] - (0, 192, 64)).max() <= 2
    assert hint[100, 100, 3] == 0  # untouched: transparent
    assert sketch[5, 5] == 255 and sketch[150, 60] < 128  # paper white, the stroke dark
    # An untrained model cannot be expected to use the hint's colour; it must change the result.
    assert page.evaluate(LAYER_STATS, "result") != before_hint
    page.screenshot(path=str(ARTIFACTS / "panel_after_hint.png"))

    # Undo (Ctrl+Z) reverts the last sketch stroke exactly; Ctrl+Shift+Z brings it back.
    page.click("button[data-tool=pen]")
    sketch_before = page.evaluate(LAYER_STATS, "sketch-layer")
    stroke(page, [(300, 200), (420, 230)])
    sketch_after = page.evaluate(LAYER_STATS, "sketch-layer")
    assert sketch_after != sketch_before
    page.keyboard.press("Control+z")
    assert page.evaluate(LAYER_STATS, "sketch-layer") == sketch_before
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate(LAYER_STATS, "sketch-layer") == sketch_after
    now = wait_idle(page, now)

    # Projection slider and variations: picking a candidate makes it the shown result.
    page.fill("#projection", "0.8")
    now = wait_idle(page, now)
    assert pipeline.calls[-1]["projection"] == pytest.approx(0.8)

    # This model is not a guided one: it cannot run at another size, so the switch is not offered.
    assert page.is_hidden("#work-scale-choice")

    # Flat colours: the server flattens the same picture by the sketch's regions; unticked, it is back.
    before_flat = page.evaluate(LAYER_STATS, "result")
    page.check("#flatten")
    now = wait_idle(page, now)
    assert page.evaluate(LAYER_STATS, "result") != before_flat
    page.uncheck("#flatten")
    now = wait_idle(page, now)
    assert page.evaluate(LAYER_STATS, "result") == before_flat
    page.click("#variations-button")
    page.wait_for_selector("#variations img:nth-child(4)", timeout=15000)
    page.click("#variations img:nth-child(3)")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('candidate 3')")

    # Downloads: the result PNG (the pipeline answers at the canvas size), and the ZIP of all layers.
    with page.expect_download() as info:
        page.click("#download-result")
    download = info.value
    assert download.suggested_filename.endswith(".png")
    data = Path(download.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(data)).size == (512, 512)
    with page.expect_download() as info:
        page.click("#download-zip")
    assert info.value.suggested_filename == "sketch2anime.zip"
    page.screenshot(path=str(ARTIFACTS / "panel_final.png"))
    assert not page.problems, page.problems


def test_upload_eyedropper_and_layer_toggles(page, tmp_path) -> None:
    # Uploaded line art lands on the sketch layer as ink on transparent paper.
    art = Image.new("RGB", (300, 200), "white")
    art.paste((0, 0, 0), (140, 20, 160, 180))  # one thick vertical bar
    art.save(tmp_path / "lines.png")
    now = generation(page)
    page.set_input_files("#upload", str(tmp_path / "lines.png"))
    now = wait_idle(page, now)
    alpha = page.evaluate("""() => { const d = document.getElementById('sketch-layer').getContext('2d')
        .getImageData(0, 0, 512, 512).data; return [d[(256 * 512 + 256) * 4 + 3], d[(256 * 512 + 20) * 4 + 3]]; }""")
    assert alpha[0] > 200 and alpha[1] == 0  # the bar is ink, the paper around it is transparent

    # The eyedropper takes the result's colour under the pointer and switches to the hint brush.
    page.click("button[data-tool=eyedropper]")
    box = page.locator("#result").bounding_box()
    page.mouse.click(box["x"] + 100 * box["width"] / 512, box["y"] + 400 * box["height"] / 512)
    shown = page.evaluate("() => Array.from(document.getElementById('result').getContext('2d')"
                          ".getImageData(100, 400, 1, 1).data.slice(0, 3))")
    assert page.input_value("#hint-hex") == "#" + "".join(f"{v:02x}" for v in shown)
    assert "active" in page.get_attribute("button[data-tool=hint]", "class")

    # Hiding hints and the shadow only changes what is shown, not what is drawn.
    page.uncheck("#show-hints")
    assert "hidden" in page.get_attribute("#hint-layer", "class")
    page.uncheck("#show-shadow")
    assert "hidden" in page.get_attribute("#shadow", "class")
    page.check("#show-shadow")
    assert "hidden" not in (page.get_attribute("#shadow", "class") or "")
    page.screenshot(path=str(ARTIFACTS / "panel_upload.png"))
    assert not page.problems, page.problems


# ---------------------------------------------------------------------------------------------
# the shipped default model: a face in a few strokes, then a hair hint that must colour the hair

FACE = [
    [(106, 230), (126, 340), (256, 430), (386, 340), (406, 230)],  # cheeks and chin
    [(81, 230), (120, 130), (256, 80), (392, 130), (431, 230)],  # top of the hair
    [(81, 235), (140, 175), (198, 250), (256, 165), (314, 250), (372, 175), (431, 235)],  # fringe
    [(152, 300), (186, 262), (220, 300), (186, 338), (152, 300)],  # eyes
    [(292, 300), (326, 262), (360, 300), (326, 338), (292, 300)],
    [(81, 235), (70, 480)], [(431, 235), (442, 480)],  # long hair
    [(226, 392), (256, 400), (286, 392)],  # mouth
]
HAIR = [(150, 150), (256, 110), (362, 150)]
HINT_RGB = (48, 96, 224)


def test_default_model_draws_a_face_that_takes_the_hair_hint(browser) -> None:
    from sketch2anime.inference import Sketch2AnimePipeline
    from sketch2anime.server.app import create_app

    server, thread, url = _start_server(create_app({"default": Sketch2AnimePipeline.from_pretrained("default")}))
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        page = context.new_page()
        page.goto(url + "/")
        now = wait_idle(page, 0)
        for points in FACE:
            stroke(page, points)
            now = wait_idle(page, now)  # a result for every stroke, from the first one on
        pixels = "(pts) => pts.map(([x, y]) => Array.from(document.getElementById('result').getContext('2d')" \
                 ".getImageData(x, y, 1, 1).data.slice(0, 3)))"
        before = np.array(page.evaluate(pixels, HAIR), dtype=float).mean(0)
        page.click("button[data-tool=hint]")
        page.fill("#hint-hex", "#%02x%02x%02x" % HINT_RGB)
        page.press("#hint-hex", "Enter")
        stroke(page, HAIR)
        now = wait_idle(page, now)
        after = np.array(page.evaluate(pixels, HAIR), dtype=float).mean(0)
        page.screenshot(path=str(ARTIFACTS / "panel_default_model.png"))
        target = np.array(HINT_RGB, dtype=float)
        # The hair under the hint moves at least halfway towards the hint colour and turns blue.
        assert np.linalg.norm(after - target) < 0.5 * np.linalg.norm(before - target), (before, after)
        assert after[2] > after[0] + 40, after
        update_ms = float(page.get_attribute("#result", "data-update-ms"))
        assert update_ms > 0  # the panel measures each update (benchmarks/panel_latency.py reports it)
    finally:
        context.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_large_line_art_runs_the_default_at_twice_its_size(browser) -> None:
    """The "Large line art (2x)" switch (guided models only) makes the server run the model at 256 px:
    the result and the exported settings say so, and unticking it brings back the 128 px picture."""
    from sketch2anime.inference import Sketch2AnimePipeline
    from sketch2anime.server.app import create_app

    server, thread, url = _start_server(create_app({"default": Sketch2AnimePipeline.from_pretrained("default")}))
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(url + "/")
        now = wait_idle(page, 0)
        for points in FACE[:2]:
            stroke(page, points)
            now = wait_idle(page, now)
        status = "() => document.getElementById('status').textContent"
        assert "128×128 px" in page.evaluate(status)
        assert " ms, fp32) · " in page.evaluate(status)  # the precision the server's model runs in
        small = page.evaluate(LAYER_STATS, "result")
        assert page.is_visible("#work-scale-choice")
        page.check("#work-scale")
        now = wait_idle(page, now)
        assert "256×256 px" in page.evaluate(status)
        assert page.evaluate(LAYER_STATS, "result") != small
        with page.expect_download() as info:
            page.click("#download-zip")
        with zipfile.ZipFile(info.value.path()) as archive:
            assert json.loads(archive.read("settings.json"))["work_scale"] == 2
        page.uncheck("#work-scale")
        now = wait_idle(page, now)
        assert "128×128 px" in page.evaluate(status)
        assert page.evaluate(LAYER_STATS, "result") == small
    finally:
        context.close()
        server.should_exit = True
        thread.join(timeout=10)
