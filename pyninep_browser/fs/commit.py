"""Commits: everything changed since the last commit, as one batch, handed to the store in order.

Changes are tracked (``dirty``, ``dirty_chunks``, each directory's ``entries.changed``) and
:meth:`Commits.persist` turns them into one :class:`~pyninep_browser.store.Batch`, taken between
two requests, so the store always holds a consistent filesystem. Commits run one at a time, in
order; a failed one puts its changes back (dirty for the next one). Write-behind (:meth:`tick`)
commits, not durably, changes that are ``writeback_ms`` old; ``persist(True, done)`` is fsync.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable
from typing import Any

from .constants import CHUNK
from .inode import Inode
from .records import FORMAT, encode_entry, encode_inode

log = logging.getLogger("pyninep_browser")


class Commits:
    """The committing half of :class:`~pyninep_browser.fs.persist.Persistence`."""

    store: Any
    inodes: dict[int, Inode]
    dirty: set[int]
    dirty_chunks: set[tuple[int, int]]
    root: Inode
    fsid: int
    next_ino: int
    used_bytes: int
    generation: int
    writeback_ms: int
    cache_bytes: int
    _extra_meta_delete: set[str]
    _extra_chunk_delete: set[str]
    _waiters: list[tuple[bool, Callable[[int], None] | None]]
    _inflight: bool
    _inflight_chunks: set[tuple[int, int]]
    _undurable: bool
    _dirty_since: float | None
    writeback_hold_until: float
    _store_limit: float
    trim_cache: Callable[..., None]
    _lru_add: Callable[[tuple[int, int], int], None]
    _loaded: Callable[[tuple[int, int]], bytearray | None]
    _cache_full: Callable[..., bool]

    @property
    def commit_in_flight(self) -> bool:
        """A commit has been handed to the store and has not finished."""
        return self._inflight

    def has_changes(self) -> bool:
        return bool(self.dirty or self.dirty_chunks or self._extra_meta_delete or self._extra_chunk_delete)

    def persist(self, durable: bool, done: Callable[[int], None] | None = None) -> None:
        """Commit everything changed so far; ``done(0)`` once committed (``durable``: on disk),
        ``done(errno)`` if the commit failed (the changes stay dirty for the next one)."""
        if self.store is None:
            if done is not None:
                done(0)
            return
        self._waiters.append((durable, done))
        if not self._inflight:
            self._commit_next()

    def _commit_next(self) -> None:
        waiters, self._waiters = self._waiters, []
        durable = any(w[0] for w in waiters)
        if not self.has_changes() and not (durable and self._undurable):
            for _, done in waiters:
                if done is not None:
                    done(0)
            return
        batch, taken = self._take_batch()
        self._inflight = True
        self._inflight_chunks = taken[1]
        finished_once: list[int] = []

        def finished(err: int) -> None:
            if finished_once:
                return
            finished_once.append(err)
            self._inflight = False
            self._inflight_chunks = set()
            if err:
                self._untake(taken)
                log.warning("store commit failed: %s", errno.errorcode.get(err, err))
            else:
                self.generation += 1
                self._undurable = not durable
                for key in taken[1]:
                    if (c := self._loaded(key)) is not None:
                        self._lru_add(key, len(c))
                self._refresh_room()
            for _, done in waiters:
                if done is not None:
                    done(err)
            if self._cache_full():
                self.trim_cache()
            if self._waiters and not self._inflight:
                self._commit_next()

        try:
            self.store.commit(batch, durable, finished)
        except Exception:  # a store bug must not lose the changes or hang the waiters
            log.exception("store commit raised")
            finished(errno.EIO)

    def _take_batch(self):
        from ..store.base import Batch

        batch = Batch()
        dirty, self.dirty = self.dirty, set()
        chunks, self.dirty_chunks = self.dirty_chunks, set()
        extra_meta, self._extra_meta_delete = self._extra_meta_delete, set()
        extra_chunks, self._extra_chunk_delete = self._extra_chunk_delete, set()
        entry_changes = []
        put, delete = batch.meta_put, batch.meta_delete
        inodes = self.inodes
        for ino in dirty:
            inode = inodes.get(ino)
            if inode is None:
                delete.add(f"i:{ino}")
                continue
            put[f"i:{ino}"] = encode_inode(inode)
            e = inode.entries
            if e is not None and e.changed:
                seqs, e.changed = e.changed, set()
                entry_changes.append((e, seqs))
                for seq in seqs:
                    hit = e.at(seq)
                    if hit is None:
                        delete.add(f"e:{ino}:{seq}")
                    else:
                        put[f"e:{ino}:{seq}"] = encode_entry(hit[0], hit[1].ino)
        delete.update(extra_meta)
        for ino, ci in chunks:
            key = f"{ino}:{ci}"
            inode = inodes.get(ino)
            c = inode.chunks.get(ci) if inode is not None and inode.chunks is not None else None
            if c is None:
                batch.chunk_delete.add(key)
            elif type(c) is not int:
                batch.chunk_put[key] = bytes(c)
        batch.chunk_delete.update(extra_chunks)
        # A key is written or deleted, never both: stores may apply puts and deletes in any order.
        delete.difference_update(put)
        batch.chunk_delete.difference_update(batch.chunk_put)
        put["super"] = json.dumps(
            {
                "format": FORMAT,
                "fsid": self.fsid,
                "next_ino": self.next_ino,
                "root": self.root.ino,
                "chunk": CHUNK,
                "used": self.used_bytes,
                "gen": self.generation + 1,
            }
        ).encode()
        return batch, (dirty, chunks, extra_meta, extra_chunks, entry_changes)

    def _untake(self, taken) -> None:
        dirty, chunks, extra_meta, extra_chunks, entry_changes = taken
        self.dirty |= dirty
        self.dirty_chunks |= chunks
        self._extra_meta_delete |= extra_meta
        self._extra_chunk_delete |= extra_chunks
        for e, seqs in entry_changes:
            if e.changed is not None:
                e.changed |= seqs

    def tick(self, now_ms: float) -> None:
        """Write-behind: persist (not durably) once changes are ``writeback_ms`` old (and
        ``writeback_hold_until`` has passed)."""
        if self.store is None or now_ms < self.writeback_hold_until:
            return
        if self._cache_full():  # a large read may have overfilled it
            self.trim_cache()
        if not self.has_changes():
            self._dirty_since = None
            return
        if self._dirty_since is None:
            self._dirty_since = now_ms
        elif now_ms - self._dirty_since >= self.writeback_ms and not self._inflight:
            self._dirty_since = None
            self.persist(False, None)

    def _refresh_room(self) -> None:
        est = self.store.estimate() if self.store is not None else None
        if est is None:
            self._store_limit = float("inf")
            return
        usage, quota = est
        # Keep a margin for what the store spends beyond the data (keys, records, indexes).
        room = quota - usage - (1 << 20) - quota // 32
        self._store_limit = self.used_bytes + max(0, room)
