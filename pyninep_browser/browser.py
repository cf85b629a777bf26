"""Pyodide glue used by ``web/pyninep.js``: the only module that imports ``js``/``pyodide``.

It stays thin: one :class:`PageServer` wraps a :class:`~pyninep_browser.server.Server` and converts
at the JS boundary (a Uint8Array in, bytes out). Everything it does is available, and tested, on
CPython through the classes it wraps.
"""

from __future__ import annotations

import errno
import io
import json
import time
from collections.abc import Callable
from typing import Any

from pyodide.ffi import JsProxy, to_js

from . import authoring, snapshot
from .archive import export_tar, import_tar
from .fs import ChunksNeeded, Filesystem
from .fs.image import load_image
from .protocol import linux_errno
from .server import Server

# Frames cross through two preallocated buffers that JS sees as views into wasm memory: JS copies
# a request in, Python copies the reply out, and nothing crosses as a value: the call takes no
# arguments and returns None, because converting even one int each way costs as much as the rest
# of a small request (bench/crossing.mjs). Both frames carry their own size in their first four
# bytes; a reply size of 0 means the reply is deferred.
SLACK = 64 * 1024  # transports may hand over a little more than the 9P size field
_DEFERRED = bytes(4)
LATER_COMMIT_MS = 10_000  # restore_state(later=True): the store commit waits at most this for flush()


class PageServer:
    """One 9P session for the page's v86, plus state and file access for the page's scripts."""

    def __init__(
        self,
        image: Any = None,
        on_reply: Any = None,
        db: Any = None,
        config: Any = None,
        script: Any = None,
        build: bool = False,
        base: Any = None,
        base_source: Any = None,
        on_outside_change: Any = None,
    ) -> None:
        config = dict(config or {})
        # Called when the files change other than by the guest's own requests (the page's calls,
        # a live file's Python): the page has a caching guest drop its caches.
        self._on_outside_change = on_outside_change
        self.store = None
        self.open_report = None
        # A base image (v86's fs2json): ``base`` is its fs.json, the tree a new filesystem
        # starts as; ``base_source`` (a JsSource) fetches content files from the baseurl.
        self.base_source = base_source
        if base is not None:
            from .fs2json import load_fs2json

            doc = _bytes(base)
            image = None
        if db is not None:
            from .store.indexeddb import IndexedDBStore

            self.store = IndexedDBStore(db)
            held = bool(self.store.load_meta())
            if base is not None and not held:
                fs = load_fs2json(doc, **_store_options(config))
                fs.adopt_store(self.store, **_store_options(config))
                _fit_quota(fs, self.store)
            else:
                fs = _open_stored(self.store, None if image is None else _bytes(image), config)
            self.open_report = {
                "repairs": list(getattr(fs, "repairs", [])),
                "inodes": len(fs.inodes),
                "bytes": fs.used_bytes,
                # False: the database held no filesystem (a first visit, or one the browser
                # discarded): a machine's files may seed it. True: its files are the truth.
                "held": held,
            }
        elif base is not None:
            fs = load_fs2json(doc)
        else:
            fs = load_image(_bytes(image)) if image is not None else Filesystem()
        # The site's own live files under /py (pyninep_browser/default_image.py) are declared
        # whatever the script: a site built from a user's script keeps them (image build runs
        # default_image first), and the script's own declarations, registered next, win a name.
        import pyninep_browser.default_image  # noqa: F401

        if script is not None:
            # An authoring script: its module-level live declarations register (attached below,
            # and again after a restore); asked to, its build(tree) authors a new tree (a
            # database that already holds one is left as it is).
            module = authoring.load_script(source=str(script), name="pyninep_page_script")
            if build and len(fs.inodes) <= 1:
                if not callable(getattr(module, "build", None)):
                    raise ValueError("the page's script defines no build(tree) function")
                module.build(authoring.Tree(fs))
        self._on_reply = on_reply
        self._store_options = _store_options(config)
        self.server = self._attach(Server(fs))
        size = self.server.max_msize + SLACK
        self.request_buffer = bytearray(size)  # never resized: JS holds views of both
        self.reply_buffer = bytearray(size)

    def handle_shared(self) -> None:
        """Answer the request frame at the start of ``request_buffer`` (JS checked that its size
        field fits the buffer); the reply frame goes to the start of ``reply_buffer``."""
        request = self.request_buffer
        reply = self.server.handle_buffer(request, len(request))
        if reply is None:
            self.reply_buffer[:4] = _DEFERRED
        else:
            self.reply_buffer[: len(reply)] = reply  # replies fit msize, which the buffer exceeds

    def _attach(self, server: Server) -> Server:
        # Live files are recorded by name: bind them to what the page's script declared.
        authoring.attach(server.fs)
        if self.base_source is not None:  # a restored state's base files read from it too
            server.fs.base_source = self.base_source
        server.enable_stats()  # /py/stats reads these counters
        server.fs.on_outside_change = self._on_outside_change
        if self._on_reply is not None:
            js_reply = self._on_reply
            server.on_reply = lambda frame: js_reply(to_js(frame))
        return server

    def handle(self, frame: Any) -> bytes | None:
        return self.server.handle(_bytes(frame))

    def save_state(self) -> bytes:
        return snapshot.save(self.server)

    def save_state_async(self, stored: bool, done: Any) -> None:
        """done(state, 0). A complete state holds every file's data, so a stored filesystem
        first loads the chunks that are not in memory (the state is taken in the same turn
        they arrive). ``stored``: a small state that builds on the database as it is after a
        durable commit of everything (restorable only with that database, unchanged)."""
        fs = self.server.fs
        stored = bool(stored) and fs.store is not None

        def take(err: int) -> None:
            if err:
                done(None, linux_errno(err))
                return
            try:
                state = snapshot.save(self.server, stored=stored)
            except (OSError, snapshot.SnapshotError) as exc:
                done(None, linux_errno(getattr(exc, "errno", None)))
                return
            done(state, 0)

        if stored:
            fs.persist(True, take)
            return
        missing = fs.missing_chunks() if fs.store is not None else []
        if missing:
            fs.load_chunks(missing, take)
        else:
            take(0)

    def restore_state(self, data: Any, later: bool = False, done: Any = None) -> None:
        """Replace the server with the saved one. A stored filesystem's database is replaced
        too, in one durable commit; done(None, 0) once it is. With ``later``, done(None, 0) as
        soon as the server is replaced; that commit comes at the page's next flush() (or a
        guest's fsync), else by write-behind once LATER_COMMIT_MS have passed: a new visitor's
        store is seeded after the prompt instead of before it (until then a reload finds the
        store empty, as before the restore). A refused state raises SnapshotError and changes
        nothing."""
        server = snapshot.restore(
            _bytes(data), store=self.store, **(self._store_options if self.store is not None else {})
        )
        self.server = self._attach(server)
        server.resume()  # requests deferred at save time get their answers now
        if done is None:
            return
        if later:
            server.fs.writeback_hold_until = time.time() * 1000 + LATER_COMMIT_MS  # Date.now()
            done(None, 0)
        else:
            self.flush(done)

    def save_session_async(self, done: Any) -> None:
        """done(state, 0): the 9P session alone (no file: they are in the store), taken right
        after a durable commit of everything changed so far, so every inode a fid holds is in
        the store the session will be restored over."""

        def take(err: int) -> None:
            if err:
                done(None, linux_errno(err))
                return
            done(snapshot.save_session(self.server), 0)

        self.flush(lambda _r, e: take(e))

    def restore_session(self, data: Any, done: Any) -> None:
        """Keep the files (the store is the truth) and put back a saved session over them (a
        session state, or the session of a complete state): done(report JSON, 0); ESTALE when
        the state belongs to another filesystem, EINVAL when it is not intact (nothing changed)."""
        try:
            server, report = snapshot.restore_session(_bytes(data), self.server.fs)
        except snapshot.ForeignFilesystem:
            done(None, linux_errno(errno.ESTALE))
            return
        except snapshot.SnapshotError:
            done(None, linux_errno(errno.EINVAL))
            return
        old = self.server
        old.reset()  # a fresh page's server has no fids yet; nothing the guest holds is lost
        self.server = self._attach(server)
        server.resume()
        done(json.dumps(report), 0)

    def read_file(self, path: str) -> bytes:
        return self.server.fs.read_file(path)

    def write_file(self, path: str, data: Any, mode: int = 0o644) -> None:
        with self.server.fs.outside():
            self.server.fs.write_file(path, _bytes(data), mode=mode)

    def export_tar(self, top: str = "/") -> bytes:
        # Bytes read through the filesystem (a stored one's chunks must be loaded: see below).
        out = io.BytesIO()
        export_tar(self.server.fs, out, top)
        return out.getvalue()

    def export_tar_async(self, top: str, done: Any) -> None:
        self._with_chunks(lambda: self.export_tar(str(top)), done)

    def import_tar(self, data: Any, directory: str = "/") -> int:
        with self.server.fs.outside():
            return import_tar(authoring.Tree(self.server.fs), io.BytesIO(_bytes(data)), directory)

    def import_tar_async(self, data: Any, directory: str, done: Any) -> None:
        data = _bytes(data)
        self._committed(lambda: self.import_tar(data, str(directory)), done)

    # ---- the page's asynchronous calls: each answers through done(result, errno) exactly once

    def _with_chunks(self, operation: Callable[[], Any], done: Any) -> None:
        """Run ``operation``; when it needs file data the store has not delivered yet, load it
        and run it again. ``done(result, 0)`` or ``done(None, linux errno)``, exactly once."""
        try:
            result = operation()
        except ChunksNeeded as exc:

            def loaded(err: int) -> None:
                if err:
                    done(None, linux_errno(err))
                else:
                    self._with_chunks(operation, done)

            self.server.fs.load_chunks(exc.keys, loaded)
            return
        except OSError as exc:
            done(None, linux_errno(exc.errno))
            return
        done(result, 0)

    def _committed(self, operation: Callable[[], Any], done: Any) -> None:
        """``_with_chunks(operation)``, answered only after the commit that holds its changes."""

        def ran(result: Any, err: int) -> None:
            if err:
                done(None, err)
            else:
                self.flush(lambda _r, e: done(None if e else result, e))

        self._with_chunks(operation, ran)

    def read_file_async(self, path: str, done: Any) -> None:
        self._with_chunks(lambda: self.read_file(str(path)), done)

    def write_file_async(self, path: str, data: Any, done: Any) -> None:
        data = _bytes(data)
        self._committed(lambda: self.write_file(str(path), data), done)

    def flush(self, done: Any) -> None:
        """done(None, 0) once everything changed so far is durably committed (warm base pieces
        a restored machine brought are stored after it)."""
        self.server.fs.writeback_hold_until = 0.0
        flush_store = getattr(self.server, "flush_store", None)
        if flush_store is None:
            done(None, 0)
            return

        def flushed(err: int) -> None:
            if not err:
                self.server.fs.store_warm_pieces()
            done(None, linux_errno(err) if err else 0)

        flush_store(flushed)

    def base_pieces_held(self) -> str:
        """JSON: the keys of the base pieces in memory (what the guest has read of the base)."""
        return json.dumps(self.server.fs.base_pieces_held())

    def export_base_pieces(self, keys: str) -> bytes:
        """The pieces ``keys`` (JSON list) names, as one blob for :meth:`warm_base`."""
        return self.server.fs.export_base_pieces(json.loads(keys))

    def warm_base(self, data: Any) -> int:
        """Base pieces shipped with a saved machine (export_base_pieces), into memory: the
        restored guest's first reads need no fetch. Stored at the next flush()."""
        return self.server.fs.warm_base_pieces(_bytes(data))

    def tick(self, now_ms: float) -> None:
        """The page's timer: commit write-behind changes older than the bound."""
        tick = getattr(self.server, "tick", None)
        if tick is not None:
            tick(now_ms)

    def base_progress(self) -> str:
        """JSON: base files fetched, bytes, fetches under way, failures and the last error."""
        return json.dumps(self.server.fs.base_stats)

    def changes(self) -> int:
        """How many changes the filesystem has seen (any operation, the guest's or the page's):
        a page compares it with the last value it showed to know when to look again."""
        return self.server.fs.changes

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    # The page's file browser (web/page/files.js). Paths are absolute paths of the served tree.

    def list_dir(self, path: str) -> str:
        """JSON ``[[name, kind, size, mtime_ms], …]`` of a directory, kind one of d f l o."""
        fs = self.server.fs
        out = []
        for name in fs.listdir(path):
            inode = fs.resolve(path.rstrip("/") + "/" + name, follow=False)
            kind = (
                "d" if inode.is_dir() else "f" if inode.is_reg() else "l" if inode.target is not None else "o"
            )
            out.append([name, kind, inode.size, inode.mtime // 1_000_000])
        return json.dumps(out)

    def make_dir(self, path: str) -> None:
        with self.server.fs.outside():
            self.server.fs.makedirs(path)

    def remove_tree(self, path: str) -> None:
        """Remove a file, or a directory with everything in it (like ``rm -r``)."""
        with self.server.fs.outside():
            self._remove_tree(path)

    def _remove_tree(self, path: str) -> None:
        fs = self.server.fs
        if path.strip("/") == "":
            raise ValueError("refusing to remove the root directory")
        inode = fs.resolve(path, follow=False)
        if inode.is_dir():
            for name in fs.listdir(path):
                self._remove_tree(path.rstrip("/") + "/" + name)
        fs.remove(path)


def _store_options(config: dict) -> dict:
    options = {}
    if config.get("chunk_cache_bytes"):
        options["cache_bytes"] = int(config["chunk_cache_bytes"])
    if config.get("writeback_ms") is not None:
        options["writeback_ms"] = int(config["writeback_ms"])
    return options


def _open_stored(store: Any, image: bytes | None, config: dict) -> Filesystem:
    """The filesystem kept in ``store``; a new (empty) store starts as a copy of ``image``."""
    options = _store_options(config)
    fs = Filesystem(store=store, **options) if image is None else load_image(image, store=store, **options)
    _fit_quota(fs, store)
    return fs


def _fit_quota(fs: Filesystem, store: Any) -> None:
    # The browser's quota (capped by the page's quota option) is the disk's size: the
    # Filesystem's own default (1 GiB) would stop a page whose browser grants it 10 GB.
    est = store.estimate()
    if est is not None:
        fs.quota_bytes = max(fs.quota_bytes, int(est[1]))


class JsSource:
    """A base image's content files, fetched by the page (``fetchBase`` in web/pyninep.js):
    HTTP ranges where the host serves them, the whole file where it does not."""

    asynchronous = True

    def __init__(self, fetch: Any, url: str) -> None:
        from pyodide.ffi import create_once_callable

        self._fetch = fetch
        self._once = create_once_callable
        self.url = url if url.endswith("/") else url + "/"
        self.location = self.url

    def fetch(
        self, name: str, start: int, end: int | None, done: Callable[[Any, bool, str | None], None]
    ) -> None:
        def answered(error: Any, data: Any, whole: Any) -> None:
            if error:
                done(None, False, str(error))
            else:
                done(data.to_bytes(), bool(whole), None)

        self._fetch(self.url + name, start, -1 if end is None else end, self._once(answered))


def _bytes(value: Any) -> bytes:
    if isinstance(value, JsProxy):
        return value.to_bytes()
    return bytes(value)
