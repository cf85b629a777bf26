"""TCP and Unix-socket listeners: 9P's own framing (each frame starts with its 4-byte size).

A loop per connection: read one frame, hand it to its :class:`~.hub.Session`, write the reply,
and wait until the kernel has taken the bytes before reading the next frame (``drain``), so a
client that never reads its replies stops being read itself and holds at most one reply's worth
of memory; nobody else waits for it. A frame announcing a size beyond the session's msize, a
truncated frame, or a connection silent past the idle timeout closes that connection only.

A TCP session cannot be resumed (there is no URL to carry an id): it ends with its connection.
The token, when one is set, comes in Tattach's aname (``token=T`` or ``token=T:PATH``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

from .hub import FrameError, Hub, SessionRefused

log = logging.getLogger("pyninep_browser.serve")
_SIZE = struct.Struct("<I")
_TVERSION = 100
_HIGH_WATER = 1 << 16  # replies buffered for a client beyond this: wait until it reads them


class StreamTransport:
    """Serves ``hub`` on asyncio streams; :meth:`handle_client` is the per-connection loop."""

    def __init__(
        self, hub: Hub, *, idle_timeout: float = 0, handshake_timeout: float = 30, write_timeout: float = 60
    ) -> None:
        self.hub = hub
        self.write_timeout = write_timeout
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.connections: set[asyncio.StreamWriter] = set()

    async def _frame(self, reader: asyncio.StreamReader, limit: int, timeout: float) -> bytes | None:
        try:
            if not timeout:  # the common case: no timer per frame
                return await self._read_frame(reader, limit)
            async with asyncio.timeout(timeout):
                return await self._read_frame(reader, limit)
        except asyncio.IncompleteReadError:
            return None  # closed, perhaps mid-frame
        except TimeoutError:
            log.info("connection idle too long: closed")
            return None

    @staticmethod
    async def _read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
        head = await reader.readexactly(4)
        (size,) = _SIZE.unpack(head)
        if size < 7 or size > limit:
            raise FrameError(f"frame size {size} outside 7..{limit}")
        return head + await reader.readexactly(size - 4)

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        session = None
        send = writer.write
        transport = writer.transport
        try:
            first = await self._frame(reader, self.hub.limits.max_msize, self.handshake_timeout)
            if first is None:
                return
            session = self.hub.session(None, authorized=False, first_frame_is_version=first[4] == _TVERSION)
            session.attach_connection(send, writer.close)
            frame: bytes | None = first
            while frame is not None and not session.ended:
                session.handle(frame)
                if transport.get_write_buffer_size() > _HIGH_WATER or session.busy:
                    async with asyncio.timeout(self.write_timeout or None):
                        await writer.drain()  # a client that does not read its replies waits here
                        while session.busy and not session.ended:
                            await asyncio.sleep(0.005)
                if writer.is_closing():
                    break
                frame = await self._frame(reader, session.limit(), self.idle_timeout)
        except (FrameError, SessionRefused) as exc:
            log.info("connection closed: %s", exc)
        except TimeoutError:
            log.info("connection closed: the client does not read its replies")
        except (ConnectionError, OSError):
            pass
        finally:
            self.connections.discard(writer)
            if session is not None:
                session.detach_connection(send)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def start_tcp(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self.handle_client, host, port, limit=1 << 16)

    async def start_unix(self, path: str) -> asyncio.Server:
        return await asyncio.start_unix_server(self.handle_client, path, limit=1 << 16)

    def close_all(self) -> None:
        for w in list(self.connections):
            w.close()
