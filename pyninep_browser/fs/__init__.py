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

from . import constants
from .constants import *  # noqa: F403 - every public limit, flag and mode bit is part of fs
from .filesystem import Filesystem
from .inode import ROOT, Backend, Cred, DirEntries, FileBackend, Inode, LiveHandle, StatFS
from .locks import F_RDLCK, F_UNLCK, F_WRLCK, LOCK_END, Lock
from .persist import FORMAT as STORE_FORMAT
from .persist import ChunksNeeded

__all__ = [
    *constants.__all__,
    "Filesystem",
    "ROOT",
    "Cred",
    "DirEntries",
    "Inode",
    "Backend",
    "FileBackend",
    "LiveHandle",
    "StatFS",
    "F_RDLCK",
    "F_UNLCK",
    "F_WRLCK",
    "LOCK_END",
    "Lock",
    "ChunksNeeded",
    "STORE_FORMAT",
]
