"""Extended attributes: storage, size limits and quota charging (access rules: permissions.py)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

from .constants import XATTR_SIZE_MAX, XATTR_TOTAL_MAX, _fail
from .inode import ROOT, Cred, Inode


class Xattrs:
    """The xattr half of :class:`Filesystem`."""

    clock: Callable[[], int]
    dirty: set[int]
    changes: int

    if TYPE_CHECKING:  # the other parts of Filesystem; mypy checks these against them

        def _xattr_access(self, inode: Inode, name: str, cred: Cred, write: bool) -> None: ...
        def _charge(self, inode: Inode, delta: int) -> None: ...

    @staticmethod
    def _xattr_bytes(inode: Inode) -> int:
        if not inode.xattrs:
            return 0
        return sum(len(k.encode("utf-8", "surrogateescape")) + len(v) for k, v in inode.xattrs.items())

    def getxattr(self, inode: Inode, name: str, cred: Cred = ROOT) -> bytes:
        self._xattr_access(inode, name, cred, write=False)
        value = (inode.xattrs or {}).get(name)
        if value is None:
            raise _fail(errno.ENODATA)
        return value

    def listxattr(self, inode: Inode, cred: Cred = ROOT) -> list[str]:
        names = list(inode.xattrs or ())
        if cred.uid != 0:  # the client lists what the server sends: hide trusted.* by uid
            names = [n for n in names if not n.startswith("trusted.")]
        return names

    def check_setxattr(self, inode: Inode, name: str, size: int, flags: int = 0, cred: Cred = ROOT) -> None:
        """What :meth:`setxattr` would refuse before looking at the value (access, size,
        XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one): a client that sends
        the value later (9P's Txattrcreate) hears early."""
        self._xattr_access(inode, name, cred, write=True)
        if size > XATTR_SIZE_MAX:
            raise _fail(errno.E2BIG)
        exists = name in (inode.xattrs or {})
        if flags & 1 and exists:
            raise _fail(errno.EEXIST)
        if flags & 2 and not exists:
            raise _fail(errno.ENODATA)

    def setxattr(self, inode: Inode, name: str, value: bytes, flags: int = 0, cred: Cred = ROOT) -> None:
        self.check_setxattr(inode, name, len(value), flags, cred)
        xattrs = inode.xattrs or {}
        old = xattrs.get(name)
        key = len(name.encode("utf-8", "surrogateescape"))
        delta = len(value) + key - (0 if old is None else len(old) + key)
        if self._xattr_bytes(inode) + delta > XATTR_TOTAL_MAX:
            raise _fail(errno.ENOSPC)
        self._charge(inode, delta)
        xattrs[name] = bytes(value)
        inode.xattrs = xattrs
        inode.ctime = self.clock()
        self.dirty.add(inode.ino)
        self.changes += 1

    def removexattr(self, inode: Inode, name: str, cred: Cred = ROOT) -> None:
        self._xattr_access(inode, name, cred, write=True)
        if not inode.xattrs or name not in inode.xattrs:
            raise _fail(errno.ENODATA)
        old = inode.xattrs.pop(name)
        self._charge(inode, -(len(old) + len(name.encode("utf-8", "surrogateescape"))))
        inode.ctime = self.clock()
        self.dirty.add(inode.ino)
        self.changes += 1
