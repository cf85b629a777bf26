"""Live files at run time: the Python functions behind a file, called when the guest uses it.

This module owns the declarations (:func:`live_file`, :func:`live_dir`, :data:`REGISTRY`), the
binding of recorded names to them (:func:`attach`), and everything that runs a live function for a
request: the backends the server and the filesystem call through ``inode.backend``, one handle per
open, the time limit (:data:`LIMIT`, enforced by a trace hook), async scheduling on the event loop,
and :func:`context`. An inode records only the name of its live file, in the xattr
:data:`LIVE_XATTR`, so an image or a saved state holds no code.

Semantics of a live file, per open:

- ``read()`` is called once at open (not per read request), so a reader sees one consistent
  snapshot; the inode's size and mtime then describe that snapshot (what getattr reports).
- An open for writing collects what is written (starting empty; O_RDWR starts from the snapshot)
  and ``write(data)`` receives the whole content at close, and at fsync if anything changed since.
  An error at close cannot reach the writer (Linux ignores errors of Tclunk): a writer that wants
  them calls fsync (``dd conv=fsync``), whose error it sees.
- ``open(flags)`` instead makes a per-open state object for stream-like files: its ``read(size)``
  and ``write(data)`` are called per request (offsets are ignored), ``close()`` at close.
- A function that raises ``OSError`` gives the guest that errno; any other exception gives EIO for
  that request and one log line. Synchronous functions are stopped after ``limit`` seconds (default
  :data:`LIMIT`) by a trace hook that raises in their Python code; a call blocked inside C code (a
  ``time.sleep``) is not interrupted. ``async def`` functions run on the event loop (the page's, in
  Pyodide) and the request's reply is deferred until they finish or time out.

The server side is a small protocol the 9P server calls, duck-typed: ``open(server, cred, flags)``
→ a handle with ``start``, ``read``, ``write``, ``fsync``, ``close``, ``discard``; and
``refresh(server)`` for directories. The filesystem (``read``, ``write``) and
``TreePath.read_bytes`` (``snapshot``) call a backend outside a request.

Nothing here parses 9P, builds trees or reads archives: this module imports only the filesystem
package. :mod:`pyninep_browser.authoring` and :mod:`pyninep_browser.archive` import it, never the
other way (``tests/test_imports.py`` checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .fs import O_ACCMODE, O_APPEND, O_RDONLY, O_RDWR, O_WRONLY, ROOT, Cred, Filesystem, Inode, fail

log = logging.getLogger("pyninep_browser")

LIVE_XATTR = "trusted.pyninep.live"
LIMIT = 10.0  # seconds a synchronous live function may run before it is stopped

# ----------------------------------------------------------------- declarations

REGISTRY: dict[str, LiveFile | LiveDir] = {}  # name → declaration, filled by live_file/live_dir


@dataclass
class LiveContext:
    """What a live function may ask about the request it serves: :func:`context`."""

    server: Any  # the 9P Server (None when called outside a request, e.g. by read_bytes)
    fs: Filesystem
    cred: Cred
    inode: Inode


_context: contextvars.ContextVar[LiveContext | None] = contextvars.ContextVar("pyninep_live", default=None)


def context() -> LiveContext:
    """The request a live function is serving (server, filesystem, caller's uid/gid, inode)."""
    ctx = _context.get()
    if ctx is None:
        raise RuntimeError("pyninep_browser.live.context() is only available inside a live function")
    return ctx


@dataclass
class LiveFile:
    """A live file's declaration (see :func:`live_file`)."""

    name: str | None
    read: Callable[[], Any] | None = None
    write: Callable[[bytes], Any] | None = None
    open: Callable[[int], Any] | None = None
    limit: float = LIMIT

    @property
    def writable(self) -> bool:
        return self.write is not None or self.open is not None

    def bind(self, fs: Filesystem, inode: Inode) -> None:
        inode.backend = _LiveFileBackend(self, fs, inode)


@dataclass
class LiveDir:
    """A live directory's declaration (see :func:`live_dir`)."""

    name: str | None
    list: Callable[[], Mapping[str, Any]]
    limit: float = LIMIT

    def bind(self, fs: Filesystem, inode: Inode) -> None:
        inode.backend = _LiveDirBackend(self, fs, inode)


def live_file(
    name: str | Callable | None = None,
    *,
    read: Callable[[], Any] | None = None,
    write: Callable[[bytes], Any] | None = None,
    open: Callable[[int], Any] | None = None,
    limit: float = LIMIT,
) -> Any:
    """Declare a live file under ``name`` (what images record to re-attach it).

    ``read()`` returns bytes or str, called at each open; ``write(data)`` receives what an open
    wrote, at close (and fsync); ``open(flags)`` returns a per-open object with ``read(size)``,
    ``write(data)`` and optionally ``close()`` for stream-like files. Any may be ``async def``.
    Used bare as a decorator (``@live_file`` or ``@live_file("name")``), the function is ``read``
    and the name defaults to the function's name.
    """
    if callable(name):  # @live_file without parentheses
        return live_file(name.__name__, limit=limit)(name)
    if read is None and write is None and open is None:

        def decorate(fn: Callable[[], Any]) -> LiveFile:
            return live_file(name or fn.__name__, read=fn, limit=limit)

        return decorate
    if name is None:
        raise TypeError("live_file needs a name: images record it to re-attach the file")
    spec = LiveFile(name, read, write, open, limit)
    REGISTRY[name] = spec
    return spec


def live_dir(
    name: str | Callable | None = None,
    *,
    list: Callable[[], Mapping[str, Any]] | None = None,
    limit: float = LIMIT,
) -> Any:
    """Declare a live directory: ``list()`` returns a mapping of entry name → content (bytes,
    str, or a function returning them), computed when the directory is opened or a missing name
    is looked up. Entries are files whose content is computed again at each open."""
    if callable(name):
        return live_dir(name.__name__, list=name, limit=limit)
    if list is None:

        def decorate(fn: Callable[[], Mapping[str, Any]]) -> LiveDir:
            return live_dir(name or fn.__name__, list=fn, limit=limit)

        return decorate
    if name is None:
        raise TypeError("live_dir needs a name")
    spec = LiveDir(name, list, limit)
    REGISTRY[name] = spec
    return spec


def attach(fs: Filesystem, registry: Mapping[str, LiveFile | LiveDir] | None = None) -> list[str]:
    """Bind every inode recorded as live (by name) to its declaration; returns the names bound.

    A recorded name nobody declared stays an ordinary file (one log line says so).
    """
    registry = REGISTRY if registry is None else registry
    bound = []
    for inode in list(fs.inodes.values()):
        raw = (inode.xattrs or {}).get(LIVE_XATTR)
        if raw is None:
            continue
        name = raw.decode("utf-8", "replace")
        spec = registry.get(name)
        if spec is None or isinstance(spec, LiveDir) != inode.is_dir():
            log.warning("live file %r has no declaration here: it stays an ordinary file", name)
            continue
        spec.bind(fs, inode)
        bound.append(name)
    return bound


# ----------------------------------------------------------------- running a live function for a request


class _Timeout(Exception):
    pass


# Line-by-line checks cost several times the traced code's own time, so the standard library and
# installed packages (this one included) are checked only when they call a function; code from
# scripts and from /py/run is checked at every line, which is what stops a `while True: pass`.
# (This file's directory is the package's: in a subpackage it would trust only that subpackage.)
_TRUSTED_PREFIXES = (os.path.dirname(os.__file__), os.path.dirname(__file__))


def _limited(fn: Callable, args: tuple, limit: float) -> Any:
    """Call ``fn`` and stop it (raise in its Python code) past ``limit`` seconds."""
    deadline = time.monotonic() + limit
    clock = time.monotonic
    trusted = _TRUSTED_PREFIXES

    def line(frame: Any, event: str, arg: Any) -> Any:
        if clock() > deadline:
            raise _Timeout(f"stopped after {limit:g} s")
        return line

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if clock() > deadline:
            raise _Timeout(f"stopped after {limit:g} s")
        return None if frame.f_code.co_filename.startswith(trusted) else line

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        return fn(*args)
    finally:
        sys.settrace(old)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Caller:
    """Runs a live function for a request: limit, context, async, errors → OSError."""

    def __init__(self, label: str, limit: float, fs: Filesystem) -> None:
        self.label = label
        self.limit = limit
        self.fs = fs  # what the function changes there, the guest did not change itself

    def call(
        self, ctx: LiveContext, what: str, fn: Callable, *args: Any, then: Callable[[Any], Any] | None = None
    ) -> Any:
        """The result of ``then(fn(*args))``, or, if ``fn`` is async, a future of it."""
        token = _context.set(ctx)
        try:
            with self.fs.outside():
                result = _limited(fn, args, self.limit)
            if inspect.isawaitable(result):
                return self._schedule(what, result, then)
        except OSError:
            raise
        except BaseException as exc:  # noqa: BLE001 - a live function's bug is the guest's EIO
            raise self._failed(what, exc) from None
        finally:
            _context.reset(token)
        return then(result) if then is not None else result

    def _failed(self, what: str, exc: BaseException) -> OSError:
        if isinstance(exc, OSError) and exc.errno:
            return exc
        log.error("live file %s: %s function failed: %s", self.label, what, _describe(exc))
        return OSError(errno.EIO, f"live file {self.label}: {what} failed")

    def _schedule(self, what: str, awaitable: Any, then: Callable[[Any], Any] | None) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            try:
                loop = asyncio.get_event_loop()
            except RuntimeError:
                raise self._failed(what, RuntimeError("an async live function needs an event loop")) from None

        async def run() -> Any:
            try:
                # (the guest's own requests meanwhile count too: a drop too many, never one too few)
                with self.fs.outside():
                    result = await asyncio.wait_for(awaitable, self.limit)
            except OSError:
                raise
            except BaseException as exc:  # noqa: BLE001 - as in call(): the guest's EIO
                raise self._failed(what, exc) from None
            return then(result) if then is not None else result

        return asyncio.ensure_future(run(), loop=loop)


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


class _LiveFileBackend:
    """The server's view of a live file: ``open`` makes a per-open handle."""

    def __init__(self, spec: LiveFile, fs: Filesystem, inode: Inode) -> None:
        self.spec = spec
        self.fs = fs
        self.inode = inode
        self.caller = _Caller(spec.name or "(unnamed)", spec.limit, fs)
        self.last: bytes | None = None

    def _ctx(self, server: Any, cred: Cred) -> LiveContext:
        return LiveContext(server, self.fs, cred, self.inode)

    def observed(self, data: bytes) -> bytes:
        """Keep the newest snapshot as the inode's data: getattr then tells its size and when it
        changed, and a saved image or state holds it (what the file shows without its script)."""
        inode = self.inode
        if data != self.last or inode.size != len(data):  # (an O_TRUNC may have emptied the copy)
            self.last = data
            inode.backend = None  # the filesystem's own data path, not this backend
            try:
                self.fs.truncate(inode, 0)
                self.fs.write(inode, 0, data)
            finally:
                inode.backend = self
        else:
            inode.atime = self.fs.clock()
        return data

    def open(self, server: Any, cred: Cred, flags: int) -> _LiveHandle:
        acc = flags & O_ACCMODE
        writing = acc in (O_WRONLY, O_RDWR)
        if writing and not self.spec.writable:
            raise fail(errno.EACCES, f"live file {self.caller.label} is read-only")
        return _LiveHandle(self, self._ctx(server, cred), flags)

    # The filesystem's own hooks (page-side readFile/writeFile): one snapshot per call.
    def snapshot(self) -> bytes:
        if self.spec.read is None:
            return b""
        result = self.caller.call(self._ctx(None, ROOT), "read", self.spec.read)
        if asyncio.isfuture(result):  # an async function: call() scheduled it
            result.cancel()
            raise fail(errno.EAGAIN, "an async live file cannot be read synchronously")
        return self.observed(_as_bytes(result))

    def read(self, offset: int, count: int) -> bytes:
        to_end = offset + count >= self.inode.size  # the caller's size may predate this snapshot
        data = self.snapshot()
        return data[offset:] if to_end else data[offset : offset + count]

    def write(self, offset: int, data: Any) -> int:
        if self.spec.write is None:
            raise fail(errno.EACCES)
        self.caller.call(self._ctx(None, ROOT), "write", self.spec.write, bytes(data))
        return len(data)

    def refresh(self, server: Any) -> None:
        pass


class _LiveHandle:
    """One open of a live file."""

    def __init__(self, backend: _LiveFileBackend, ctx: LiveContext, flags: int) -> None:
        self.backend = backend
        self.ctx = ctx
        self.flags = flags
        self.data: bytes | bytearray = b""
        self.dirty = False
        self.stream: Any = None
        self.closed = False

    def start(self) -> Any:
        spec, caller = self.backend.spec, self.backend.caller
        if spec.open is not None:

            def keep(obj: Any) -> None:
                self.stream = obj

            return caller.call(self.ctx, "open", spec.open, self.flags, then=keep)
        acc = self.flags & O_ACCMODE
        if acc == O_WRONLY or spec.read is None:
            self.data = bytearray()
            if acc != O_RDONLY:
                self.dirty = True  # an open for writing commits even if nothing is written
            return None

        def keep_data(value: Any) -> None:
            data = self.backend.observed(_as_bytes(value))
            self.data = bytearray(data) if acc == O_RDWR else data

        return caller.call(self.ctx, "read", spec.read, then=keep_data)

    def read(self, offset: int, count: int) -> bytes:
        if self.stream is not None:
            return _as_bytes(self.backend.caller.call(self.ctx, "read", self.stream.read, count))
        return bytes(self.data[offset : offset + count])

    def write(self, offset: int, data: Any) -> int:
        if self.stream is not None:
            n = self.backend.caller.call(self.ctx, "write", self.stream.write, bytes(data))
            return len(data) if n is None else int(n)
        buf = self.data if isinstance(self.data, bytearray) else bytearray(self.data)
        if self.flags & O_APPEND:
            offset = len(buf)
        end = offset + len(data)
        if len(buf) < offset:
            buf.extend(bytes(offset - len(buf)))
        buf[offset:end] = data
        self.data = buf
        self.dirty = True
        return len(data)

    def _commit(self) -> Any:
        spec = self.backend.spec
        if not self.dirty or spec.write is None:
            return None
        self.dirty = False
        data = bytes(self.data)

        def wrote(_: Any) -> None:
            inode = self.backend.inode
            inode.mtime = inode.ctime = self.backend.fs.clock()

        return self.backend.caller.call(self.ctx, "write", spec.write, data, then=wrote)

    def fsync(self) -> Any:
        if self.stream is not None:
            return None
        return self._commit()

    def close(self) -> Any:
        self.closed = True
        if self.stream is not None:
            close = getattr(self.stream, "close", None)
            self.stream = None
            if close is not None:
                return self.backend.caller.call(self.ctx, "close", close)
            return None
        return self._commit()

    def discard(self) -> None:
        self.closed = True
        close = getattr(self.stream, "close", None)
        self.stream = None
        if close is not None:
            with contextlib.suppress(Exception):
                self.backend.caller.call(self.ctx, "close", close)


class _LiveDirBackend:
    """A live directory: its entries are materialized from ``list()`` when it is opened or a
    missing name is looked up; each entry is a live file reading its value at open."""

    def __init__(self, spec: LiveDir, fs: Filesystem, inode: Inode) -> None:
        self.spec = spec
        self.fs = fs
        self.inode = inode
        self.caller = _Caller(spec.name or "(unnamed)", spec.limit, fs)

    def listing(self, server: Any = None) -> Mapping[str, Any]:
        ctx = LiveContext(server, self.fs, ROOT, self.inode)
        result = self.caller.call(ctx, "list", self.spec.list)
        if asyncio.isfuture(result):  # an async function: call() scheduled it
            result.cancel()
            raise fail(errno.EIO, "a live directory's list function must be synchronous")
        return dict(result)

    def refresh(self, server: Any) -> None:
        with self.fs.outside():  # names came or went: a caching guest must look again
            self._refresh(server)

    def _refresh(self, server: Any) -> None:
        listing = self.listing(server)
        fs, directory = self.fs, self.inode
        entries = directory.entries
        assert entries is not None
        for name, old in list(entries.items()):
            if name not in listing:
                fs.unlink(directory, name, ROOT, rmdir=old.is_dir())
        for name in listing:
            try:
                fs.check_name(name)
            except OSError:
                log.error("live directory %s: bad entry name %r skipped", self.caller.label, name)
                continue
            child = entries.get(name)
            if child is None:
                child = fs.create(directory, name, 0o444, ROOT, 0)
                child.uid, child.gid = directory.uid, directory.gid
            if child.is_reg() and not isinstance(child.backend, _LiveFileBackend):
                LiveFile(None, read=self._entry_reader(name), limit=self.spec.limit).bind(fs, child)

    def _entry_reader(self, name: str) -> Callable[[], Any]:
        def read() -> Any:
            ctx = _context.get()
            listing = self.listing(ctx.server if ctx else None)
            if name not in listing:
                raise fail(errno.ENOENT, name)
            value = listing[name]
            return value() if callable(value) else value

        return read

    def open(self, server: Any, cred: Cred, flags: int) -> _DirHandle:
        self.refresh(server)
        return _DirHandle()


class _DirHandle:
    def start(self) -> None:
        return None

    def read(self, offset: int, count: int) -> bytes:
        raise fail(errno.EISDIR)

    def write(self, offset: int, data: Any) -> int:
        raise fail(errno.EISDIR)

    def fsync(self) -> None:
        return None

    def close(self) -> None:
        return None

    def discard(self) -> None:
        pass


__all__ = [
    "LIMIT",
    "LIVE_XATTR",
    "REGISTRY",
    "LiveContext",
    "LiveDir",
    "LiveFile",
    "attach",
    "context",
    "live_dir",
    "live_file",
]
