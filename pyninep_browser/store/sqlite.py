"""A store in one SQLite file (CPython; stdlib ``sqlite3``), in WAL mode.

Two tables, ``meta`` and ``chunks`` (key TEXT PRIMARY KEY, value BLOB). Every commit is one
transaction. Durability: a ``durable`` commit runs with ``synchronous=FULL`` (the WAL is synced
before the commit returns: it survives a power cut); the others with ``synchronous=NORMAL`` (they
survive the process being killed, not necessarily a power cut, and cost no sync).

The database is opened with an exclusive lock, held until :meth:`close` or the process ends: a
second process (or a second store in this one) opening the same file gets a clear
:class:`StoreError` instead of two writers interleaving.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable

from .base import Batch, Store, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (k TEXT PRIMARY KEY, v BLOB NOT NULL);
"""


class SQLiteStore(Store):
    """``SQLiteStore(path)``; ``quota_bytes`` caps the file (ENOSPC past it), else the disk does."""

    def __init__(self, path: str | os.PathLike, *, quota_bytes: int | None = None) -> None:
        self.path = os.fspath(path)
        self.quota_bytes = quota_bytes
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=0.2, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        try:
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot use write-ahead logging ({mode})")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock now, not at first commit
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self.db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(f"{self.path} is in use by another server") from None
            raise StoreError(f"{self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreError(f"{self.path} is not a SQLite store: {exc}") from None
        self._page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        if quota_bytes is not None:
            self.db.execute(f"PRAGMA max_page_count={max(16, quota_bytes // self._page_size)}")

    def load_meta(self) -> list[tuple[str, bytes]]:
        return [(k, bytes(v)) for k, v in self.db.execute("SELECT k, v FROM meta")]

    def get_chunk(self, key: str, done: Callable[[bytes | None, int], None]) -> None:
        try:
            row = self.db.execute("SELECT v FROM chunks WHERE k = ?", (key,)).fetchone()
        except sqlite3.Error:
            done(None, errno.EIO)
            return
        done(None if row is None else row[0], 0)

    def commit(self, batch: Batch, durable: bool, done: Callable[[int], None]) -> None:
        db = self.db
        try:
            if durable:
                db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                if batch.meta_delete:
                    db.executemany("DELETE FROM meta WHERE k = ?", [(k,) for k in batch.meta_delete])
                if batch.chunk_delete:
                    db.executemany("DELETE FROM chunks WHERE k = ?", [(k,) for k in batch.chunk_delete])
                if batch.meta_put:
                    db.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", batch.meta_put.items())
                if batch.chunk_put:
                    db.executemany(
                        "INSERT OR REPLACE INTO chunks (k, v) VALUES (?, ?)", batch.chunk_put.items()
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL does)
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            full = getattr(exc, "sqlite_errorcode", None) == 13 or "full" in str(exc)
            done(errno.ENOSPC if full else errno.EIO)
            return
        finally:
            if durable:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA synchronous=NORMAL")
        done(0)

    def estimate(self) -> tuple[int, int] | None:
        usage = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                usage += os.path.getsize(self.path + suffix)
        if self.quota_bytes is not None:
            return usage, self.quota_bytes
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except (OSError, AttributeError):
            return None
        return usage, usage + st.f_bavail * st.f_frsize

    def chunk_keys(self) -> list[str] | None:
        return [k for (k,) in self.db.execute("SELECT k FROM chunks")]

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
