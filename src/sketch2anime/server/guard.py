"""What keeps the panel server usable when a client or a web page misbehaves.

- ``HostOriginGuard`` (ASGI): only the server's own Host names are answered (loopback names plus the
  ``--host`` given), so DNS rebinding cannot point a foreign name at it; state-changing requests
  that a browser marks as cross-origin (``Origin`` / ``Sec-Fetch-Site``) are refused, so a page the
  user visits cannot post work to it. Clients that send neither header (curl, scripts) still work.
- ``GuardedH11Protocol`` (uvicorn): a connection gets ``header_timeout`` seconds to send a request's
  headers and ``body_timeout`` seconds for its body, and at most ``max_connections`` are kept open:
  a new one closes the one that has waited longest for headers (idle keep-alive or slow), or is
  itself answered 503 when all are busy, so a pile of slow clients can neither starve the others
  nor use up the process's file descriptors.
- ``QuietRepeats`` (logging): the same message at most ``burst`` times a minute, then one count.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Iterable
from urllib.parse import urlsplit

import h11
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("sketch2anime.server")

HEADER_TIMEOUT = 10.0  # seconds to send a request's headers (from connect or from the previous response)
BODY_TIMEOUT = 60.0  # seconds to send the body once the headers are in (32 MB at 0.5 MB/s)
KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open
MAX_HEADER_BYTES = 16 * 1024  # h11's limit for one incomplete event, i.e. the request line + headers
MAX_CONNECTIONS = 64
# Listen backlog. asyncio's accept loop takes up to this many connections per event-loop tick (and on
# EMFILE logs a traceback for each of them), before any can be closed: the cap leaves room for a few.
ACCEPT_BATCH = 32
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def host_name(value: str) -> str | None:
    """The name in a Host header, lower case, without port or trailing dot (None if malformed)."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:7860
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not value[end + 1:].startswith(":")):
            return None
        return value[1:end]
    if value.count(":") > 1:
        return None
    name = value.split(":", 1)[0].rstrip(".")
    return name or None


class HostOriginGuard:
    """400 for a Host that is not this server's, 403 for cross-origin state-changing requests."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = (), any_ip: bool = False) -> None:
        self.app = app
        self.allowed = {"localhost"} | {name for name in (host_name(h) for h in allowed_hosts) if name}
        self.any_ip = any_ip  # listening on every address: IP literals are safe from DNS rebinding

    def host_allowed(self, name: str) -> bool:
        if name in self.allowed:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.any_ip or address.is_loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers") or []:
            headers.setdefault(key.lower(), value)
        host = headers.get(b"host", b"").decode("latin-1")
        name = host_name(host) if host else None
        if host and (name is None or not self.host_allowed(name)):
            await _reject(send, 400, f"Host {host[:100]!r} is not a name of this server; open the panel at "
                                     "http://127.0.0.1 (or the --host it was started with)")
            return
        if scope["method"] not in SAFE_METHODS:
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
            origin = headers.get(b"origin", b"").decode("latin-1").lower()
            if site and site not in ("same-origin", "none"):
                await _reject(send, 403, f"cross-site request refused (Sec-Fetch-Site: {site[:40]})")
                return
            if origin and (not host or _origin_netloc(origin) != host.strip().lower()):
                await _reject(send, 403, f"cross-origin request refused (Origin {origin[:100]!r})")
                return
        await self.app(scope, receive, send)


def _origin_netloc(origin: str) -> str | None:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    return parts.netloc if parts.scheme in ("http", "https") else None  # "null" -> None


async def _reject(send: Send, status: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header/body deadlines and a cap on open connections."""

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def, override]
        self._deadline = None
        self._request = None
        self._waiting_since: float | None = time.monotonic()  # waiting for a request's headers since
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            waiting = [c for c in self.connections if c is not self and getattr(c, "_waiting_since", None) is not None
                       and not c.transport.is_closing()]
            if waiting:  # make room: the connection that has waited longest for headers goes
                oldest = min(waiting, key=lambda c: c._waiting_since)
                log.warning("%d connections open (limit %d): closed the one idle longest", len(self.connections),
                            self.max_connections)
                oldest._close(408 if oldest.conn.trailing_data[0] else None, "closed to make room")
            else:
                log.warning("refused a connection: %d busy (limit %d)", len(self.connections) - 1, self.max_connections)
                self._close(503, "server busy: too many open connections")
                return
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()  # may start a pipelined request
        if self.cycle is finished and not self.transport.is_closing():
            self._waiting_since = time.monotonic()
            self._arm(self.header_timeout)  # the clock for the next request's headers
        self._follow()

    def _follow(self) -> None:
        if self.transport.is_closing():
            self._disarm()
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return  # still waiting for headers: the header deadline runs
        if cycle is not self._request:  # the headers of a new request are in
            self._request = cycle
            self._waiting_since = None
            self._arm(self.body_timeout)
        if self.conn.their_state is not h11.SEND_BODY:
            self._disarm()  # the whole request is in; the app's work is bounded elsewhere

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            partial = bool(self.conn.trailing_data[0])
            log.warning("closed a connection that sent no complete headers in %.0f s", self.header_timeout)
            self._close(408 if partial else None, "request headers too slow")
        elif self.conn.their_state is h11.SEND_BODY:
            log.warning("closed a connection whose request body took over %.0f s", self.body_timeout)
            self._close(None if cycle.response_started else 408, "request body too slow")

    def _close(self, status: int | None, text: str) -> None:
        self._waiting_since = None
        self._disarm()
        if status is not None:  # written raw: h11 cannot answer a request it has not parsed
            body = text.encode("ascii")
            reason = {408: "Request Timeout", 503: "Service Unavailable"}[status]
            self.transport.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\nconnection: close\r\n"
                                 f"content-length: {len(body)}\r\n\r\n".encode("ascii") + body)
        self.transport.close()


class QuietRepeats(logging.Filter):
    """At most ``burst`` records with the same message per ``window`` seconds, then one line with the
    count of those dropped (a descriptor shortage once logged 250,000 tracebacks in 12 s)."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.burst, self.window = burst, window
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [window start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window:
            if len(self._seen) > 1000:
                self._seen.clear()
            dropped = int(entry[2]) if entry else 0
            self._seen[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} [{dropped} more like this in the last {self.window:.0f} s not logged]"
            return True
        entry[1] += 1
        if entry[1] <= self.burst:
            return True
        entry[2] += 1
        return False


_QUIET_LOGGERS = ("asyncio", "uvicorn.error", "sketch2anime.server")


def install_quiet_logs(burst: int = 5, window: float = 60.0) -> None:
    """Put one ``QuietRepeats`` on each logger the server writes to (idempotent)."""
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietRepeats) for f in logger.filters):
            logger.addFilter(QuietRepeats(burst, window))


def connection_cap() -> int:
    """MAX_CONNECTIONS, or fewer when the descriptor limit is low: half of what is left after the
    process's own files and a few accept batches in flight."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return MAX_CONNECTIONS
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, (int(soft) - 32 - 4 * ACCEPT_BATCH) // 2))


def server_config(app: ASGIApp, host: str, port: int, log_level: str = "warning",
                  header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                  max_connections: int | None = None):  # -> uvicorn.Config
    """The uvicorn configuration ``sketch2anime serve`` runs with (tests start the same one)."""
    import uvicorn

    cap = max_connections or connection_cap()
    protocol = type("SketchPanelH11Protocol", (GuardedH11Protocol,),
                    {"header_timeout": header_timeout, "body_timeout": body_timeout, "max_connections": cap})
    install_quiet_logs()
    return uvicorn.Config(app, host=host, port=port, http=protocol, ws="none", lifespan="off",
                          log_level=log_level, access_log=False, timeout_keep_alive=KEEP_ALIVE,
                          limit_concurrency=cap + 1, backlog=ACCEPT_BATCH,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES)


def allowed_hosts_for(host: str) -> tuple[list[str], bool]:
    """Host names the server answers to when it listens on ``host``: (extra names, any IP literal)."""
    import socket

    if host in WILDCARD_HOSTS:
        return [socket.gethostname(), socket.getfqdn()], True
    return [host], False
