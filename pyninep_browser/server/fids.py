"""Fids: what a client's numbers stand for, and the rules of the fid table.

A fid is in one of four states, and every handler asks for the state it needs through the table
helpers below, so the rules are in one place:

    WALKED       made by Tattach, Twalk (a clone too): names a file; may walk, open, create,
                 change metadata, read or create xattrs, be renamed or removed
    OPEN         after Tlopen or Tlcreate: read, write, readdir, fsync, lock; never walked from
    XATTR_READ   made by Txattrwalk: Tread returns the value (or the name list); Tclunk frees it
    XATTR_WRITE  after Txattrcreate on a WALKED fid: Twrite fills the value, Tclunk commits it

Moves are one way: WALKED to OPEN, WALKED to XATTR_WRITE. Txattrcreate on an OPEN fid is refused
(EBADF): turning an open file into an xattr fid would drop its open file silently, and Linux's
client always creates xattrs through a freshly walked fid.
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from enum import Enum

from .. import protocol as p
from ..fs import O_ACCMODE, O_RDONLY, O_WRONLY, S_IFMT, Cred, Filesystem, Inode, LiveHandle, fail
from ..protocol import NOFID

_QID_TYPE = {stat.S_IFDIR: int(p.QidType.DIR), stat.S_IFLNK: int(p.QidType.SYMLINK)}


def qid_version(inode: Inode) -> int:
    """0 for a live file (Python makes its contents on each read), 1 for every stored one.

    The guest's kernel (pyninep_browser/kernel.py's 9p patch, as Linux 6.6 does) caches a file
    whose qid.version is not 0 and reads a version-0 file from the server every time. The
    version in walks and getattr never moves with the data: Linux keys its inode cache on (path,
    version), and a moving version makes it build a second inode for a file it already has. Opens
    carry the data version instead (:func:`data_version`)."""
    return 0 if inode.backend is not None else 1


def data_version(inode: Inode) -> int:
    """The version a Tlopen's or Tlcreate's qid carries, and Rgetattr's data_version: 0 for a live
    file, and for a stored one a number from 1 to 2**32 - 1 that moves with each write or truncate.

    The guest's kernel remembers the data version its cached pages and attributes came with
    (getattr) and compares it with the one each open returns: another client's write (a second
    guest on ``serve``) is then seen at the next open, as NFS's close-to-open promises."""
    return 0 if inode.backend is not None else inode.version % 0xFFFFFFFF + 1


def qid_of(inode: Inode) -> tuple[int, int, int]:
    """(type, version, path)."""
    return (_QID_TYPE.get(inode.mode & S_IFMT, 0), qid_version(inode), inode.ino)


def open_qid(inode: Inode) -> tuple[int, int, int]:
    """An open's (type, version, path): the version is :func:`data_version`."""
    return (_QID_TYPE.get(inode.mode & S_IFMT, 0), data_version(inode), inode.ino)


class FidState(Enum):
    WALKED = "walked"
    OPEN = "open"
    XATTR_READ = "xattr-read"
    XATTR_WRITE = "xattr-write"


WALKED, OPEN, XATTR_READ, XATTR_WRITE = FidState  # the hot paths compare identities


@dataclass(slots=True, eq=False)
class Fid:
    inode: Inode
    cred: Cred
    parent: Inode | None = None  # the directory it was walked from (for Tremove and Trename)
    name: str | None = None  # the name it was walked by there (hard links have several)
    state: FidState = WALKED
    open_flags: int = -1  # OPEN: the flags it was opened with
    xattr: bytearray | bytes | None = None  # XATTR_*: the value being read or written
    xattr_name: str | None = None  # XATTR_WRITE: the name Tclunk sets
    xattr_size: int = 0  # XATTR_WRITE: the size announced
    xattr_flags: int = 0  # XATTR_WRITE: XATTR_CREATE / XATTR_REPLACE
    lock_owners: set | None = None  # owners that locked through this fid (made on first lock)
    top: Inode | None = None  # the directory it was attached at, if not the root: ".." stops there
    live: LiveHandle | None = None  # an open live file's per-open handle

    @property
    def is_open(self) -> bool:
        return self.state is OPEN

    @property
    def is_xattr(self) -> bool:
        return self.state is XATTR_READ or self.state is XATTR_WRITE

    def walked(self, inode: Inode, parent: Inode | None, name: str | None) -> Fid:
        """A new WALKED fid for ``inode``, reached from this one (same credentials and top)."""
        return Fid(inode, self.cred, parent, name, top=self.top)

    def opened(self, flags: int, live: LiveHandle | None = None) -> None:
        if self.state is not WALKED:
            raise fail(errno.EBADF, "fid already open" if self.state is OPEN else "an xattr fid")
        self.state = OPEN
        self.open_flags = flags
        self.live = live

    def writing_xattr(self, name: str, size: int, flags: int) -> None:
        if self.state is not WALKED:
            raise fail(
                errno.EBADF,
                "xattrcreate needs a walked fid, not an open one"
                if self.state is OPEN
                else "already an xattr fid",
            )
        self.state = XATTR_WRITE
        self.xattr = bytearray()
        self.xattr_name = name
        self.xattr_size = size
        self.xattr_flags = flags


class FidTable:
    """The fid table half of the session: lookups that check a fid's state, and binding."""

    fs: Filesystem
    fids: dict[int, Fid]
    stale_fids: set[int]
    max_fids: int

    def _fid(self, fid: int) -> Fid:
        f = self.fids.get(fid)
        if f is None:
            raise self._missing(fid)
        return f

    def _file_fid(self, fid: int) -> Fid:
        """A fid naming a file (WALKED or OPEN), not an xattr fid."""
        f = self.fids.get(fid)
        if f is None or f.xattr is not None:  # a value is held in the two xattr states only
            raise self._missing(fid)
        return f

    def _missing(self, fid: int) -> OSError:
        if fid in self.stale_fids:  # its file went away while the machine was saved
            return fail(errno.ESTALE, f"fid {fid}: its file is gone since the session was saved")
        return fail(errno.EBADF, f"fid {fid}")

    def _dir_fid(self, fid: int) -> Fid:
        f = self._file_fid(fid)
        if not f.inode.is_dir():
            raise fail(errno.ENOTDIR)
        return f

    @staticmethod
    def _check_open(f: Fid, want_write: bool) -> None:
        """``f`` (a file fid in hand) is OPEN with a mode that allows reading (or writing)."""
        if f.state is not OPEN:
            raise fail(errno.EBADF, "fid not open")
        acc = f.open_flags & O_ACCMODE
        if want_write and acc == O_RDONLY:
            raise fail(errno.EBADF, "not open for writing")
        if not want_write and acc == O_WRONLY:
            raise fail(errno.EBADF, "not open for reading")

    def _new_fid_slot(self, newfid: int, allow: int | None = None) -> None:
        if newfid == NOFID:
            raise fail(errno.EBADF, "NOFID")
        self.stale_fids.discard(newfid)
        if newfid in self.fids and newfid != allow:
            raise fail(errno.EBADF, f"fid {newfid} in use")
        if newfid not in self.fids and len(self.fids) >= self.max_fids:
            raise fail(errno.EMFILE)

    def _bind(self, newfid: int, fid: Fid) -> None:
        old = self.fids.get(newfid)
        self.fs.ref(fid.inode)
        self.fids[newfid] = fid
        if old is not None:
            self._release(old)

    def _release(self, f: Fid) -> None:
        if f.live is not None:  # not clunked (reset, remove, replaced): drop, do not commit
            live, f.live = f.live, None
            live.discard()
        if f.lock_owners:
            for owner in f.lock_owners:
                self.fs.unlock_owner(f.inode, owner)
            f.lock_owners = None
        self.fs.unref(f.inode)

    def _drop_all_fids(self) -> None:
        fids, self.fids = self.fids, {}
        self.stale_fids.clear()
        for f in fids.values():
            self._release(f)
