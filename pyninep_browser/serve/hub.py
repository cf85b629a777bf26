"""The hub: one filesystem, many 9P sessions, and the rules every transport shares.

A transport (TCP/Unix in :mod:`.streams`, WebSocket in :mod:`.websocket`) accepts a connection,
asks the hub for a :class:`Session` and hands it one request frame at a time through
:meth:`Session.handle`; replies leave through the connection's ``send``. Everything between the
wire and :class:`~pyninep_browser.server.Server` lives here, so each transport stays a thin loop:

- **framing checks**: a frame whose size field disagrees with what arrived, or larger than the
  session's msize, is a broken client: :class:`FrameError` closes that connection only;
- **the token** (when one is set): a connection that did not present it in its URL must attach with
  ``aname`` ``token=T`` or ``token=T:PATH`` (the token is cut out before the server sees the aname);
  a Tattach without it is refused with EACCES and the connection closed;
- **read-only** (``--read-only``): requests that would change the tree are answered EROFS;
- **sessions that survive**: a session with an id (chosen by the client) outlives its connection
  for ``grace`` seconds; a new connection presenting the id resumes it, fids, open files and locks
  included, and receives the replies that were produced while it was away. After the grace the
  session ends (fids clunked, locks released) and its id is remembered as expired, so a late
  resume gets a clear error rather than a fresh session that knows none of its fids.

One event loop runs everything, so the filesystem needs no locks: each request runs to the end
before the next starts, whichever session sent it. Sessions are as separate as two processes on
one Linux machine: POSIX lock owners carry the session, fids are per session, and renames and
unlinks through one are seen at once by all.
"""

from __future__ import annotations

import errno
import hmac
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import protocol as p
from ..fs import O_ACCMODE, O_TRUNC, Filesystem
from ..protocol import HEADER, HEADER_SIZE, T
from ..server import Server

log = logging.getLogger("pyninep_browser.serve")

# What --read-only refuses outright (Tlopen is checked by its flags).
_MUTATING = frozenset(
    int(t)
    for t in (
        T.Tlcreate,
        T.Twrite,
        T.Tmkdir,
        T.Tsymlink,
        T.Tmknod,
        T.Tlink,
        T.Trename,
        T.Trenameat,
        T.Tunlinkat,
        T.Tremove,
        T.Tsetattr,
        T.Txattrcreate,
    )
)
_TVERSION, _TATTACH, _TLOPEN = int(T.Tversion), int(T.Tattach), int(T.Tlopen)
_TLOPEN_FLAGS = p.frame_struct(T.Tlopen)
TOKEN_PREFIX = "token="
MAX_SESSION_ID = 128
_EXPIRED_KEPT = 4096  # expired session ids remembered, for the late-resume error


class FrameError(Exception):
    """A frame no 9P client sends: the connection that sent it is closed (others go on)."""


class SessionRefused(Exception):
    """A connection that cannot have the session it asked for; the message is one sentence."""


@dataclass
class Limits:
    """Per-session caps. ``max_msize`` bounds every frame and so every per-connection buffer."""

    max_msize: int = 1 << 20
    max_fids: int = 4096
    max_locks: int = 1024  # lock ranges one session may hold (ENOLCK past it)
    max_pending: int = 64  # deferred replies a session may have outstanding before it is not read
    max_outbox: int = 256  # replies kept for a detached session (more: it cannot be resumed)
    grace: float = 300.0  # seconds a detached session with an id waits for its client


@dataclass(eq=False)
class Session:
    """One 9P session: a :class:`Server` over the hub's filesystem, and the connection it has now."""

    hub: Hub
    id: str | None
    server: Server = field(init=False)
    send: Callable[[bytes], None] | None = None  # the attached connection's sender
    close_connection: Callable[[], None] | None = None
    authorized: bool = False  # the token was presented (or none is needed)
    outbox: deque = field(default_factory=deque)  # replies produced while detached
    detached_at: float | None = None
    ended: bool = False
    frames: int = 0

    def __post_init__(self) -> None:
        lim = self.hub.limits
        self.server = Server(
            self.hub.fs,
            max_msize=lim.max_msize,
            max_fids=lim.max_fids,
            max_locks=lim.max_locks,
            permissions=self.hub.permissions,
            on_reply=self._deliver,
        )

    # ----------------------------------------------------------------- requests and replies

    def _deliver(self, reply: bytes) -> None:
        """A reply (deferred ones come here too): to the connection, or kept until a resume."""
        if self.send is not None:
            self.send(reply)
        elif not self.ended:
            self.outbox.append(reply)
            if len(self.outbox) > self.hub.limits.max_outbox:
                log.warning("session %s: too many replies waiting for its client; ended", self.id)
                self.hub.end(self)

    @property
    def busy(self) -> bool:
        """Too many deferred replies outstanding: the transport stops reading this connection."""
        return len(self.server.pending) >= self.hub.limits.max_pending

    def limit(self) -> int:
        """The largest frame this session accepts now (msize once negotiated)."""
        return self.server.msize if self.server.version is not None else self.hub.limits.max_msize

    def handle(self, frame: bytes | bytearray | memoryview) -> None:
        """One request frame from the attached connection; its reply goes out through ``send``."""
        n = len(frame)
        if n < HEADER_SIZE:
            raise FrameError(f"a {n}-byte frame is shorter than a 9P header")
        size, mtype, tag = HEADER.unpack_from(frame, 0)
        if size != n:
            raise FrameError(f"frame size field {size} but {n} bytes arrived")
        if n > self.limit():
            raise FrameError(f"a {n}-byte frame is larger than msize {self.limit()}")
        self.frames += 1
        self.hub.requests += 1
        if mtype == _TATTACH and (self.hub.token is not None or self.hub.read_only):
            checked = self._check_attach(frame, tag)
            if checked is None:
                return
            frame = checked
        elif self.hub.read_only and (mtype in _MUTATING or (mtype == _TLOPEN and _opens_for_write(frame))):
            self._deliver(p.lerror(tag, errno.EROFS))
            return
        reply = self.server.handle(frame)
        if reply is not None:
            self._deliver(reply)

    def _check_attach(self, frame: bytes | bytearray | memoryview, tag: int) -> bytes | None:
        """Tattach under a token: cut ``token=T[:PATH]`` out of aname, refuse it without one."""
        try:
            fid, afid, uname, aname, n_uname = p.decode_body(
                _TATTACH, memoryview(frame), HEADER_SIZE, len(frame)
            )
        except p.ProtocolError as exc:
            self._deliver(p.lerror(tag, exc.errno))
            return None
        if aname.startswith(TOKEN_PREFIX):
            given, _, path = aname[len(TOKEN_PREFIX) :].partition(":")
            if self.hub.token is not None and not self.authorized:
                self.authorized = hmac.compare_digest(given.encode(), self.hub.token.encode())
            aname = path
        if self.hub.token is not None and not self.authorized:
            self._deliver(p.lerror(tag, errno.EACCES))
            log.warning("session %s: attach without the token; connection closed", self.id)
            raise FrameError("attach without the token")
        return p.encode(T.Tattach, tag, fid, afid, uname, aname, n_uname)

    # ----------------------------------------------------------------- connections

    def attach_connection(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self.send, self.close_connection = send, close
        self.detached_at = None
        waiting, self.outbox = self.outbox, deque()
        for reply in waiting:
            send(reply)

    def detach_connection(self, send: Callable[[bytes], None]) -> None:
        if self.send is not send:
            return  # another connection took the session over meanwhile
        self.send = self.close_connection = None
        if self.id is None or self.hub.closing:
            self.hub.end(self)
        else:
            self.detached_at = time.monotonic()


def _opens_for_write(frame: bytes | bytearray | memoryview) -> bool:
    if len(frame) != _TLOPEN_FLAGS.size:
        return False  # malformed: the server answers it
    flags = _TLOPEN_FLAGS.unpack_from(frame, 0)[-1]
    return bool(flags & O_ACCMODE or flags & O_TRUNC)


class Hub:
    """The filesystem every session shares, the sessions with ids, and the server-wide settings."""

    def __init__(
        self,
        fs: Filesystem,
        *,
        limits: Limits | None = None,
        token: str | None = None,
        read_only: bool = False,
        permissions: str = "client",
    ) -> None:
        self.fs = fs
        self.limits = limits or Limits()
        self.token = token
        self.read_only = read_only
        self.permissions = permissions
        self.sessions: dict[str, Session] = {}  # by id: those that may be resumed
        self.live: set[Session] = set()  # every session not ended
        self.expired: OrderedDict[str, float] = OrderedDict()
        self.closing = False
        self.requests = 0

    def session(self, session_id: str | None, *, authorized: bool, first_frame_is_version: bool) -> Session:
        """The session for a new connection: a new one, or the one ``session_id`` names.

        A known id resumes its session (taking it from a connection that still holds it). An
        unknown id starts a session only if the client starts one (its first frame is Tversion):
        otherwise it is a client resuming a session this server no longer has, and it is told so.
        """
        if session_id is not None:
            if not session_id or len(session_id) > MAX_SESSION_ID or not session_id.isprintable():
                raise SessionRefused("a session id is 1 to 128 printable characters")
            s = self.sessions.get(session_id)
            if s is not None:
                if s.close_connection is not None:
                    log.info("session %s: taken over by a new connection", session_id)
                    close = s.close_connection
                    s.send = s.close_connection = None
                    close()
                s.authorized = s.authorized or authorized
                return s
            if not first_frame_is_version:
                if session_id in self.expired:
                    raise SessionRefused(
                        f"session {session_id} expired: it was away longer than the {self.limits.grace:g} s "
                        "grace period, so its open files were closed and its locks released; mount again"
                    )
                raise SessionRefused(
                    f"session {session_id} is unknown to this server (restarted?): its open files "
                    "and locks are gone; mount again"
                )
        s = Session(self, session_id, authorized=authorized or self.token is None)
        if session_id is not None:
            self.sessions[session_id] = s
        self.live.add(s)
        return s

    def end(self, s: Session) -> None:
        """End a session: fids clunked, locks released, deferred requests dropped."""
        if s.ended:
            return
        s.ended = True
        s.send = None
        s.outbox.clear()
        self.live.discard(s)
        if s.id is not None and self.sessions.get(s.id) is s:
            del self.sessions[s.id]
            self.expired[s.id] = time.monotonic()
            while len(self.expired) > _EXPIRED_KEPT:
                self.expired.popitem(last=False)
        close, s.close_connection = s.close_connection, None
        try:
            s.server.reset()
        except Exception:
            log.exception("ending session %s", s.id)
        if close is not None:
            close()

    def tick(self, now_ms: float | None = None) -> None:
        """Every 100 ms or so: the store's write-behind, and the end of expired grace periods."""
        now = time.monotonic()
        for s in list(self.sessions.values()):
            if s.detached_at is not None and now - s.detached_at >= self.limits.grace:
                log.info("session %s: grace period over; its fids are clunked and its locks released", s.id)
                self.end(s)
        self.fs.tick(now * 1000 if now_ms is None else now_ms)

    def close(self) -> None:
        """End every session and commit the filesystem durably (then close its store)."""
        self.closing = True
        for s in list(self.live):
            self.end(s)
        self.fs.close()
