"""Permission rules: who may look up, create, delete, open, chmod/chown, touch, and use xattrs.

Every access decision of the filesystem is made here and nowhere else, so changing the rules (for
example how ownership of a new inode is chosen, or who may chown) is an edit to this one module.
The rules follow Linux's generic ones (inode_permission, inode_init_owner, setattr_prepare,
may_delete's sticky bit, xattr namespaces); they raise ``OSError`` with Linux's errno and change
nothing, except where a method says so (``_kill_priv``, ``_chmod_mode`` only compute or clear bits).
"""

from __future__ import annotations

import errno

from .constants import (O_ACCMODE, O_NOATIME, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, R_OK, S_IFDIR,
                        S_IFMT, S_ISGID, S_ISUID, S_ISVTX, S_IXGRP, W_OK, X_OK, XATTR_NAME_MAX,
                        _fail)
from .inode import Cred, Inode


class PermissionRules:
    """The permission half of :class:`Filesystem`."""

    max_file_size: int

    @staticmethod
    def permitted(inode: Inode, cred: Cred, want: int) -> bool:
        mode = inode.mode
        if cred.uid == 0:
            # Root reads and writes anything; it executes only what someone may execute.
            return not (want & X_OK) or inode.is_dir() or bool(mode & 0o111)
        if cred.uid == inode.uid:
            bits = (mode >> 6) & 7
        elif cred.in_group(inode.gid):
            bits = (mode >> 3) & 7
        else:
            bits = mode & 7
        return bits & want == want

    def check(self, inode: Inode, cred: Cred, want: int) -> None:
        if not self.permitted(inode, cred, want):
            raise _fail(errno.EACCES)

    @staticmethod
    def _owner_or_root(inode: Inode, cred: Cred) -> bool:
        return cred.uid == 0 or cred.uid == inode.uid

    # ----------------------------------------------------------------- names

    def _may_create(self, directory: Inode, name: str, cred: Cred) -> None:
        if directory.entries is None:
            raise _fail(errno.ENOTDIR)
        if directory.nlink == 0:
            raise _fail(errno.ENOENT, "directory was removed")
        self.check_name(name)  # type: ignore[attr-defined]
        self.check(directory, cred, W_OK | X_OK)
        if directory.entries.get(name) is not None:
            raise _fail(errno.EEXIST, name)

    def _may_delete(self, directory: Inode, victim: Inode, cred: Cred) -> None:
        self.check(directory, cred, W_OK | X_OK)
        if (directory.mode & S_ISVTX and cred.uid != 0 and cred.uid != directory.uid
                and cred.uid != victim.uid):
            raise _fail(errno.EPERM, "sticky directory")

    def _init_owner(self, directory: Inode, mode: int, cred: Cred, gid: int) -> tuple[int, int]:
        """Owner and mode of a new inode, as Linux's inode_init_owner decides them."""
        if directory.mode & S_ISGID:
            gid = directory.gid
            if mode & S_IFMT == S_IFDIR:
                mode |= S_ISGID
        elif cred.uid != 0 and not cred.in_group(gid):
            gid = cred.gid
        if (mode & S_IFMT != S_IFDIR and mode & S_ISGID and cred.uid != 0
                and not cred.in_group(gid)):
            mode &= ~S_ISGID
        return mode, gid

    # ----------------------------------------------------------------- open

    def _check_open(self, inode: Inode, flags: int, cred: Cred) -> None:
        """Access an open with ``flags`` needs (the file-type checks are the caller's)."""
        acc = flags & O_ACCMODE
        want = {O_RDONLY: R_OK, O_WRONLY: W_OK, O_RDWR: R_OK | W_OK}.get(acc, R_OK | W_OK)
        if flags & O_TRUNC:
            want |= W_OK
        self.check(inode, cred, want)
        if flags & O_NOATIME and not self._owner_or_root(inode, cred):
            raise _fail(errno.EPERM)

    # ----------------------------------------------------------------- attributes

    def _check_setattr(self, inode: Inode, cred: Cred, mode: int | None, uid: int | None,
                       gid: int | None, size: int | None, atime: int | None, mtime: int | None,
                       atime_now: bool, mtime_now: bool) -> None:
        """chmod/chown/truncate/utimensat rules: raise before anything changes."""
        owner = self._owner_or_root(inode, cred)
        if mode is not None and not owner:
            raise _fail(errno.EPERM)
        if uid is not None and uid != 0xFFFFFFFF and cred.uid != 0 and uid != inode.uid:
            raise _fail(errno.EPERM)
        if gid is not None and gid != 0xFFFFFFFF and cred.uid != 0:
            if not owner or (gid != inode.gid and not cred.in_group(gid)):
                raise _fail(errno.EPERM)
        if size is not None:
            if inode.is_dir():
                raise _fail(errno.EISDIR)
            if not inode.is_reg():
                raise _fail(errno.EINVAL)
            self.check(inode, cred, W_OK)
            if size > self.max_file_size:
                raise _fail(errno.EFBIG)
        if (atime is not None or mtime is not None) and not owner:
            raise _fail(errno.EPERM)
        if (atime_now or mtime_now) and not owner and not self.permitted(inode, cred, W_OK):
            raise _fail(errno.EACCES)

    @staticmethod
    def _chmod_mode(inode: Inode, cred: Cred, mode: int, gid: int | None) -> int:
        """The mode a chmod leaves: set-group-ID dropped unless the caller is in the file's group."""
        new = (inode.mode & S_IFMT) | (mode & 0o7777)
        if cred.uid != 0 and not cred.in_group(gid if gid is not None else inode.gid):
            new &= ~S_ISGID
        return new

    @staticmethod
    def _kill_priv(inode: Inode) -> None:
        """Clear set-user-ID, and set-group-ID where group-execute makes it meaningful."""
        if inode.mode & S_ISUID:
            inode.mode &= ~S_ISUID
        if inode.mode & (S_ISGID | S_IXGRP) == (S_ISGID | S_IXGRP):
            inode.mode &= ~S_ISGID

    # ----------------------------------------------------------------- xattrs

    def _xattr_access(self, inode: Inode, name: str, cred: Cred, write: bool) -> None:
        if not name:
            raise _fail(errno.EINVAL)
        if len(name.encode("utf-8", "surrogateescape")) > XATTR_NAME_MAX:
            raise _fail(errno.ERANGE)
        if name.startswith("user."):
            if not (inode.is_reg() or inode.is_dir()):
                raise _fail(errno.EPERM if write else errno.ENODATA)
            if (write and inode.is_dir() and inode.mode & S_ISVTX and cred.uid != 0
                    and cred.uid != inode.uid):
                raise _fail(errno.EPERM)
            self.check(inode, cred, W_OK if write else R_OK)
        elif name.startswith("trusted."):
            if cred.uid != 0:
                raise _fail(errno.EPERM if write else errno.ENODATA)
        elif name.startswith("security."):
            if write and cred.uid != 0:
                raise _fail(errno.EPERM)
        elif name.startswith("system.posix_acl_"):
            raise _fail(errno.EOPNOTSUPP)
        else:
            raise _fail(errno.EOPNOTSUPP)
