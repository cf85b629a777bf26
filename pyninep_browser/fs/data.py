"""File data: open, read, write, truncate, readlink, and the relatime rule.

Data is kept in chunks of ``CHUNK`` bytes so holes in sparse files cost nothing, and a chunk can
be loaded and persisted on its own. Writes charge the quota before they change anything.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from .constants import (
    _DAY_NS,
    CHUNK,
    O_ACCMODE,
    O_DIRECTORY,
    O_RDONLY,
    O_TRUNC,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    _fail,
)
from .inode import ROOT, Cred, FileBackend, Inode, LiveHandle


class FileData:
    """The data half of :class:`Filesystem`."""

    max_file_size: int
    store: Any  # a Store, or None
    clock: Callable[[], int]
    dirty: set[int]
    dirty_chunks: set[tuple[int, int]]
    changes: int

    if TYPE_CHECKING:  # the other parts of Filesystem; mypy checks these against them

        def _check_open(self, inode: Inode, flags: int, cred: Cred) -> None: ...
        def _ensure_chunks(self, inode: Inode, cis: Iterable[int]) -> None: ...
        def _charge(self, inode: Inode, delta: int) -> None: ...
        def _ensure_base(self, inode: Inode, cis: Iterable[int]) -> None: ...
        def _base_bytes(self, inode: Inode, pos: int, take: int) -> memoryview | bytes: ...
        def _base_chunk(self, inode: Inode, ci: int) -> bytearray: ...
        def _drop_base_after(self, inode: Inode, size: int) -> None: ...
        @staticmethod
        def _base_len(inode: Inode, ci: int) -> int: ...
        @staticmethod
        def _kill_priv(inode: Inode, in_group: bool = True) -> None: ...

    def open(self, inode: Inode, flags: int, cred: Cred = ROOT, session: Any = None) -> LiveHandle | None:
        """Check that ``inode`` may be opened with ``flags`` and apply O_TRUNC. Returns the
        per-open handle of a live file (its content is Python: :mod:`pyninep_browser.live`),
        opened for ``session`` (the 9P session, or None for the page's own calls); None for a
        file whose bytes are stored."""
        acc = flags & O_ACCMODE
        kind = inode.mode & S_IFMT
        if kind == S_IFLNK:
            raise _fail(errno.ELOOP)
        if flags & O_DIRECTORY and kind != S_IFDIR:
            raise _fail(errno.ENOTDIR)
        if kind == S_IFDIR and (acc != O_RDONLY or flags & O_TRUNC):
            raise _fail(errno.EISDIR)
        self._check_open(inode, flags, cred)
        # Linux truncates on O_TRUNC even with O_RDONLY, given write permission (checked above).
        if inode.backend is not None:
            return inode.backend.open(session, cred, flags)
        if flags & O_TRUNC and kind == S_IFREG:
            self.truncate(inode, 0, cred)
        return None

    def read(self, inode: Inode, offset: int, count: int) -> list:
        """Up to ``count`` bytes at ``offset``, as a list of buffers (no copies for whole chunks)."""
        if inode.backend is not None:
            return [cast(FileBackend, inode.backend).read(offset, count)]  # a live file's
        if inode.chunks is None:
            raise _fail(errno.EISDIR if inode.is_dir() else errno.EINVAL)
        end = min(offset + count, inode.size)
        parts: list = []
        pos = offset
        # Bytes only in the range read: without a store every chunk is bytes, and with one
        # _ensure_chunks (next) loads those still stored.
        chunks = cast("dict[int, bytearray]", inode.chunks)
        if self.store is not None and pos < end:
            self._ensure_chunks(inode, range(pos // CHUNK, (end - 1) // CHUNK + 1))
        base = inode.base is not None and pos < inode.base_end
        if base and pos < end:
            self._ensure_base(inode, range(pos // CHUNK, (end - 1) // CHUNK + 1))
        while pos < end:
            ci, co = divmod(pos, CHUNK)
            take = min(CHUNK - co, end - pos)
            chunk = chunks.get(ci)
            if chunk is None:
                if base and pos < inode.base_end:
                    parts.append(self._base_bytes(inode, pos, take))
                else:
                    parts.append(bytes(take))
            else:
                have = len(chunk) - co
                if have >= take:
                    parts.append(memoryview(chunk)[co : co + take])
                elif have > 0:
                    parts.append(memoryview(chunk)[co:])
                    parts.append(bytes(take - have))
                else:
                    parts.append(bytes(take))
            pos += take
        self._note_access(inode)
        return parts

    def read_bytes(self, inode: Inode, offset: int, count: int) -> bytes:
        return b"".join(self.read(inode, offset, count))

    def stored_bytes(self, inode: Inode) -> bytes:
        """A regular file's whole stored content, for exports: a live file's stored bytes, not its
        function's output (a tar or an image records live files by name), read without touching
        atime (exporting is not the guest reading). A stored filesystem raises ChunksNeeded for
        data not loaded yet (the page loads it and retries)."""
        if inode.size == 0:
            return b""
        backend, atime = inode.backend, inode.atime
        inode.backend = None
        try:
            return self.read_bytes(inode, 0, inode.size)
        finally:
            inode.backend, inode.atime = backend, atime

    def _note_access(self, inode: Inode) -> None:
        # relatime, as Linux mounts by default: cheap, and what `ls -lu` users expect.
        at = inode.atime
        if at <= inode.mtime or at <= inode.ctime:
            inode.atime = self.clock()
        else:
            now = self.clock()
            if now - at >= _DAY_NS:
                inode.atime = now

    def write(self, inode: Inode, offset: int, data, cred: Cred = ROOT) -> int:
        """Write ``data`` at ``offset``; returns how many bytes were written."""
        if inode.backend is not None:
            return cast(FileBackend, inode.backend).write(offset, data)  # a live file's
        if inode.chunks is None:
            raise _fail(errno.EISDIR if inode.is_dir() else errno.EINVAL)
        n = len(data)
        if n == 0:  # nothing to write, wherever it is (even past the largest offset)
            return 0
        if offset >= self.max_file_size:
            raise _fail(errno.EFBIG)
        if offset + n > self.max_file_size:
            n = self.max_file_size - offset
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        chunks = inode.chunks
        end = offset + n
        if self.store is not None:
            # Chunks the write only partly covers must be in memory; fully covered ones need not.
            first, last = offset // CHUNK, (end - 1) // CHUNK
            self._ensure_chunks(
                inode,
                [
                    ci
                    for ci in range(first, last + 1)
                    if isinstance(c := chunks.get(ci), int)
                    and ((ci == first and offset % CHUNK) or end - ci * CHUNK < c)
                ],
            )
        # Copy on write: a base chunk the write covers only in part is copied in first.
        copied: dict[int, bytearray] = {}
        if inode.base is not None and offset - offset % CHUNK < inode.base_end:
            first, last = offset // CHUNK, (end - 1) // CHUNK
            partial = []
            for ci in {first, last}:
                from_base = self._base_len(inode, ci)
                if from_base and ((ci == first and offset % CHUNK) or end - ci * CHUNK < from_base):
                    partial.append(ci)
            if partial:
                self._ensure_base(inode, partial)
                copied = {ci: self._base_chunk(inode, ci) for ci in partial}
        # Charge first so a full disk fails before anything changes.
        grow = sum(len(c) for c in copied.values())
        pos = offset
        while pos < end:
            ci, co = divmod(pos, CHUNK)
            take = min(CHUNK - co, end - pos)
            chunk = copied.get(ci, chunks.get(ci))
            have = 0 if chunk is None else chunk if isinstance(chunk, int) else len(chunk)
            if co + take > have:
                grow += co + take - have
            pos += take
        if grow:
            self._charge(inode, grow)
            inode.data_bytes += grow
        chunks.update(copied)
        pos = offset
        src = 0
        while pos < end:
            ci, co = divmod(pos, CHUNK)
            take = min(CHUNK - co, end - pos)
            chunk = chunks.get(ci)
            if chunk is None or isinstance(chunk, int):  # absent, or wholly overwritten unloaded
                if co == 0 and take == CHUNK:
                    chunks[ci] = bytearray(mv[src : src + take])
                else:
                    chunk = chunks[ci] = bytearray(co)
                    chunk[co:] = mv[src : src + take]
            else:
                if len(chunk) < co:
                    chunk.extend(bytes(co - len(chunk)))
                chunk[co : co + take] = mv[src : src + take]
            pos += take
            src += take
        if self.store is not None:
            ino = inode.ino
            self.dirty_chunks.update((ino, ci) for ci in range(offset // CHUNK, (end - 1) // CHUNK + 1))
        if end > inode.size:
            inode.size = end
        self._data_changed(inode, cred)
        return n

    def _data_changed(self, inode: Inode, cred: Cred) -> None:
        """After a write or truncate: new data version and times, privileges dropped for users."""
        inode.version += 1
        inode.mtime = inode.ctime = self.clock()
        if cred.uid != 0:  # root has CAP_FSETID: its writes keep the bits
            self._kill_priv(inode, cred.in_group(inode.gid))
        self.dirty.add(inode.ino)
        self.changes += 1

    def truncate(self, inode: Inode, size: int, cred: Cred = ROOT) -> None:
        if inode.is_dir():
            raise _fail(errno.EISDIR)
        if inode.chunks is None:
            if inode.backend is not None:
                return
            raise _fail(errno.EINVAL)
        if size < 0:
            raise _fail(errno.EINVAL)
        if size > self.max_file_size:
            raise _fail(errno.EFBIG)
        self._drop_base_after(inode, size)
        if size < inode.size:
            last, rem = divmod(size, CHUNK)
            chunk = inode.chunks.get(last)
            if self.store is not None and type(chunk) is int and chunk > rem > 0:
                self._ensure_chunks(inode, (last,))
            freed = 0
            gone = [ci for ci in inode.chunks if ci > last or (ci == last and rem == 0)]
            for ci in gone:
                c = inode.chunks.pop(ci)
                freed += c if isinstance(c, int) else len(c)
            chunk = inode.chunks.get(last)
            trimmed = False
            if isinstance(chunk, bytearray) and len(chunk) > rem:
                trimmed = True
                freed += len(chunk) - rem
                del chunk[rem:]
            if self.store is not None:
                self.dirty_chunks.update((inode.ino, ci) for ci in gone)
                if trimmed:
                    self.dirty_chunks.add((inode.ino, last))
            self._charge(inode, -freed)
            inode.data_bytes -= freed
        inode.size = size
        self._data_changed(inode, cred)

    def readlink(self, inode: Inode) -> bytes:
        if inode.target is None:
            raise _fail(errno.EINVAL)
        self._note_access(inode)
        return inode.target
