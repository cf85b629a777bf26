"""A store in two dicts: the filesystem's persistence path with nothing outside the process.

It has exactly the semantics of the durable stores (a batch applies whole or not at all, chunks
load on demand), so tests run the same code paths against it; it is not needed for a plain
in-memory filesystem (``Filesystem()`` without a store keeps everything in its inodes).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from .base import Batch, Store


class MemoryStore(Store):
    def __init__(self, quota_bytes: int | None = None) -> None:
        self.meta: dict[str, bytes] = {}
        self.chunks: dict[str, bytes] = {}
        self.quota_bytes = quota_bytes
        self.commits = 0

    def load_meta(self) -> list[tuple[str, bytes]]:
        return list(self.meta.items())

    def get_chunk(self, key: str, done: Callable[[bytes | None, int], None]) -> None:
        done(self.chunks.get(key), 0)

    def _usage(self, meta: dict[str, bytes], chunks: dict[str, bytes]) -> int:
        return sum(len(k) + len(v) for k, v in meta.items()) + sum(len(k) + len(v) for k, v in chunks.items())

    def commit(self, batch: Batch, durable: bool, done: Callable[[int], None]) -> None:
        # With a quota the batch is applied to copies first, so a refused one changes nothing.
        meta = dict(self.meta) if self.quota_bytes is not None else self.meta
        chunks = dict(self.chunks) if self.quota_bytes is not None else self.chunks
        for k in batch.meta_delete:
            meta.pop(k, None)
        meta.update(batch.meta_put)
        for k in batch.chunk_delete:
            chunks.pop(k, None)
        chunks.update(batch.chunk_put)
        if self.quota_bytes is not None and self._usage(meta, chunks) > self.quota_bytes:
            done(errno.ENOSPC)
            return
        self.meta, self.chunks = meta, chunks
        self.commits += 1
        done(0)

    def estimate(self) -> tuple[int, int] | None:
        if self.quota_bytes is None:
            return None
        return self._usage(self.meta, self.chunks), self.quota_bytes

    def chunk_keys(self) -> list[str] | None:
        return list(self.chunks)
