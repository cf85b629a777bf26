"""Saving and restoring, in one place to import from: filesystem images, complete states of a
server (filesystem and session) and session-only states.

The format (:mod:`pyninep_browser.fs.stateformat`) is ours and stable across releases: every
older format is read, a newer one is refused in one line (:class:`SnapshotError`), and nothing
in a state is executed on load. Filesystem images live in :mod:`pyninep_browser.fs.image` (no
server needed); server and session states in :mod:`pyninep_browser.server.state`.

Directory entries keep their readdir sequence numbers and fids keep their inodes, states, open
modes and locks, so a guest restored from a v86 save state carries on mid-``ls`` with its files
still open.
"""

from .fs.image import load_filesystem, save_filesystem
from .fs.stateformat import FORMAT, MAGIC, SnapshotError
from .server.state import ForeignFilesystem, restore, restore_session, save, save_session

__all__ = [
    "SnapshotError",
    "ForeignFilesystem",
    "save",
    "restore",
    "save_session",
    "restore_session",
    "save_filesystem",
    "load_filesystem",
    "FORMAT",
    "MAGIC",
]
