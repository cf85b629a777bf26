"""The WebSocket listener (v86's ``proxy_url``): one binary message per 9P frame each way.

Its endpoint is the root path, ``ws://HOST:PORT/``, what a user pastes into ``proxy_url``. The URL
may carry ``?session=ID`` (a resumable session: see :mod:`.hub`) and ``?token=T``. The same port
answers plain HTTP too: with ``--site DIR`` it serves a built ``dist/``, and always
``/.pyninep/session?id=ID``, a one-line JSON status (``live``, ``detached``, ``expired``,
``unknown``) a page asks to explain a lost session in one sentence.

The handshake is refused (HTTP 403) when the ``Origin`` header is present and not allowed: a page
on any website may otherwise open ``ws://127.0.0.1:PORT``. Allowed: the ``--allow-origin``
list, and, when the port serves the site, that site's own origin on a loopback host (a same-origin
check that a rebinding DNS name cannot pass). No ``Origin`` means not a browser: Node, other
programs; they pass, subject to the token.

Needs the ``websockets`` package (``pip install pyninep-browser[serve]``); nothing else in the
package imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import mimetypes
import urllib.parse
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve, unix_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .. import protocol as p
from ..sitefiles import SITE_TYPES
from .hub import FrameError, Hub, SessionRefused

log = logging.getLogger("pyninep_browser.serve")
_TVERSION = 100
_ESTALE = 116
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_TYPES = {**SITE_TYPES, ".html": "text/html; charset=utf-8", ".css": "text/css"}


def _query(path: str) -> tuple[str, dict[str, str]]:
    route, _, query = path.partition("?")
    return route, {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}


class _Sender:
    """Replies to one WebSocket, in order: inline after a request, or from a task for a reply
    that completes later (a deferred one) or arrives on resume."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.queue: deque[bytes] = deque()
        self.task: asyncio.Task | None = None
        self.inline = False

    def __call__(self, reply: bytes) -> None:
        self.queue.append(reply)
        if not self.inline and (self.task is None or self.task.done()):
            self.task = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        while self.queue:
            await self.ws.send(self.queue.popleft())


class WebSocketTransport:
    def __init__(
        self,
        hub: Hub,
        *,
        allow_origins: Sequence[str] = (),
        site: Path | None = None,
        idle_timeout: float = 0,
        handshake_timeout: float = 30,
        write_timeout: float = 60,
    ) -> None:
        self.hub = hub
        self.allow_origins = set(allow_origins)
        self.site = site.resolve() if site is not None else None
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.write_timeout = write_timeout
        self.connections: set[ServerConnection] = set()
        self.tasks: set[asyncio.Task] = set()

    # ----------------------------------------------------------------- the handshake and HTTP

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser
        if "*" in self.allow_origins or origin in self.allow_origins:
            return True
        if self.site is not None and host:
            hostname = urllib.parse.urlsplit(f"http://{host}").hostname or ""
            same = origin in (f"http://{host}", f"https://{host}")
            return same and (hostname in LOOPBACK_NAMES or f"[{hostname}]" in LOOPBACK_NAMES)
        return False

    def token_ok(self, given: str | None) -> bool:
        token = self.hub.token
        return token is None or (given is not None and hmac.compare_digest(given.encode(), token.encode()))

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        route, params = _query(request.path)
        origin = request.headers.get("Origin")
        if route == "/.pyninep/session":
            return self._session_status(params.get("id", ""), origin, request.headers.get("Host"))
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            if self.site is None:
                return connection.respond(426, "This is a 9P WebSocket endpoint: ws://HOST:PORT/\n")
            return self._static(route)
        if route != "/":
            return connection.respond(404, "The 9P WebSocket endpoint is the root path: ws://HOST:PORT/\n")
        if not self.origin_allowed(origin, request.headers.get("Host")):
            log.warning("refused a WebSocket from origin %s (not in --allow-origin)", origin)
            return connection.respond(403, f"Origin {origin} is not allowed (--allow-origin)\n")
        if not self.token_ok(params.get("token")):
            log.warning("refused a WebSocket without the right token")
            return connection.respond(403, "A valid token is required: ws://HOST:PORT/?token=…\n")
        return None

    def _session_status(self, sid: str, origin: str | None, host: str | None) -> Response:
        s = self.hub.sessions.get(sid)
        if s is not None:
            state = "detached" if s.send is None else "live"
        elif sid in self.hub.expired:
            state = "expired"
        else:
            state = "unknown"
        headers = Headers([("Content-Type", "application/json"), ("Cache-Control", "no-store")])
        if origin is not None and self.origin_allowed(origin, host):
            headers["Access-Control-Allow-Origin"] = origin
        body = json.dumps({"session": sid, "state": state, "grace": self.hub.limits.grace}).encode()
        return Response(200, "OK", headers, body)

    def _static(self, route: str) -> Response:
        assert self.site is not None
        rel = urllib.parse.unquote(route).lstrip("/")
        target = (self.site / rel).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(self.site) or not target.is_file():
            return Response(404, "Not Found", Headers([("Content-Type", "text/plain")]), b"not found\n")
        kind = _TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        headers = Headers([("Content-Type", kind), ("Cache-Control", "no-cache")])
        return Response(200, "OK", headers, target.read_bytes())

    # ----------------------------------------------------------------- a connection

    async def _recv(self, ws: ServerConnection, timeout: float) -> bytes | None:
        try:
            if timeout:
                async with asyncio.timeout(timeout):
                    msg = await ws.recv()
            else:  # the common case: no timer per frame
                msg = await ws.recv()
        except TimeoutError:
            log.info("WebSocket idle too long: closed")
            return None
        except ConnectionClosed:
            return None
        if isinstance(msg, str):
            raise FrameError("a text message (9P frames are binary)")
        return msg

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.add(ws)
        sender = _Sender(ws)
        session = None
        sid = _query(ws.request.path if ws.request else "/")[1].get("session")
        try:
            frame = await self._recv(ws, self.handshake_timeout)
            while frame is not None and session is None:
                try:
                    session = self.hub.session(
                        sid, authorized=True, first_frame_is_version=frame[4:5] == b"\x64"
                    )
                except SessionRefused as exc:
                    # The guest still waits for answers: each request gets ESTALE until it mounts
                    # again (a Tversion), which starts a new session under the same id.
                    log.info("%s", exc)
                    if len(frame) >= 7:
                        await ws.send(p.lerror(int.from_bytes(frame[5:7], "little"), _ESTALE))
                    frame = await self._recv(ws, self.idle_timeout)
            if session is None or frame is None:
                return

            def close() -> None:
                self._spawn(ws.close(4000, "session taken over"))

            session.attach_connection(sender, close)
            await sender.flush()
            while frame is not None and not session.ended:
                sender.inline = True
                try:
                    session.handle(frame)
                finally:
                    sender.inline = False
                # (A client that stops reading stalls here, its own task only; it stops answering
                # the keepalive pings too, and websockets closes it within 40 s.)
                await sender.flush()
                if session.busy:
                    async with asyncio.timeout(self.write_timeout or None):
                        while session.busy and not session.ended:
                            await asyncio.sleep(0.005)
                frame = await self._recv(ws, self.idle_timeout)
        except FrameError as exc:
            log.info("WebSocket closed: %s", exc)
            await ws.close(1002, str(exc)[:100])
        except TimeoutError:
            log.info("WebSocket closed: the client does not read its replies")
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(ws)
            if session is not None:
                session.detach_connection(sender)

    async def start(self, host: str | None = None, port: int | None = None, unix: str | None = None) -> Any:
        options: dict[str, Any] = {
            "process_request": self.process_request,
            "compression": None,  # 9P data is often compressed already; and it costs CPU per frame
            "max_size": self.hub.limits.max_msize,
            "max_queue": 4,
            "open_timeout": self.handshake_timeout,
            "server_header": None,
        }
        if unix is not None:
            return await unix_serve(self.handler, unix, **options)
        return await serve(self.handler, host, port, **options)

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` on its own, keeping a reference until it is done (asyncio keeps none)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close_all(self) -> None:
        for ws in list(self.connections):
            with contextlib.suppress(Exception):
                self._spawn(ws.close(1001, "server shutting down"))
