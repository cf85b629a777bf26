"""Limits, mode bits, open flags and the errno helper shared by every part of the filesystem."""

from __future__ import annotations

import os
import stat

CHUNK = 64 * 1024
NAME_MAX = 255
PATH_MAX = 4096
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
XATTR_TOTAL_MAX = 256 * 1024
LINK_MAX = 65000
MAX_FILE_SIZE = 1 << 40  # 1 TiB: well past anything a page holds, below 2**63
MAX_SYMLINK_DEPTH = 40
MAX_LOCKS_PER_INODE = 4096  # past this a lock request gets ENOLCK: clients cannot grow memory without bound
ROOT_INO = 1

S_IFMT = 0o170000
S_IFDIR = stat.S_IFDIR
S_IFREG = stat.S_IFREG
S_IFLNK = stat.S_IFLNK
S_ISUID = stat.S_ISUID
S_ISGID = stat.S_ISGID
S_ISVTX = stat.S_ISVTX
S_IXGRP = stat.S_IXGRP

R_OK, W_OK, X_OK = 4, 2, 1

# Linux's x86 open flags (the values on the wire).
O_ACCMODE = 0o3
O_RDONLY, O_WRONLY, O_RDWR = 0, 1, 2
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000
O_APPEND = 0o2000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_NOATIME = 0o1000000

DT_BY_TYPE = {
    stat.S_IFDIR: 4,
    stat.S_IFREG: 8,
    stat.S_IFLNK: 10,
    stat.S_IFCHR: 2,
    stat.S_IFBLK: 6,
    stat.S_IFIFO: 1,
    stat.S_IFSOCK: 12,
}
_NODE_TYPES = (stat.S_IFREG, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK)
_DAY_NS = 86400 * 10**9


def fail(err: int, what: str = "") -> OSError:
    """The error to raise for ``err`` (a host errno), with what failed: the server turns it into
    an Rlerror carrying Linux's number."""
    return OSError(err, os.strerror(err) + (f": {what}" if what else ""))


_fail = fail  # the name the fs modules have always used

__all__ = [
    "CHUNK",
    "DT_BY_TYPE",
    "LINK_MAX",
    "MAX_FILE_SIZE",
    "MAX_LOCKS_PER_INODE",
    "MAX_SYMLINK_DEPTH",
    "NAME_MAX",
    "O_ACCMODE",
    "O_APPEND",
    "O_CREAT",
    "O_DIRECTORY",
    "O_EXCL",
    "O_NOATIME",
    "O_NOFOLLOW",
    "O_RDONLY",
    "O_RDWR",
    "O_TRUNC",
    "O_WRONLY",
    "PATH_MAX",
    "R_OK",
    "ROOT_INO",
    "S_IFDIR",
    "S_IFLNK",
    "S_IFMT",
    "S_IFREG",
    "S_ISGID",
    "S_ISUID",
    "S_ISVTX",
    "S_IXGRP",
    "W_OK",
    "X_OK",
    "XATTR_NAME_MAX",
    "XATTR_SIZE_MAX",
    "XATTR_TOTAL_MAX",
    "fail",
]
