"""TCP and Unix-socket listeners: 9P's own framing (each frame starts with its 4-byte size).

An asyncio ``Protocol`` per connection (no coroutine per frame: the bytes that arrive are cut into
frames and each goes to its :class:`~.hub.Session` at once, its reply written straight to the
socket). When a client does not read its replies and the kernel's buffer for it fills, asyncio
pauses the writing side and this stops reading that client: it holds at most one buffer of
replies, and is closed if it stays that way past the write timeout. Nobody else waits for it. A
session with too many deferred replies outstanding is not read either until they are answered. A
frame announcing a size below a header or beyond the session's msize, or a connection silent past
the idle timeout (or past the handshake timeout before its first frame), is closed; only that one.

A TCP session cannot be resumed (there is no URL to carry an id): it ends with its connection.
The token, when one is set, comes in Tattach's aname (``token=T`` or ``token=T:PATH``).
"""

from __future__ import annotations

import asyncio
import logging

from .hub import FrameError, Hub, Session, SessionRefused

log = logging.getLogger("pyninep_browser.serve")
_TVERSION = 100


class _Connection(asyncio.Protocol):
    def __init__(self, owner: StreamTransport) -> None:
        self.owner = owner
        self.hub = owner.hub
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.session: Session | None = None
        self.last = self.loop.time()
        self.opened = self.last
        self.write_paused_at: float | None = None
        self.waiting_busy = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None

    # ----------------------------------------------------------------- asyncio's callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.owner.connections.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        self.buf += data
        self._process()

    def pause_writing(self) -> None:  # the client does not take its replies: stop reading it
        self.write_paused_at = self.loop.time()
        self._pause()

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.session is not None:
            self.session.detach_connection(self._send)

    # ----------------------------------------------------------------- frames

    def _send(self, reply: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(reply)

    def _pause(self) -> None:
        if self.transport is not None and not self.closed and self.transport.is_reading():
            self.transport.pause_reading()

    def _process(self) -> None:
        buf = self.buf
        while not self.closed and self.write_paused_at is None:
            s = self.session
            if s is not None and s.busy:
                self._pause()
                if not self.waiting_busy:
                    self.waiting_busy = True
                    self.loop.call_later(0.005, self._busy_check)
                return
            if len(buf) < 4:
                break
            size = int.from_bytes(buf[:4], "little")
            limit = s.limit() if s is not None else self.hub.limits.max_msize
            if size < 7 or size > limit:
                self.close(f"frame size {size} outside 7..{limit}")
                return
            if len(buf) < size:
                break
            frame = bytes(buf[:size])
            del buf[:size]
            try:
                if s is None:
                    s = self.session = self.hub.session(
                        None, authorized=False, first_frame_is_version=frame[4] == _TVERSION
                    )
                    s.attach_connection(self._send, self.close)
                s.handle(frame)
            except (FrameError, SessionRefused) as exc:
                self.close(str(exc))
                return
            if s.ended:
                self.close()
                return
        t = self.transport
        busy = self.session is not None and self.session.busy
        if (
            not self.closed
            and t is not None
            and not t.is_reading()
            and self.write_paused_at is None
            and not busy
        ):
            t.resume_reading()

    def _busy_check(self) -> None:
        self.waiting_busy = False
        self._process()

    def close(self, why: str | None = None) -> None:
        if why:
            log.info("connection closed: %s", why)
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()  # what is buffered (an EACCES before a close) is still sent

    # ----------------------------------------------------------------- timeouts

    def _arm(self) -> None:
        o = self.owner
        step = min(t for t in (1.0, o.handshake_timeout, o.idle_timeout, o.write_timeout) if t) / 4
        self.timer = self.loop.call_later(step, self._tick)

    def _tick(self) -> None:
        if self.closed:
            return
        o, now = self.owner, self.loop.time()
        if self.session is None and o.handshake_timeout and now - self.opened > o.handshake_timeout:
            return self.close("no 9P frame since the connection opened")
        if o.idle_timeout and now - self.last > o.idle_timeout:
            return self.close("idle too long")
        if (
            self.write_paused_at is not None
            and o.write_timeout
            and now - self.write_paused_at > o.write_timeout
        ):
            return self.close("the client does not read its replies")
        self._arm()
        return None


class StreamTransport:
    """Serves ``hub`` over stream sockets (TCP, Unix), one :class:`_Connection` each."""

    def __init__(
        self, hub: Hub, *, idle_timeout: float = 0, handshake_timeout: float = 30, write_timeout: float = 60
    ) -> None:
        self.hub = hub
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.write_timeout = write_timeout
        self.connections: set[_Connection] = set()

    async def start_tcp(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(lambda: _Connection(self), host, port)

    async def start_unix(self, path: str) -> asyncio.Server:
        return await asyncio.get_running_loop().create_unix_server(lambda: _Connection(self), path)

    def close_all(self) -> None:
        for c in list(self.connections):
            c.close()
