"""``sketch2anime serve``: the FastAPI app that serves the drawing panel and its API.

The page is a few hand-written files in ``server/static`` (index.html, app.js + drawing.js as ES
modules, style.css; no build step, no CDN), served from an allow-list read once at start-up, so
no URL can reach any other file.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..runtime import check_inference_precision
from .api import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, ModelSlot, build_router
from .apidocs import render_api_page
from .guard import HostOriginGuard, allowed_hosts_for, server_config

log = logging.getLogger("sketch2anime.server")

# Generate/variations carry two files, export four; a little room for form fields and boundaries.
MAX_BODY_BYTES = 4 * MAX_UPLOAD_BYTES + 256 * 1024
_STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# Everything the page needs comes from this server; data:/blob: URLs carry the images.
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


API_DESCRIPTION = f"""The drawing panel's API; the page at / uses nothing else.

Every request carries its whole input as a multipart form (the sketch, an optional hint layer, the
settings), so requests never share state and any HTTP client can call it, e.g.
curl -F sketch=@examples/sketches/face.png -F hint=@examples/hints/face.png http://127.0.0.1:7860/api/generate

Limits: each uploaded file up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB and {MAX_IMAGE_PIXELS:,} pixels (aspect ratio
up to 50:1); a request body up to {MAX_BODY_BYTES // (1024 * 1024)} MB. Errors are JSON {{"detail": ...}}: 400 for
images the model refuses, 404 for an unknown model, 413 for oversized uploads, 415 for files that are not
images, 422 for missing fields or numbers out of range.

No login: the server listens on the loopback address unless told otherwise."""


class _BodyTooLarge(StarletteHTTPException):
    # An HTTPException so FastAPI's body parsing re-raises it instead of answering 400.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the {limit // (1024 * 1024)} MB limit")


class BodySizeLimit:
    """Answer 413 for request bodies over ``limit`` bytes, before they are buffered in full."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body over the {self.limit // (1024 * 1024)} MB limit"}, status_code=413
        )
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class SecurityHeaders:
    """Add ``_SECURITY_HEADERS`` to every response (plain ASGI: no task group around receive)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {key.lower() for key, _ in headers}
                for key, value in _SECURITY_HEADERS.items():
                    if key.lower().encode() not in present:
                        headers.append((key.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _load_static() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("sketch2anime.server") / "static"
    files: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        name = entry.name
        suffix = Path(name).suffix.lower()
        if entry.is_file() and _STATIC_NAME.match(name) and suffix in _MEDIA_TYPES:
            files[name] = (entry.read_bytes(), _MEDIA_TYPES[suffix])
    if "index.html" not in files:
        raise RuntimeError("the sketch2anime package is missing server/static/index.html")
    return files


def create_app(pipelines: dict[str, Any], upscalers: dict[str, Any] | None = None,
               allowed_hosts: Iterable[str] = (), any_ip_host: bool = False) -> FastAPI:
    """The panel app over loaded pipelines ``name -> Sketch2AnimePipeline`` (first = default).

    ``upscalers`` (optional) maps a name to a callable ``PIL image -> larger PIL image``.
    Requests must name a loopback Host or one of ``allowed_hosts`` (any IP literal with
    ``any_ip_host``); cross-origin POSTs are refused (``guard.HostOriginGuard``).
    """
    slots = {name: ModelSlot(name, pipe) for name, pipe in pipelines.items()}
    from .. import __version__

    # /openapi.json is FastAPI's; /docs and /redoc are rendered here without the stock pages' CDN scripts.
    app = FastAPI(title="sketch2anime panel", version=__version__, description=API_DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.include_router(build_router(slots, upscalers))
    static = _load_static()

    def serve_file(name: str) -> Response:
        if name not in static:
            raise HTTPException(404, "not found")
        body, media_type = static[name]
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return serve_file("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        return serve_file(name)

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(render_api_page(app.openapi()))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Only real bugs get here: user errors are HTTPExceptions or validation errors.
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(HostOriginGuard, allowed_hosts=list(allowed_hosts), any_ip=any_ip_host)  # outermost
    app.state.slots = slots
    return app


def _model_names(specs: list[str]) -> list[str]:
    """Short unique names for the model select: the folder name (a run's ``model/`` takes the run's)."""
    names: list[str] = []
    for spec in specs:
        path = Path(spec)
        base = spec if spec == "default" else (path.parent.name if path.name == "model" and path.parent.name else path.name) or spec
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port") from None


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``serve`` needs; mirrors the flags of ``sketch2anime serve`` (cli.py)."""

    models: tuple[str, ...] = ("default",)  # pipeline folders or 'default'
    host: str = "127.0.0.1"
    port: int = 7860
    threads: int | None = None  # torch CPU threads; None: runtime.set_serving_threads decides
    precision: str = "auto"  # what the networks run in (Sketch2AnimePipeline.set_precision)

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        if not self.models:
            raise ValueError("give at least one --model (or none for the shipped model)")
        if not self.host:
            raise ValueError("--host must not be empty")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"--port must be between 1 and 65535, got {self.port}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"--threads must be a whole number >= 1, got {self.threads!r}")
        check_inference_precision(self.precision)


def run_server(config: ServeConfig) -> int:
    """Load every model of ``config`` and run the panel until Ctrl+C."""
    import uvicorn

    from ..inference import Sketch2AnimePipeline, set_serving_threads

    threads = set_serving_threads(config.threads)
    specs = list(config.models)
    pipelines = {}
    for name, spec in zip(_model_names(specs), specs):
        print(f"loading model {spec} ...", flush=True)
        pipelines[name] = Sketch2AnimePipeline.from_pretrained(spec, precision=config.precision)
    _check_port_free(config.host, config.port)
    if not _is_loopback(config.host):
        print(f"warning: listening on {config.host}: anyone who can reach this address can use the panel "
              "(there is no login)", flush=True)
    allowed, any_ip = allowed_hosts_for(config.host)
    from ..upscale.upscaler import installed_upscalers

    upscalers = installed_upscalers()
    print(f"upscaler: {', '.join(upscalers)} (sharp results when the pen rests)" if upscalers else
          "no upscaler installed: the panel shows the model's own resolution; for sharp large results "
          "run: sketch2anime weights upscaler", flush=True)
    app = create_app(pipelines, upscalers, allowed_hosts=allowed, any_ip_host=any_ip)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    precisions = sorted({getattr(pipe, 'precision', 'fp32') for pipe in pipelines.values()})
    print(f"sketch2anime panel: http://{shown}:{config.port}/  (Ctrl+C to stop; {threads} torch CPU thread"
          f"{'s' if threads > 1 else ''}, {'/'.join(precisions)})", flush=True)
    # Header/body deadlines, a connection cap and rate-limited logs (see server/guard.py).
    uvicorn.Server(server_config(app, config.host, config.port)).run()
    return 0
