"""The stores every filesystem test runs against, and a check that a store holds what the
filesystem held (reopened in this process; tests of a fresh process use subprocesses)."""

from __future__ import annotations

import hashlib
import struct
from collections import deque

from pyninep_browser import Server
from pyninep_browser.fs import CHUNK, Filesystem
from pyninep_browser.store import MemoryStore, SQLiteStore, Store

# "plain": no store at all (today's in-memory filesystem); the others keep it in a store, with a
# chunk cache of two chunks so lazy loading and eviction run all the time.
KINDS = ["plain", "memory", "sqlite"]
SMALL_CACHE = 2 * CHUNK


def open_store(kind: str, tmp_path):
    if kind == "plain":
        return None
    if kind == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "fs.db")


def reopen(kind: str, store, tmp_path):
    """The same store as a new process would open it (SQLite: closed and opened again)."""
    if kind == "sqlite":
        store.close()
        return SQLiteStore(tmp_path / "fs.db")
    return store


def dump(fs: Filesystem) -> dict:
    """Everything a user can observe of the tree (access times aside: reading changes them)."""
    out = {}
    stack = [("", fs.root)]
    while stack:
        path, d = stack.pop()
        for cookie, name, inode in list(fs.readdir(d, 2)):
            p = f"{path}/{name}"
            rec = (inode.mode, inode.uid, inode.gid, inode.nlink, inode.size, inode.rdev,
                   inode.mtime, inode.ctime, inode.btime, inode.target, cookie,
                   sorted((inode.xattrs or {}).items()))
            if inode.is_reg() and inode.backend is None:
                h = hashlib.sha256()  # chunk by chunk: holes (even 10 GiB of them) cost nothing
                for ci in sorted(inode.chunks):
                    h.update(b"%d:" % ci + fs.read_bytes(inode, ci * CHUNK, CHUNK))
                rec += (h.hexdigest(), inode.allocated)
            out[p] = rec
            if inode.is_dir():
                stack.append((p, inode))
    root = fs.root
    out["/"] = (root.mode, root.uid, root.gid, root.nlink, root.mtime, root.ctime)
    return out


def assert_store_round_trip(fs: Filesystem, kind: str, store, tmp_path, **options) -> Filesystem:
    """Commit ``fs``, open its store again, and check the reopened tree is the same."""
    done: list[int] = []
    fs.persist(True, done.append)
    assert done == [0]
    expected = dump(fs)
    again = Filesystem(store=reopen(kind, store, tmp_path), cache_bytes=SMALL_CACHE, **options)
    assert [r for r in again.repairs if "orphan inode" not in r] == []
    assert dump(again) == expected
    assert again.used_bytes == sum(i.allocated + again._xattr_bytes(i)
                                   for i in again.inodes.values())
    return again


class AsyncStore(Store):
    """A real asynchronous store for tests: wraps a synchronous one, and answers every chunk read
    and commit later, when the test drains ``queue`` (as IndexedDB answers from the event loop)."""

    asynchronous = True

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.queue: deque = deque()
        self.chunk_reads = 0

    def load_meta(self):
        return self.inner.load_meta()

    def get_chunk(self, key, done):
        self.chunk_reads += 1
        self.queue.append(lambda: self.inner.get_chunk(key, done))

    def commit(self, batch, durable, done):
        self.queue.append(lambda: self.inner.commit(batch, durable, done))

    def estimate(self):
        return self.inner.estimate()

    def chunk_keys(self):
        return self.inner.chunk_keys()

    def drain(self) -> None:
        while self.queue:
            self.queue.popleft()()


class DrainingServer:
    """``handle(frame) -> reply`` over a server on an asynchronous store: a deferred request is
    answered by running the store's queued callbacks until the server delivers its reply."""

    def __init__(self, server: Server, store: AsyncStore) -> None:
        self.server = server
        self.store = store
        self.replies: dict[int, bytes] = {}
        self.deferred = 0
        server.on_reply = self._got

    def _got(self, reply: bytes) -> None:
        self.replies[struct.unpack_from("<H", reply, 5)[0]] = reply

    def handle(self, frame: bytes) -> bytes | None:
        reply = self.server.handle(frame)
        if reply is not None:
            return reply
        self.deferred += 1
        tag = struct.unpack_from("<H", frame, 5)[0]
        while tag not in self.replies and self.store.queue:
            self.store.queue.popleft()()
        return self.replies.pop(tag, None)
