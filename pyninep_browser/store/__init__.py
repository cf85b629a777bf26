"""Stores: where a filesystem's metadata and data chunks live between runs.

``base`` is the interface every store implements (and the record format the filesystem writes into
it); ``memory`` keeps everything in a dict, ``sqlite`` in a SQLite file (CPython), ``indexeddb``
adapts the page's IndexedDB (Pyodide).
"""

from .base import Batch, Store, StoreError
from .memory import MemoryStore

__all__ = ["Batch", "Store", "StoreError", "MemoryStore", "SQLiteStore"]


def __getattr__(name: str):  # SQLite is imported only where it is used: Pyodide may lack _sqlite3
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(name)
