"""Persistence: a filesystem kept in a store, its data loaded lazily and written back in batches.

The filesystem stays an in-memory structure; a store (``pyninep_browser.store``) keeps a copy that
survives the process. Metadata (inodes, directory entries) is loaded whole at open; data chunks
load on first use and are evicted again past ``cache_bytes``. The parts, each its own file:

- ``records``: the record format every store holds (inodes, entries, the superblock)
- ``check``: opening a store: records read, checked and repaired
- ``commit``: commits in order, write-behind, fsync
- ``chunks``: the chunk cache and loads (``ChunksNeeded`` for an asynchronous store)

This module joins them, and holds adopting a store and closing it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from .check import StoreCheck
from .chunks import ChunkCache, ChunksNeeded
from .commit import Commits
from .constants import _fail
from .inode import Inode
from .records import FORMAT, decode_inode, encode_inode

DEFAULT_CACHE_BYTES = 64 << 20  # what a page can spare; a CPython host may pass more
DEFAULT_WRITEBACK_MS = 800  # plus one tick interval (the page ticks every 100 ms): under 1 s


class Persistence(StoreCheck, Commits, ChunkCache):
    """The store half of :class:`Filesystem`: open, check, persist, chunk cache, write-behind."""

    inodes: dict[int, Inode]
    dirty: set[int]
    root: Inode
    base_keys: Callable[[], set[str]]  # fs/base.py's

    def _init_persistence(self, store, cache_bytes: int, writeback_ms: int) -> None:
        self.store = store
        self.cache_bytes = cache_bytes
        self.writeback_ms = writeback_ms
        self.dirty_chunks: set[tuple[int, int]] = set()
        self.repairs: list[str] = []  # what the open-time check found and repaired
        self.generation = 0  # commits the store holds (kept in the superblock)
        self._lru: OrderedDict[tuple[int, int], int] = OrderedDict()  # clean loaded chunks, their cost
        self._lru_bytes = 0  # (fs/chunks.py)
        self._extra_meta_delete: set[str] = set()
        self._extra_chunk_delete: set[str] = set()
        self._waiters: list[tuple[bool, Callable[[int], None] | None]] = []
        self._inflight = False
        self._inflight_chunks: set[tuple[int, int]] = set()
        self._undurable = False  # a non-durable commit happened since the last durable one
        self._dirty_since: int | None = None
        # Write-behind waits until this time (tick's clock, ms): a restore that commits later.
        self.writeback_hold_until = 0.0
        self._store_limit = float("inf")  # used_bytes past which the store would be full

    def adopt_store(
        self,
        store,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        writeback_ms: int = DEFAULT_WRITEBACK_MS,
        generation: int = 0,
    ) -> None:
        """Keep this filesystem in ``store`` from now on, replacing whatever the store held; the
        replacement is one commit (the next persist: nothing changes in the store before it, and
        a crash before it leaves the old content whole). Chunks this filesystem has not loaded
        (lengths in its chunk maps: a state saved with ``stored=True``) are taken to be in the
        store already and kept there; every other stored chunk is replaced or deleted."""
        old = store.load_meta()
        listed = store.chunk_keys()
        self._init_persistence(store, cache_bytes, writeback_ms)
        self.generation = generation
        if listed is None:
            listed = []
            for key, raw in old:
                if key.startswith("i:"):
                    try:
                        inode, _ = decode_inode(int(key[2:]), raw)
                    except (ValueError, KeyError, TypeError):
                        continue
                    listed += [f"{inode.ino}:{ci}" for ci in inode.chunks or ()]
        self._extra_meta_delete = {k for k, _ in old}
        kept = {
            f"{ino}:{ci}"
            for ino, inode in self.inodes.items()
            if inode.chunks
            for ci, c in inode.chunks.items()
            if type(c) is int
        }
        kept.update(self.base_keys())  # fetched base pieces the new tree still reads
        self._extra_chunk_delete = set(listed) - kept
        for ino, inode in self.inodes.items():
            self.dirty.add(ino)
            if inode.chunks:
                self.dirty_chunks.update((ino, ci) for ci, c in inode.chunks.items() if type(c) is not int)
            if inode.entries is not None:
                inode.entries.changed = {seq for _, (seq, _) in inode.entries.by_name.items()}
        self._refresh_room()

    def close(self) -> None:
        """Commit everything durably (synchronous stores) and close the store."""
        if self.store is None:
            return
        result: list[int] = []
        self.persist(True, result.append)
        if not self.store.asynchronous and result and result[0]:
            raise _fail(result[0], "committing to the store")
        self.store.close()


__all__ = [
    "Persistence",
    "ChunksNeeded",
    "FORMAT",
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_WRITEBACK_MS",
    "encode_inode",
    "decode_inode",
]
