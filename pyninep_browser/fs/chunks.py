"""The chunk cache: file data loaded from the store on first use, and evicted again.

An inode's chunk map holds either the chunk (a ``bytearray``) or, while it is not loaded, its
length (an ``int``). Clean loaded chunks are kept least recently used first and evicted past
``cache_bytes``, each counted as its bytes but at least ``MIN_CHUNK_COST`` (what Python spends on
one besides them): 2,500 small files' chunks cost what they hold, not 2,500 full chunks. Dirty
and in-flight ones stay until committed. A synchronous store loads inline;
an asynchronous one (IndexedDB) raises :class:`ChunksNeeded` so the request waits and runs again.
"""

from __future__ import annotations

import errno
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, cast

from .constants import CHUNK, _fail
from .inode import Inode

log = logging.getLogger("pyninep_browser")

# What Python spends on a cached chunk besides its bytes (the bytearray object, its key tuple and
# the LRU's entry: about 200 bytes on CPython 3.11): the least a chunk counts for in the cache.
MIN_CHUNK_COST = 256


class ChunksNeeded(Exception):
    """A read or write needs data chunks an asynchronous store has not delivered yet.

    Raised before anything changed; the caller loads ``keys`` (:meth:`ChunkCache.load_chunks`)
    and runs the same operation again. Stores that answer inline never cause it.
    """

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"{len(keys)} chunk(s) not loaded")
        self.keys = keys


class ChunkCache:
    """The chunk half of :class:`~pyninep_browser.fs.persist.Persistence`."""

    store: Any
    inodes: dict[int, Inode]
    dirty_chunks: set[tuple[int, int]]
    cache_bytes: int
    _lru: OrderedDict[tuple[int, int], int]  # clean loaded chunks: what each cost when counted
    _lru_bytes: int  # their sum (a chunk that shrank or went counts until the next trim)
    _inflight_chunks: set[tuple[int, int]]
    load_base: Callable[[list[str], Callable[[int], None]], None]

    def _loaded(self, key: tuple[int, int]) -> bytearray | None:
        """Chunk ``key`` (ino, index) if it is in memory (not a length, not gone)."""
        inode = self.inodes.get(key[0])
        c = inode.chunks.get(key[1]) if inode is not None and inode.chunks else None
        return c if isinstance(c, bytearray) else None

    def _cache_full(self) -> bool:
        return self._lru_bytes > self.cache_bytes

    def _lru_add(self, key: tuple[int, int], size: int) -> None:
        """Count a clean chunk of ``size`` bytes into the cache (the most recently used), again
        if it was there: a write may have grown it."""
        lru = self._lru
        cost = max(size, MIN_CHUNK_COST)
        self._lru_bytes += cost - lru.pop(key, 0)
        lru[key] = cost

    def _ensure_chunks(self, inode: Inode, cis: Iterable[int]) -> None:
        """Make chunks ``cis`` of ``inode`` present in memory (or raise ChunksNeeded)."""
        chunks = inode.chunks
        assert chunks is not None  # a regular file's
        ino = inode.ino
        lru = self._lru
        if self._cache_full():
            cis = list(cis)
            self.trim_cache(reserve=len(cis), protect={(ino, ci) for ci in cis})
        missing = None
        for ci in cis:
            c = chunks.get(ci)
            if type(c) is int:
                if missing is None:
                    missing = []
                missing.append(f"{ino}:{ci}")
            elif c is not None and (ino, ci) in lru:
                lru.move_to_end((ino, ci))
        if missing:
            if self.store.asynchronous:
                raise ChunksNeeded(missing)
            result: list[int] = []
            self.load_chunks(missing, result.append)
            if not result or result[0]:
                raise _fail(result[0] if result else errno.EIO, "loading file data")

    def unstored_chunks(self) -> set[tuple[int, int]]:
        """(ino, index) of chunks whose content the store does not hold yet (dirty or in flight)."""
        return self.dirty_chunks | self._inflight_chunks

    def missing_chunks(self) -> list[str]:
        """Keys of every chunk not in memory (to load before a full export)."""
        return [
            f"{ino}:{ci}"
            for ino, inode in self.inodes.items()
            if inode.chunks
            for ci, c in inode.chunks.items()
            if type(c) is int
        ]

    def load_chunks(self, keys: list[str], done: Callable[[int], None]) -> None:
        """Load ``keys`` from the store into memory; ``done(0)`` or ``done(errno)`` when all
        have answered (inline for a synchronous store)."""
        base = [k for k in keys if k.startswith("b:")]
        if base:  # base pieces (fs/base.py), then the file's own chunks
            own = [k for k in keys if not k.startswith("b:")]
            self.load_base(base, lambda err: done(err) if err else self.load_chunks(own, done))
            return
        if not keys:
            done(0)
            return
        state = [len(keys), 0]

        def one(key: str) -> Callable[[bytes | None, int], None]:
            def answered(value: bytes | None, err: int) -> None:
                if not err:
                    err = self._insert_chunk(key, value)
                if err and not state[1]:
                    state[1] = err
                state[0] -= 1
                if state[0] == 0:
                    done(state[1])

            return answered

        for key in keys:
            try:
                self.store.get_chunk(key, one(key))
            except Exception:
                log.exception("store get_chunk raised")
                one(key)(None, errno.EIO)

    def _insert_chunk(self, key: str, value: bytes | None) -> int:
        ino_s, _, ci_s = key.partition(":")
        ino, ci = int(ino_s), int(ci_s)
        inode = self.inodes.get(ino)
        if inode is None or inode.chunks is None:
            return 0  # gone meanwhile: the re-run decides what that means
        c = inode.chunks.get(ci)
        if type(c) is not int:
            return 0  # loaded, rewritten or truncated meanwhile
        if value is None or len(value) != c:
            log.error(
                "store chunk %s is %s (expected %d bytes)",
                key,
                "missing" if value is None else f"{len(value)} bytes",
                c,
            )
            return errno.EIO
        inode.chunks[ci] = bytearray(value)
        self._lru_add((ino, ci), c)
        return 0

    def trim_cache(self, reserve: int = 0, protect: set | frozenset = frozenset()) -> None:
        """Evict clean chunks, least recently used first, down to 7/8 of ``cache_bytes`` (less
        room for ``reserve`` chunks about to load), never those in ``protect`` (the ones a
        request is about to use). The cache's bytes are counted afresh, in one pass over it:
        chunks change size while cached (a write, a truncate) and deleted files leave keys
        behind. Trimming an eighth below the limit keeps that pass rare while a large read
        streams through a full cache."""
        lru = self._lru
        busy = self.dirty_chunks | self._inflight_chunks
        total = 0
        for key in list(lru):
            c = self._loaded(key)
            if c is None or key in busy:
                del lru[key]  # gone or only a length; dirty or in flight: back once committed
            else:
                lru[key] = max(len(c), MIN_CHUNK_COST)
                total += lru[key]
        limit = max(0, self.cache_bytes - self.cache_bytes // 8 - reserve * CHUNK)
        kept = []
        while total > limit and lru:
            key, cost = lru.popitem(last=False)
            if key in protect:
                kept.append((key, cost))
                continue
            chunks = self.inodes[key[0]].chunks
            assert chunks is not None  # counted above: a loaded chunk
            chunks[key[1]] = len(cast(bytearray, chunks[key[1]]))
            total -= cost
        lru.update(kept)
        self._lru_bytes = total

    @property
    def cached_chunks(self) -> int:
        return len(self._lru)
