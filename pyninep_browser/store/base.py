"""The store interface: two key-value namespaces, "meta" and "chunks", written in atomic batches.

Stores know nothing of inodes: keys are strings and values bytes. What goes into them is the
filesystem's business (see ``fs/persist.py``), identical for every store. A store either answers
inline (``asynchronous = False``: memory, SQLite) or later through the callback (IndexedDB), and
the filesystem and server work with both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class StoreError(Exception):
    """A store that cannot be opened: not ours, a newer format, or damaged beyond repair."""


@dataclass
class Batch:
    """Everything one commit writes: applied in one transaction, or not at all."""

    meta_put: dict[str, bytes] = field(default_factory=dict)
    meta_delete: set[str] = field(default_factory=set)
    chunk_put: dict[str, bytes] = field(default_factory=dict)
    chunk_delete: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.meta_put) + len(self.meta_delete) + len(self.chunk_put) + len(self.chunk_delete)


class Store:
    """Base class and interface of every store."""

    asynchronous: bool = False  # True: get_chunk/commit answer later, through the callback

    def load_meta(self) -> list[tuple[str, bytes]]:
        """Everything in "meta". Synchronous for every store (an asynchronous one preloads it)."""
        raise NotImplementedError

    def get_chunk(self, key: str, done: Callable[[bytes | None, int], None]) -> None:
        """``done(value or None if absent, 0)`` or ``done(None, errno)``."""
        raise NotImplementedError

    def commit(self, batch: Batch, durable: bool, done: Callable[[int], None]) -> None:
        """Apply ``batch`` in one transaction; ``done(0)`` once committed (``durable``: on disk,
        surviving a power cut), ``done(errno)`` if nothing of it was applied (ENOSPC, EIO)."""
        raise NotImplementedError

    def estimate(self) -> tuple[int, int] | None:
        """(bytes used, bytes allowed) when the store knows them."""
        return None

    def chunk_keys(self) -> list[str] | None:
        """Every key in "chunks", for the open-time check; None if listing is not cheap."""
        return None

    def close(self) -> None:
        pass
