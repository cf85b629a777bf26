"""Pyodide glue used by ``web/pyninep.js``: the only module that imports ``js``/``pyodide``.

It stays thin: one :class:`PageServer` wraps a :class:`~pyninep_browser.server.Server` and converts
at the JS boundary (a Uint8Array in, bytes out). Everything it does is available, and tested, on
CPython through the classes it wraps.
"""

from __future__ import annotations

import json
from typing import Any

from pyodide.ffi import JsProxy, to_js  # type: ignore[import-not-found]

import io

from . import authoring, snapshot
from .archive import export_tar, import_tar
from .fs import Filesystem
from .imagefile import load_image
from .server import Server


# Frames cross through two preallocated buffers that JS sees as views into wasm memory: JS copies
# a request in, Python copies the reply out, and nothing crosses as a value: the call takes no
# arguments and returns None, because converting even one int each way costs as much as the rest
# of a small request (bench/crossing.mjs). Both frames carry their own size in their first four
# bytes; a reply size of 0 means the reply is deferred.
SLACK = 64 * 1024  # transports may hand over a little more than the 9P size field
_DEFERRED = bytes(4)


class PageServer:
    """One 9P session for the page's v86, plus state and file access for the page's scripts."""

    def __init__(self, image: Any = None, on_reply: Any = None, script: Any = None,
                 build: bool = False) -> None:
        fs = load_image(_bytes(image)) if image is not None else Filesystem()
        if script is not None:
            # An authoring script: its module-level live declarations register (attached below,
            # and again after a restore); asked to, its build(tree) authors the tree.
            module = authoring.load_script(source=str(script), name="pyninep_page_script")
            if build:
                if not callable(getattr(module, "build", None)):
                    raise ValueError("the page's script defines no build(tree) function")
                module.build(authoring.Tree(fs))
        self._on_reply = on_reply
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
            self.reply_buffer[:len(reply)] = reply  # replies fit msize, which the buffer exceeds

    def _attach(self, server: Server) -> Server:
        # Live files are recorded by name: bind them to what the page's script declared.
        authoring.attach(server.fs)
        server.enable_stats()  # /py/stats reads these counters
        if self._on_reply is not None:
            js_reply = self._on_reply
            server.on_reply = lambda frame: js_reply(to_js(frame))
        return server

    def handle(self, frame: Any) -> bytes | None:
        return self.server.handle(_bytes(frame))

    def save_state(self) -> bytes:
        return snapshot.save(self.server)

    def restore_state(self, data: Any) -> None:
        self.server = self._attach(snapshot.restore(_bytes(data)))

    def read_file(self, path: str) -> bytes:
        return self.server.fs.read_file(path)

    def write_file(self, path: str, data: Any, mode: int = 0o644) -> None:
        self.server.fs.write_file(path, _bytes(data), mode=mode)

    def export_tar(self, top: str = "/") -> bytes:
        out = io.BytesIO()
        export_tar(self.server.fs, out, top)
        return out.getvalue()

    def import_tar(self, data: Any, directory: str = "/") -> int:
        return import_tar(authoring.Tree(self.server.fs), io.BytesIO(_bytes(data)), directory)


    # The page's file browser (web/app.js). Paths are absolute paths of the served tree.

    def list_dir(self, path: str) -> str:
        """JSON ``[[name, kind, size, mtime_ms], …]`` of a directory, kind one of d f l o."""
        fs = self.server.fs
        out = []
        for name in fs.listdir(path):
            inode = fs.resolve(path.rstrip("/") + "/" + name, follow=False)
            kind = "d" if inode.is_dir() else "f" if inode.is_reg() else \
                "l" if inode.target is not None else "o"
            out.append([name, kind, inode.size, inode.mtime // 1_000_000])
        return json.dumps(out)

    def make_dir(self, path: str) -> None:
        self.server.fs.makedirs(path)

    def remove_tree(self, path: str) -> None:
        """Remove a file, or a directory with everything in it (like ``rm -r``)."""
        fs = self.server.fs
        if path.strip("/") == "":
            raise ValueError("refusing to remove the root directory")
        inode = fs.resolve(path, follow=False)
        if inode.is_dir():
            for name in fs.listdir(path):
                self.remove_tree(path.rstrip("/") + "/" + name)
        fs.remove(path)


def _bytes(value: Any) -> bytes:
    if isinstance(value, JsProxy):
        return value.to_bytes()
    return bytes(value)
