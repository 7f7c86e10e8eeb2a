"""The panel's HTTP API: model list, generate, variations, ZIP export.

Every request carries its whole input (sketch PNG, optional RGBA hint PNG, settings), so requests
from several users never share state. Pipelines are shared, so each one sits behind its own lock;
route functions are plain ``def`` and FastAPI runs them in its threadpool, which keeps the event
loop free while a model works.

Anything a user can send maps to a 4xx with a readable ``detail``: 413 for oversized uploads, 415
for files that are not images, 400 for images the pipeline refuses, 404 for an unknown model,
422 for out-of-range numbers.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response
from PIL import Image

from ..data.image_io import IMAGE_FORMATS
from ..flatten import flatten_picture

log = logging.getLogger("sketch2anime.server")

OUTPUT_SIZE_HELP = ("input: the result at the sketch's size; model: at the model's own resolution "
                    "(what the panel asks for and scales up itself: the upscaled PNG is most of the latency)")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # per file; a 512x512 canvas PNG is well under 1 MB
# Work bounds per request: every upload decodes to at most 4096x4096 (the package's decoder takes
# 40 MP; a panel canvas is 512 px), the model works on its own square, and results are at most
# MAX_OUTPUT_SIDE on the long side (all variations together at most MAX_VARIATION_PIXELS).
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_ASPECT = 50.0
MAX_SEED = 2**32 - 1
MAX_VARIATIONS = 8
MAX_OUTPUT_SIDE = 2048
MAX_VARIATION_PIXELS = 4 * 1024 * 1024
MAX_SETTINGS_DEPTH = 32
# Field texts shared by the routes; they are what /docs and /openapi.json show.
SKETCH_HELP = ("the sketch: dark lines on white (or on transparent) paper, any size and aspect ratio up to "
               f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB; PNG, JPEG, WebP, BMP, GIF, TIFF or PGM (the panel sends "
               "an uncompressed PGM: no encoding cost)")
HINT_HELP = ("optional colour hints: an image whose alpha marks hinted pixels (RGBA PNG, any size: stretched "
             "to the sketch's frame). Without any transparent pixel, white means no hint")
PROJECTION_HELP = "manifold projection strength: 0 follows the lines exactly, 1 snaps to the nearest training sketches"
SEED_HELP = f"0 to {MAX_SEED}; the same inputs and seed give the same picture (the panel keeps it until asked for another)"
MODEL_HELP = "model name from GET /api/models (default: the first one)"
FLATTEN_HELP = ("flat colours, 0 to 1: each region your lines close (face, fringe, clothes) gets one colour; eyes, "
                "small parts and regions open to the edge keep the model's (0 = the model's picture as it is)")
WORK_SCALE_HELP = ("run the model at this multiple of its size (2: 256 px for the default): for large, detailed line "
                   "art such as full-length characters; about 4x the time (guided models only)")
DENOISE_HELP = ("the model folder's picture clean-up (pipeline.json's denoise and flip_average entries: an "
                "edge-preserving filter that smooths speckle, and the mean with the mirrored drawing's picture); "
                "false gives the generator's raw picture")
# Uploads arrive as these; browsers send "application/octet-stream" for some blobs.
ACCEPTED_TYPES = ("image/", "application/octet-stream")


@dataclass
class ModelSlot:
    """One loaded pipeline plus the lock that serialises calls into it."""

    name: str
    pipeline: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        pipe = self.pipeline
        pipeline_type = str(getattr(pipe, "pipeline_type", "unknown"))
        projection = getattr(pipe, "uses_projection", None)
        if projection is None:
            projection = pipeline_type == "sketch2anime"
        return {
            "name": self.name,
            "image_size": int(getattr(pipe, "image_size", 0)),
            "hint_size": int(getattr(pipe, "hint_size", 0)),
            "pipeline_type": pipeline_type,
            "projection": bool(projection),
            "precision": str(getattr(pipe, "precision", "fp32")),  # what its networks run in
        }


# ---------------------------------------------------------------------------------------------
# input checks

def _read_upload(upload: UploadFile, what: str) -> bytes:
    """Bytes of one uploaded file after size and content-type checks (413 / 415 / 400)."""
    content_type = (upload.content_type or "").lower()
    if content_type and not content_type.startswith(ACCEPTED_TYPES):
        raise HTTPException(415, f"{what} must be an image file (PNG), got content type {content_type!r}")
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"{what} is larger than the {MAX_UPLOAD_BYTES // (1024 * 1024)} MB upload limit")
    if not data:
        raise HTTPException(400, f"{what} is empty (0 bytes)")
    return data


def _check_image_header(data: bytes, what: str) -> str:
    """Read only the header: garbage -> 415, absurd dimensions -> 413. Returns the format name."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            width, height = image.size
            fmt = image.format or "unknown"
    except Image.DecompressionBombError:
        raise HTTPException(413, f"{what} is too large to decode safely") from None
    except Exception:  # PIL's plugins raise TypeError, IndexError, struct.error... on crafted headers
        raise HTTPException(415, f"{what} is not an image in a format sketch2anime can read "
                                 f"({', '.join(IMAGE_FORMATS)})") from None
    if width < 1 or height < 1:
        raise HTTPException(400, f"{what} has no pixels ({width}x{height})")
    if width * height > MAX_IMAGE_PIXELS:
        raise HTTPException(413, f"{what} is {width}x{height}, over the {MAX_IMAGE_PIXELS} pixel limit")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise HTTPException(400, f"{what} is {width}x{height}; aspect ratios beyond {MAX_ASPECT:g}:1 are not drawings")
    return fmt


def _image_upload(upload: UploadFile | None, what: str) -> bytes | None:
    if upload is None:
        return None
    data = _read_upload(upload, what)
    _check_image_header(data, what)
    return data


def variation_side(count: int) -> int:
    """Longest side of each variation so that ``count`` of them stay within MAX_VARIATION_PIXELS."""
    return max(64, min(MAX_OUTPUT_SIDE, int((MAX_VARIATION_PIXELS / max(1, count)) ** 0.5)))


def _parse_settings(text: str) -> dict[str, Any]:
    """The export's settings field: a JSON object nested at most MAX_SETTINGS_DEPTH levels (400)."""
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # RecursionError: ~1000 nested brackets
        raise HTTPException(400, "settings must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise HTTPException(400, "settings must be a JSON object")
    stack: list[tuple[Any, int]] = [(parsed, 1)]
    while stack:  # iterative: the depth check itself must not recurse
        value, depth = stack.pop()
        if depth > MAX_SETTINGS_DEPTH:
            raise HTTPException(400, f"settings nest deeper than {MAX_SETTINGS_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return parsed


def _status_for(exc: ValueError) -> int:
    # ImageInputError carries a machine-friendly reason; other ValueErrors are plain bad input.
    reason = getattr(exc, "reason", None)
    if reason in ("not_an_image", "bad_type"):
        return 415
    if reason == "too_large":
        return 413
    return 400


# ---------------------------------------------------------------------------------------------
# output encoding

def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def data_url(image: Image.Image | None) -> str | None:
    if image is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def _unpack(result: Any) -> tuple[Image.Image, Image.Image | None]:
    if isinstance(result, tuple):
        image, projected = result[0], (result[1] if len(result) > 1 else None)
        return image, projected
    return result, None


# ---------------------------------------------------------------------------------------------
# routes

def build_router(slots: dict[str, ModelSlot], upscalers: dict[str, Any] | None = None) -> APIRouter:
    """All ``/api/*`` routes over the loaded models (the first one is the default).

    ``upscalers`` maps a name to a callable ``PIL RGB image -> larger PIL RGB image``; the page
    offers a large export only when there is one.
    """
    if not slots:
        raise ValueError("the panel needs at least one model")
    default_name = next(iter(slots))
    upscale_slots = {name: ModelSlot(name, fn) for name, fn in (upscalers or {}).items()}
    upscaler_names = list(upscale_slots)
    router = APIRouter(prefix="/api")

    def pick(model: str | None) -> ModelSlot:
        name = model or default_name
        if name not in slots:
            raise HTTPException(404, f"unknown model {name!r}; installed: {', '.join(slots)}")
        return slots[name]

    def run(slot: ModelSlot, call: str, *args: Any, work_scale: int = 1, **kwargs: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        try:
            with slot.lock:
                pipeline = slot.pipeline
                if work_scale != 1:  # a view sharing the weights; refused (400) for non-guided models
                    if not hasattr(pipeline, "at_scale"):
                        raise ValueError(f"the model {slot.name!r} cannot run at another size")
                    pipeline = pipeline.at_scale(work_scale)
                method = pipeline if call == "__call__" else getattr(pipeline, call)
                result = method(*args, **kwargs)
        except ValueError as exc:
            raise HTTPException(_status_for(exc), str(exc)) from None
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        log.debug("%s on %s took %.1f ms", call, slot.name, elapsed_ms)
        return result, round(elapsed_ms, 1)

    @router.get("/health", summary="Liveness check and the loaded model names")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(slots)}

    @router.get("/models", summary="Loaded models, their resolutions, upscalers and upload limits")
    def models() -> dict[str, Any]:
        """``image_size`` is the model's resolution (the panel sizes its uploads from it), ``hint_size``
        the side of its hint grid, ``projection`` whether the projection slider applies."""
        return {
            "models": [slot.describe() for slot in slots.values()],
            "default": default_name,
            "upscalers": upscaler_names,
            "limits": {"max_upload_bytes": MAX_UPLOAD_BYTES, "max_variations": MAX_VARIATIONS,
                       "max_image_pixels": MAX_IMAGE_PIXELS, "max_output_side": MAX_OUTPUT_SIDE},
        }

    @router.post("/generate", response_model=None, summary="Colour one sketch (multipart form)")
    def generate(
        sketch: UploadFile = File(..., description=SKETCH_HELP),
        hint: UploadFile | None = File(None, description=HINT_HELP),
        projection: float = Form(0.5, ge=0.0, le=1.0, description=PROJECTION_HELP),
        seed: int | None = Form(None, ge=0, le=MAX_SEED, description=SEED_HELP),
        model: str | None = Form(None, description=MODEL_HELP),
        output_size: Literal["input", "model"] = Form("input", description=OUTPUT_SIZE_HELP),
        flatten: float = Form(0.0, ge=0.0, le=1.0, description=FLATTEN_HELP),
        work_scale: int = Form(1, ge=1, le=2, description=WORK_SCALE_HELP),
        denoise: bool = Form(True, description=DENOISE_HELP),
        format: Literal["json", "png"] = Query("json", description="json: data URLs and timings; png: the picture only"),
    ) -> Response | dict[str, Any]:
        """JSON reply: ``image`` and ``projected_sketch`` (PNG data URLs; the projected sketch is null
        for models without projection), ``width``, ``height``, ``model``, ``projection``, ``seed``,
        ``elapsed_ms`` (the model call: decoding, preparing, generating) and ``server_ms`` (the whole
        route, PNG encoding included). ``?format=png`` answers the picture as ``image/png`` with
        ``X-Model`` and ``X-Elapsed-Ms`` headers.

        There is no batch endpoint on purpose: this server drives an interactive panel, each model
        serves one call at a time behind a lock, and a batch would hold that lock (and every live
        update waiting on it) for the whole batch. Batching pays off for offline work: the Python API
        ``pipe([sketch1, sketch2, ...])`` batches (8 sketches of the 64 px default model: about 1.5-2x
        faster than 8 calls on a 2-core CPU). Over HTTP, send one request per sketch.
        """
        started = time.perf_counter()
        slot = pick(model)
        sketch_data = _image_upload(sketch, "the sketch")
        hint_data = _image_upload(hint, "the hint layer")
        result, elapsed_ms = run(slot, "__call__", sketch=sketch_data, hint=hint_data, projection=projection,
                                 seed=seed, return_projected=True, output_size=output_size,
                                 max_side=MAX_OUTPUT_SIDE, work_scale=work_scale, denoise=denoise)
        image, projected = _unpack(result)
        if flatten:  # outside the model's lock: the next live update need not wait for it
            image = flatten_picture(image, sketch_data, flatten)
        if format == "png":
            return Response(png_bytes(image), media_type="image/png",
                            headers={"X-Model": slot.name, "X-Elapsed-Ms": str(elapsed_ms)})
        return {
            "image": data_url(image),
            "projected_sketch": data_url(projected),
            "model": slot.name,
            "width": image.width,
            "height": image.height,
            "projection": projection,
            "seed": seed,
            "flatten": flatten,
            "work_scale": work_scale,
            "denoise": denoise,
            "elapsed_ms": elapsed_ms,
            "server_ms": round((time.perf_counter() - started) * 1000.0, 1),
        }

    @router.post("/variations", summary="Several candidates for one sketch")
    def variations(
        sketch: UploadFile = File(..., description=SKETCH_HELP),
        hint: UploadFile | None = File(None, description=HINT_HELP),
        projection: float = Form(0.5, ge=0.0, le=1.0, description=PROJECTION_HELP),
        seed: int = Form(0, ge=0, le=MAX_SEED, description=SEED_HELP),
        count: int = Form(4, ge=1, le=MAX_VARIATIONS, description="number of candidates"),
        model: str | None = Form(None, description=MODEL_HELP),
        output_size: Literal["input", "model"] = Form("input", description=OUTPUT_SIZE_HELP),
        flatten: float = Form(0.0, ge=0.0, le=1.0, description=FLATTEN_HELP),
        work_scale: int = Form(1, ge=1, le=2, description=WORK_SCALE_HELP),
        denoise: bool = Form(True, description=DENOISE_HELP),
    ) -> dict[str, Any]:
        """``images``: ``count`` PNG data URLs; the first is what /api/generate gives for the same
        inputs, the others borrow from different training sketches."""
        slot = pick(model)
        sketch_data = _image_upload(sketch, "the sketch")
        hint_data = _image_upload(hint, "the hint layer")
        images, elapsed_ms = run(slot, "variations", sketch=sketch_data, hint=hint_data, projection=projection,
                                 count=count, seed=seed, output_size=output_size, max_side=variation_side(count),
                                 work_scale=work_scale, denoise=denoise)
        if flatten:
            images = [flatten_picture(image, sketch_data, flatten) for image in images]
        return {
            "images": [data_url(image) for image in images],
            "model": slot.name,
            "seed": seed,
            "elapsed_ms": elapsed_ms,
        }

    @router.post("/upscale")
    def upscale(image: UploadFile = File(...), upscaler: str | None = Form(None)) -> Response:
        if not upscale_slots:
            raise HTTPException(404, "no upscaler model is installed")
        name = upscaler or upscaler_names[0]
        if name not in upscale_slots:
            raise HTTPException(404, f"unknown upscaler {name!r}; installed: {', '.join(upscaler_names)}")
        data = _image_upload(image, "the image")
        source = _decode_rgb(data, "the image")
        enlarged, _ = run(upscale_slots[name], "__call__", source)
        return Response(png_bytes(enlarged), media_type="image/png")

    @router.post("/export", summary="ZIP of the panel's layers and settings")
    def export(
        sketch: UploadFile = File(..., description="the sketch layer (any image; stored as PNG)"),
        hint: UploadFile | None = File(None, description="the hint layer"),
        result: UploadFile | None = File(None, description="the shown result"),
        projected: UploadFile | None = File(None, description="the projected sketch"),
        settings: str | None = Form(None, max_length=4096, description="a JSON object, stored as settings.json"),
    ) -> Response:
        """``application/zip`` with ``sketch.png``, the given layers and ``settings.json``; every layer is
        decoded once, so a corrupt upload is refused (400) instead of zipped."""
        layers = {"sketch": sketch, "hint": hint, "result": result, "projected_sketch": projected}
        files: dict[str, bytes] = {}
        for name, upload in layers.items():
            if upload is None:
                continue
            data = _read_upload(upload, f"the {name} layer")
            if _check_image_header(data, f"the {name} layer") != "PNG":
                data = _to_png(data, name)
            else:  # decoded once so that a truncated or corrupt PNG is refused, not zipped
                _decode_rgb(data, f"the {name} layer", keep_alpha=True)
            files[f"{name}.png"] = data
        if settings is not None:
            parsed = _parse_settings(settings)
            files["settings.json"] = json.dumps(parsed, indent=2, sort_keys=True).encode("utf-8")
        return Response(build_zip(files), media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="sketch2anime.zip"'})

    return router


def _decode_rgb(data: bytes, what: str, keep_alpha: bool = False) -> Image.Image:
    """Full decode after ``_check_image_header`` has bounded the size."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            image.load()
            if keep_alpha and ("A" in image.getbands() or "transparency" in image.info):
                return image.convert("RGBA")
            return image.convert("RGB")
    except Exception as exc:  # same: a crafted body must give a 400, never a 500
        raise HTTPException(400, f"{what} is corrupt ({exc})") from None


def _to_png(data: bytes, name: str) -> bytes:
    return png_bytes(_decode_rgb(data, f"the {name} layer", keep_alpha=True))


def build_zip(files: dict[str, bytes]) -> bytes:
    """A store-only ZIP (PNGs are compressed already) of ``name -> bytes``."""
    buffer = io.BytesIO()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()
