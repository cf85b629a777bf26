"""The filesystem package: POSIX semantics in memory, split by concern.

- ``constants``: limits, mode bits, open flags, the errno helper
- ``inode``: ``Inode``, ``DirEntries``, ``Cred``, ``StatFS``, and ``Backend``/``FileBackend`` (what
  a live file's Python object answers)
- ``filesystem``: ``Filesystem`` (the tree: create, link, unlink, rename, setattr, statfs, quota)
- ``data``: file data (open, read, write, truncate) in ``CHUNK``-sized chunks
- ``xattrs``: extended attributes
- ``locks``: POSIX byte-range locks
- ``permissions``: every permission rule (the one place to change who may do what)
- ``paths``: path-based helpers for authoring and tools
- ``persist``: keeping it in a store, joining ``records`` (the store's record format), ``check``
  (opening a store: check and repair), ``commit`` (commits, write-behind) and ``chunks`` (the
  chunk cache)
- ``stateformat``: the state format (images, save states, sessions): head, named records, blob
- ``image``: filesystem images: save and load a filesystem, the image file container

Nothing here imports the 9P server, the page bridge or authoring.

Everything importable from the former ``fs`` module is importable from here.
"""

from .constants import (
    CHUNK,
    DT_BY_TYPE,
    LINK_MAX,
    MAX_FILE_SIZE,
    MAX_LOCKS_PER_INODE,
    MAX_SYMLINK_DEPTH,
    NAME_MAX,
    O_ACCMODE,
    O_APPEND,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOATIME,
    O_NOFOLLOW,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    PATH_MAX,
    R_OK,
    ROOT_INO,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    S_ISGID,
    S_ISUID,
    S_ISVTX,
    S_IXGRP,
    W_OK,
    X_OK,
    XATTR_NAME_MAX,
    XATTR_SIZE_MAX,
    XATTR_TOTAL_MAX,
    fail,
)
from .filesystem import Filesystem
from .inode import ROOT, Backend, Cred, DirEntries, FileBackend, Inode, StatFS
from .locks import F_RDLCK, F_UNLCK, F_WRLCK, LOCK_END, Lock
from .persist import FORMAT as STORE_FORMAT
from .persist import ChunksNeeded

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
    "Filesystem",
    "ROOT",
    "Cred",
    "DirEntries",
    "Inode",
    "Backend",
    "FileBackend",
    "StatFS",
    "F_RDLCK",
    "F_UNLCK",
    "F_WRLCK",
    "LOCK_END",
    "Lock",
    "ChunksNeeded",
    "STORE_FORMAT",
    "fail",
]
