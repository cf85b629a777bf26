"""POSIX byte-range locks (fcntl F_SETLK/F_GETLK), kept per inode and never stored."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from .constants import MAX_LOCKS_PER_INODE, _fail
from .inode import Inode


@dataclass(slots=True)
class Lock:
    start: int
    end: int  # inclusive; 2**64 - 1 means "to the end of the file, whatever it becomes"
    type: int  # 0 read, 1 write
    owner: object


LOCK_END = (1 << 64) - 1
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2


class ByteRangeLocks:
    """The lock half of :class:`Filesystem`; ``self.locks`` maps an inode number to its locks."""

    locks: dict[int, list[Lock]]

    def lock(self, inode: Inode, owner: object, ltype: int, start: int, end: int) -> bool:
        """Set or clear a lock for ``owner`` on [start, end]; False if another owner conflicts."""
        held = self.locks.setdefault(inode.ino, [])
        if ltype != F_UNLCK and self.conflict(inode, owner, ltype, start, end) is not None:
            return False
        kept: list[Lock] = []
        for lk in held:
            if lk.owner != owner or lk.end < start or lk.start > end:
                kept.append(lk)
                continue
            if lk.start < start:
                kept.append(Lock(lk.start, start - 1, lk.type, owner))
            if lk.end > end:
                kept.append(Lock(end + 1, lk.end, lk.type, owner))
        if ltype != F_UNLCK:
            new = Lock(start, end, ltype, owner)
            merged: list[Lock] = []
            for lk in kept:
                if (
                    lk.owner == owner
                    and lk.type == ltype
                    and lk.start <= new.end + 1
                    and new.start <= lk.end + 1
                    and not (new.end == LOCK_END and lk.start > new.end)
                ):
                    new.start = min(new.start, lk.start)
                    new.end = max(new.end, lk.end)
                else:
                    merged.append(lk)
            merged.append(new)
            kept = merged
        kept.sort(key=lambda lk: lk.start)
        if len(kept) > MAX_LOCKS_PER_INODE:
            raise _fail(errno.ENOLCK)
        if kept:
            self.locks[inode.ino] = kept
        else:
            self.locks.pop(inode.ino, None)
        return True

    def conflict(self, inode: Inode, owner: object, ltype: int, start: int, end: int) -> Lock | None:
        for lk in self.locks.get(inode.ino, ()):
            if lk.owner == owner or lk.end < start or lk.start > end:
                continue
            if ltype == F_WRLCK or lk.type == F_WRLCK:
                return lk
        return None

    def unlock_owner(self, inode: Inode, owner: object) -> None:
        held = self.locks.get(inode.ino)
        if held:
            kept = [lk for lk in held if lk.owner != owner]
            if kept:
                self.locks[inode.ino] = kept
            else:
                del self.locks[inode.ino]
