"""Permission rules: who may look up, create, delete, open, chmod/chown, touch, and use xattrs.

Every access decision of the filesystem is made here and nowhere else, so changing the rules (for
example how ownership of a new inode is chosen, or who may chown) is an edit to this one module.
The rules follow Linux's generic ones (inode_permission, inode_init_owner, setattr_prepare,
may_delete's sticky bit, xattr namespaces); they raise ``OSError`` with Linux's errno and change
nothing, except where a method says so (``_kill_priv``, ``_chmod_mode`` only compute or clear bits).

Two kinds of rule live here. Access rules (may this caller look up, create, delete, open, chmod,
chown, set times or xattrs) are skipped for a ``trusted`` credential: the client decided them with
credentials the server cannot see (supplementary groups, capabilities). Ownership and mode rules
(the group of a new inode in a set-group-ID directory, which privileges a write or chown drops)
apply to everyone, because the client leaves them to the filesystem.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .constants import (
    O_ACCMODE,
    O_NOATIME,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    R_OK,
    S_IFDIR,
    S_IFMT,
    S_ISGID,
    S_ISUID,
    S_ISVTX,
    S_IXGRP,
    W_OK,
    X_OK,
    XATTR_NAME_MAX,
    _fail,
)
from .inode import Cred, Inode


class PermissionRules:
    """The permission half of :class:`Filesystem`."""

    max_file_size: int

    if TYPE_CHECKING:  # the other parts of Filesystem; mypy checks these against them

        @staticmethod
        def check_name(name: str) -> None: ...

    @staticmethod
    def permitted(inode: Inode, cred: Cred, want: int) -> bool:
        if cred.trusted:
            return True
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
    def _exempt(cred: Cred) -> bool:
        """Whether access rules that only root escapes are skipped: root, or a trusted client."""
        return cred.uid == 0 or cred.trusted

    @staticmethod
    def _owner_or_root(inode: Inode, cred: Cred) -> bool:
        return PermissionRules._exempt(cred) or cred.uid == inode.uid

    # ----------------------------------------------------------------- names

    def _may_create(self, directory: Inode, name: str, cred: Cred) -> None:
        if directory.entries is None:
            raise _fail(errno.ENOTDIR)
        if directory.nlink == 0:
            raise _fail(errno.ENOENT, "directory was removed")
        self.check_name(name)
        # Linux looks the name up (which needs search permission) before it asks for write
        # permission: an existing name is EEXIST even in a directory the caller cannot write.
        self.check(directory, cred, X_OK)
        if directory.entries.get(name) is not None:
            raise _fail(errno.EEXIST, name)
        self.check(directory, cred, W_OK)

    def _may_delete(self, directory: Inode, victim: Inode, cred: Cred) -> None:
        self.check(directory, cred, W_OK | X_OK)
        if (
            directory.mode & S_ISVTX
            and not self._exempt(cred)
            and cred.uid != directory.uid
            and cred.uid != victim.uid
        ):
            raise _fail(errno.EPERM, "sticky directory")

    def _init_owner(self, directory: Inode, mode: int, cred: Cred, gid: int) -> tuple[int, int]:
        """Owner and mode of a new inode, as Linux's inode_init_owner decides them.

        A trusted client sends the caller's fsgid as ``gid`` and has already dropped a
        set-group-ID bit the caller may not set: both are taken as given, except that a
        set-group-ID directory still gives its group (and, to directories, its bit)."""
        if directory.mode & S_ISGID:
            gid = directory.gid
            if mode & S_IFMT == S_IFDIR:
                mode |= S_ISGID
        elif not self._exempt(cred) and not cred.in_group(gid):
            gid = cred.gid
        if mode & S_IFMT != S_IFDIR and mode & S_ISGID and not self._exempt(cred) and not cred.in_group(gid):
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

    def _check_setattr(
        self,
        inode: Inode,
        cred: Cred,
        mode: int | None,
        uid: int | None,
        gid: int | None,
        size: int | None,
        atime: int | None,
        mtime: int | None,
        atime_now: bool,
        mtime_now: bool,
    ) -> None:
        """chmod/chown/truncate/utimensat rules: raise before anything changes."""
        if size is not None:
            if inode.is_dir():
                raise _fail(errno.EISDIR)
            if not inode.is_reg():
                raise _fail(errno.EINVAL)
        if not self._exempt(cred):
            owner = cred.uid == inode.uid
            if mode is not None and not owner:
                raise _fail(errno.EPERM)
            if uid is not None and uid != 0xFFFFFFFF and (not owner or uid != inode.uid):
                raise _fail(errno.EPERM)  # only the owner may "chown" to itself (a no-op)
            if (
                gid is not None
                and gid != 0xFFFFFFFF
                and (not owner or (gid != inode.gid and not cred.in_group(gid)))
            ):
                raise _fail(errno.EPERM)
            if size is not None:
                # A trusted client truncates through an open descriptor (ftruncate) whatever the
                # mode says now; only the server's own enforcement looks at the mode.
                self.check(inode, cred, W_OK)
            if (atime is not None or mtime is not None) and not owner:
                raise _fail(errno.EPERM)
            if (atime_now or mtime_now) and not owner and not self.permitted(inode, cred, W_OK):
                raise _fail(errno.EACCES)
        if size is not None and size > self.max_file_size:
            raise _fail(errno.EFBIG)

    def _chmod_mode(self, inode: Inode, cred: Cred, mode: int, gid: int | None) -> int:
        """The mode a chmod leaves: set-group-ID dropped unless the caller is in the file's group
        (a trusted client has dropped it already, in setattr_prepare)."""
        new = (inode.mode & S_IFMT) | (mode & 0o7777)
        if not self._exempt(cred) and not cred.in_group(gid if gid is not None else inode.gid):
            new &= ~S_ISGID
        return new

    @staticmethod
    def _kill_priv(inode: Inode, in_group: bool = True) -> None:
        """Clear set-user-ID, and set-group-ID where group-execute makes it meaningful or, as
        Linux 6.1 does on write, where the writer is not in the file's group.

        The Linux 9p client leaves this to the server on write (it sends no setattr), so the
        writer's groups are the ones the server knows (the served /etc/group): a writer that is in
        the group only through credentials the server cannot see loses a set-group-ID bit that has
        no group-execute, where a local filesystem would keep it."""
        mode = inode.mode
        if mode & S_ISUID:
            mode &= ~S_ISUID
        if mode & S_ISGID and (mode & S_IXGRP or not in_group):
            mode &= ~S_ISGID
        inode.mode = mode

    # ----------------------------------------------------------------- xattrs

    def _xattr_access(self, inode: Inode, name: str, cred: Cred, write: bool) -> None:
        if not name:
            raise _fail(errno.EINVAL)
        if len(name.encode("utf-8", "surrogateescape")) > XATTR_NAME_MAX:
            raise _fail(errno.ERANGE)
        if name.startswith("user."):
            if not (inode.is_reg() or inode.is_dir()):
                raise _fail(errno.EPERM if write else errno.ENODATA)
            if (
                write
                and inode.is_dir()
                and inode.mode & S_ISVTX
                and not self._exempt(cred)
                and cred.uid != inode.uid
            ):
                raise _fail(errno.EPERM)
            self.check(inode, cred, W_OK if write else R_OK)
        elif name.startswith("trusted."):
            if not self._exempt(cred):
                raise _fail(errno.EPERM if write else errno.ENODATA)
        elif name.startswith("security."):
            if write and not self._exempt(cred):
                raise _fail(errno.EPERM)
        elif name.startswith("system.posix_acl_"):
            raise _fail(errno.EOPNOTSUPP)
        else:
            raise _fail(errno.EOPNOTSUPP)
