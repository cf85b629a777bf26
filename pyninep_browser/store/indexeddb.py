"""The IndexedDB store: the page's database (web/pyninep-idb.js) seen through the Store interface.

The JS side opens the database, takes the Web Lock and reads all of "meta" (and the chunk keys)
before this object is made, so ``load_meta`` is synchronous like every store's. Chunk reads and
commits answer later: JS calls the ``done`` callback when IndexedDB's request or transaction
finishes. Nothing here imports ``js`` or ``pyodide`` at module import time, so the package (and
this module) import on CPython; the conversions are imported on first use, inside Pyodide.
"""

from __future__ import annotations

import errno
import struct
import sys
from array import array
from collections.abc import Callable
from itertools import accumulate, pairwise
from typing import Any

from .base import Batch, Store

# JS reports Linux's numbers (what the guest sees); Python's errno module is the host's (in
# Pyodide, Emscripten's musl numbers, which differ), and the filesystem compares against it.
_COUNTS = struct.Struct("<II")  # unpack: how many meta records and chunk keys
_FROM_LINUX = {28: errno.ENOSPC, 5: errno.EIO}


def _host_errno(linux: Any) -> int:
    return _FROM_LINUX.get(int(linux), errno.EIO)


class IndexedDBStore(Store):
    """``db`` is the object ``openIndexedDB`` (web/pyninep-idb.js) resolves to."""

    asynchronous = True

    def __init__(self, db: Any) -> None:
        from pyodide.ffi import create_once_callable, to_js

        self._db = db
        self._to_js = to_js
        self._once = create_once_callable
        self.name = str(db.name)
        packed = db.packed()
        meta, chunk_keys = unpack(packed.to_bytes())
        # The preloaded copies are ours now; the JS arrays can go.
        db.meta = None
        db.chunkKeys = None
        # What the database holds, kept up to date as commits complete, so load_meta and
        # chunk_keys answer synchronously at any time (a restore replacing the content asks).
        self._meta: dict[str, bytes] = dict(meta)
        self._chunk_keys: set[str] = set(chunk_keys)

    def load_meta(self) -> list[tuple[str, bytes]]:
        return list(self._meta.items())

    def chunk_keys(self) -> list[str] | None:
        return list(self._chunk_keys)

    def _applied(self, batch: Batch) -> None:
        meta = self._meta
        for key in batch.meta_delete:
            meta.pop(key, None)
        meta.update(batch.meta_put)
        self._chunk_keys.difference_update(batch.chunk_delete)
        self._chunk_keys.update(batch.chunk_put)

    def get_chunk(self, key: str, done: Callable[[bytes | None, int], None]) -> None:
        def answered(value: Any, err: int) -> None:
            if err:
                done(None, _host_errno(err))
            else:
                done(None if value is None else value.to_bytes(), 0)

        try:
            self._db.getChunkThen(key, self._once(answered))
        except Exception:  # noqa: BLE001 - a JS error here means the database is gone
            done(None, errno.EIO)

    def commit(self, batch: Batch, durable: bool, done: Callable[[int], None]) -> None:
        to_js = self._to_js

        def committed(err: Any) -> None:
            if err:
                done(_host_errno(err))
                return
            self._applied(batch)
            done(0)

        try:
            self._db.commitThen(
                to_js(list(batch.meta_put.items())),
                to_js(list(batch.meta_delete)),
                to_js(list(batch.chunk_put.items())),
                to_js(list(batch.chunk_delete)),
                bool(durable),
                self._once(committed),
            )
        except Exception:  # noqa: BLE001 - nothing was applied; the caller keeps its changes
            done(errno.EIO)

    def estimate(self) -> tuple[int, int] | None:
        value = self._db.estimate()
        if value is None:
            return None
        usage, quota = value
        return int(usage), int(quota)

    def close(self) -> None:
        self._db.close()


def unpack(data: bytes) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The inverse of ``pack`` in web/pyninep-idb.js: (meta pairs, chunk keys)."""
    if len(data) < 8:
        raise ValueError("truncated IndexedDB preload")
    n, m = _COUNTS.unpack_from(data, 0)
    head = 8 + 4 * (2 * n + m)
    if head > len(data):
        raise ValueError("truncated IndexedDB preload")
    lengths = array("I", data[8:head])
    if sys.byteorder != "little":
        lengths.byteswap()
    ends = list(accumulate(lengths, initial=head))
    if ends[-1] != len(data):
        raise ValueError("truncated IndexedDB preload")
    fields = [data[a:b] for a, b in pairwise(ends)]  # meta keys, meta values, chunk keys
    keys = [str(k, "utf-8") for k in fields[:n]]
    return list(zip(keys, fields[n : 2 * n], strict=True)), [str(k, "utf-8") for k in fields[2 * n :]]
