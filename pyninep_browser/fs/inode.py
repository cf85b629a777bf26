"""Inodes, directory entries and credentials: the records the filesystem is made of."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from .constants import NAME_MAX, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG


class Cred(NamedTuple):
    """Who is asking: uid, primary gid and supplementary groups.

    ``trusted``: the client has already decided access with the caller's real credentials (a
    Linux guest mounted with ``access=client`` checks every call with its fsuid, fsgid, all its
    groups and its capabilities). The filesystem then applies the request's owners and refuses
    only what no client check covers: names, types, sizes, quotas, removed directories.
    """

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()
    trusted: bool = False

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups


ROOT = Cred(0, 0)


class LiveHandle(Protocol):
    """One open of a live file (what :meth:`Backend.open` returns; the server reads and writes
    through it). A call may return an awaitable (an async live function): the reply then waits."""

    def start(self) -> Any: ...
    def read(self, offset: int, count: int) -> bytes: ...
    def write(self, offset: int, data: Any) -> int: ...
    def fsync(self) -> Any: ...
    def close(self) -> Any: ...
    def discard(self) -> None: ...


class Backend(Protocol):
    """The Python object behind a live file or directory (:mod:`pyninep_browser.live` makes
    them): the filesystem asks it instead of its own data and entries. ``server`` is the 9P
    session asking, or None for the page's and the authoring API's own calls."""

    def open(self, server: Any, cred: Cred, flags: int) -> LiveHandle:
        """Check the open and return the per-open handle (the server reads and writes it)."""
        ...

    def refresh(self, server: Any) -> None:
        """Bring the inode up to date (a live directory lists its entries again)."""
        ...


class FileBackend(Backend, Protocol):
    """A live regular file's backend: one whole snapshot per call, outside any open."""

    def read(self, offset: int, count: int) -> bytes: ...

    def write(self, offset: int, data: Any) -> int: ...

    def snapshot(self) -> bytes: ...


class DirEntries:
    """A directory's entries with cookies that stay valid while the directory changes.

    Each entry gets a sequence number when it is added; a readdir cookie is the sequence number of
    the last entry returned, so continuing from it neither repeats nor skips entries that were
    there all along, whatever was added or removed in between.
    """

    __slots__ = ("by_name", "_seqs", "_names", "_next", "_dead", "changed")
    FIRST = 3  # cookies 1 and 2 are "." and ".."

    def __init__(self) -> None:
        self.by_name: dict[str, tuple[int, Inode]] = {}
        self._seqs: list[int] = []
        self._names: list[str] = []
        self._next = self.FIRST
        self._dead = 0
        # Sequence numbers added or removed since a store last looked (None: nobody is looking).
        self.changed: set[int] | None = None

    def __len__(self) -> int:
        return len(self.by_name)

    @property
    def next_seq(self) -> int:
        """The sequence number the next entry added gets."""
        return self._next

    @next_seq.setter
    def next_seq(self, seq: int) -> None:
        self._next = max(seq, self._seqs[-1] + 1 if self._seqs else self.FIRST)

    def restore(self, name: str, seq: int, inode: Inode) -> None:
        """Put back an entry with the sequence number it had (loading a state or a store):
        entries must come in increasing sequence order."""
        if self._seqs and seq <= self._seqs[-1]:
            raise ValueError("directory entries out of order")
        self.by_name[name] = (seq, inode)
        self._seqs.append(seq)
        self._names.append(name)
        if self._next <= seq:
            self._next = seq + 1

    def get(self, name: str) -> Inode | None:
        e = self.by_name.get(name)
        return e[1] if e is not None else None

    def add(self, name: str, inode: Inode) -> None:
        seq = self._next
        self._next += 1
        self.by_name[name] = (seq, inode)
        self._seqs.append(seq)
        self._names.append(name)
        if self.changed is not None:
            self.changed.add(seq)

    def remove(self, name: str) -> None:
        seq, _ = self.by_name.pop(name)
        if self.changed is not None:
            self.changed.add(seq)
        self._dead += 1
        if self._dead > 64 and self._dead > len(self._seqs) // 2:
            self._compact()

    def _compact(self) -> None:
        pairs = sorted((seq, n) for n, (seq, _) in self.by_name.items())
        self._seqs = [p[0] for p in pairs]
        self._names = [p[1] for p in pairs]
        self._dead = 0

    def iter_from(self, cookie: int) -> Iterator[tuple[int, str, Inode]]:
        i = bisect.bisect_right(self._seqs, cookie)
        seqs, names, by_name = self._seqs, self._names, self.by_name
        while i < len(seqs):
            seq, name = seqs[i], names[i]
            e = by_name.get(name)
            if e is not None and e[0] == seq:
                yield seq, name, e[1]
            i += 1

    def at(self, seq: int) -> tuple[str, Inode] | None:
        """The live entry with sequence number ``seq``, if any."""
        i = bisect.bisect_left(self._seqs, seq)
        if i < len(self._seqs) and self._seqs[i] == seq:
            name = self._names[i]
            e = self.by_name.get(name)
            if e is not None and e[0] == seq:
                return name, e[1]
        return None

    def items(self) -> Iterator[tuple[str, Inode]]:
        for name, (_, inode) in self.by_name.items():
            yield name, inode


@dataclass(slots=True, eq=False)
class Inode:
    ino: int
    mode: int
    uid: int
    gid: int
    atime: int  # nanoseconds since the epoch
    mtime: int
    ctime: int
    btime: int
    nlink: int = 0
    rdev: int = 0
    size: int = 0
    gen: int = 0
    version: int = 0
    # A regular file's data by chunk index: the bytes, or the length of a chunk still in the store.
    chunks: dict[int, bytearray | int] | None = None
    entries: DirEntries | None = None
    parent: Inode | None = None
    target: bytes | None = None
    xattrs: dict[str, bytes] | None = None
    data_bytes: int = 0  # sum of the chunks' lengths, kept up to date (getattr reads it often)
    refs: int = 0  # fids (or other holders) keeping the inode alive after its last unlink
    backend: Backend | None = None  # a live file's or directory's Python object
    base: Any = None  # a base file's BaseRef (fs/base.py): where the bytes it has not copied are
    base_end: int = 0  # the base shows bytes below this (a truncate lowers it)

    @property
    def type(self) -> int:
        return self.mode & S_IFMT

    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    def is_reg(self) -> bool:
        return self.mode & S_IFMT == S_IFREG

    def is_symlink(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK

    @property
    def allocated(self) -> int:
        """Bytes of storage the inode uses (data chunks, symlink target)."""
        if self.chunks:
            return self.data_bytes
        if self.target is not None:
            return len(self.target)
        return 0

    @property
    def blocks(self) -> int:
        """Allocated size in 512-byte units, as stat(2) reports it (base bytes included)."""
        return (self.allocated + self.base_end + 511) // 512


@dataclass
class StatFS:
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int = NAME_MAX
