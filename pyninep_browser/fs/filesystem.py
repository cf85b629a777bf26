"""The filesystem: inodes and the tree of names, links, attributes, statfs and quota.

POSIX semantics with no 9P in it. Callers (the 9P server, the authoring API, image tools) hand it
inodes, names and credentials; it hands back inodes and data or raises ``OSError`` with the errno
Linux would give. It never sees a frame and never touches storage directly: everything lives in
memory, and a store (later) observes changes through ``dirty``.

:class:`Filesystem` is assembled from one part per concern, each in its own module: file data
(data.py), xattrs (xattrs.py), byte-range locks (locks.py), permission rules (permissions.py) and
the path-based helpers for authoring (paths.py). This module keeps what ties them together.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .base import BaseContent
from .constants import (
    _NODE_TYPES,
    LINK_MAX,
    MAX_FILE_SIZE,
    NAME_MAX,
    PATH_MAX,
    ROOT_INO,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    W_OK,
    X_OK,
    _fail,
)
from .data import FileData
from .inode import ROOT, Cred, DirEntries, Inode, StatFS
from .locks import ByteRangeLocks, Lock
from .paths import PathHelpers
from .permissions import PermissionRules
from .persist import DEFAULT_CACHE_BYTES, DEFAULT_WRITEBACK_MS, Persistence
from .xattrs import Xattrs


class Filesystem(FileData, Xattrs, ByteRangeLocks, PathHelpers, PermissionRules, Persistence, BaseContent):
    """A POSIX filesystem in memory, optionally kept in a store.

    ``quota_bytes``/``quota_inodes`` bound the whole filesystem (ENOSPC past them and what statfs
    reports); ``user_quota_bytes`` bounds what any one non-root uid may own (EDQUOT);
    ``max_file_size`` bounds a file's size (EFBIG). ``clock`` returns nanoseconds since the epoch.

    ``store`` (a :class:`~pyninep_browser.store.Store`): open the filesystem kept there (an empty
    store gets a new one, made with the ``root_*`` and ``fsid`` arguments), load data chunks on
    demand, keep at most ``cache_bytes`` of clean chunks in memory, and write changes back through
    :meth:`persist` / :meth:`tick` (after ``writeback_ms``). See ``persist.py``.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] | None = None,
        quota_bytes: int = 1 << 30,
        quota_inodes: int = 1 << 20,
        user_quota_bytes: int | None = None,
        max_file_size: int = MAX_FILE_SIZE,
        root_mode: int = 0o755,
        root_uid: int = 0,
        root_gid: int = 0,
        fsid: int | None = None,
        store=None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        writeback_ms: int = DEFAULT_WRITEBACK_MS,
    ) -> None:
        self.clock = clock or time.time_ns
        self.quota_bytes = quota_bytes
        self.quota_inodes = quota_inodes
        self.user_quota_bytes = user_quota_bytes
        self.max_file_size = max_file_size
        self.fsid = fsid if fsid is not None else int.from_bytes(os.urandom(8), "little") >> 1
        self.used_bytes = 0
        self.used_inodes = 0
        self.user_bytes: dict[int, int] = {}
        self.next_ino = ROOT_INO
        self.inodes: dict[int, Inode] = {}
        self.locks: dict[int, list[Lock]] = {}
        # Inodes and chunks changed since a store last looked (a store clears these).
        self.dirty: set[int] = set()
        # Changes made through any operation, ever: a page watches it to know when to look again.
        self.changes = 0
        # Called when files change other than by the 9P clients' own requests (the page's calls,
        # a live file's Python): a client that caches (the guest's cache=loose) must drop what
        # it holds. See outside().
        self.on_outside_change: Callable[[], None] | None = None
        now = self.clock()
        root = self._new_inode(S_IFDIR | (root_mode & 0o7777), root_uid, root_gid, now)
        root.nlink = 2
        root.entries = DirEntries()
        root.parent = root
        self.root = root
        self._init_base()
        self._init_persistence(store, cache_bytes, writeback_ms)
        if store is not None:
            self._open_store()

    # ----------------------------------------------------------------- bookkeeping

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Run work that is not a client's own request (a page's call, a live file's Python): if
        it changed the files, even when it fails half-way, tell ``on_outside_change``."""
        before = self.changes
        try:
            yield
        finally:
            hook = self.on_outside_change
            if hook is not None and self.changes != before:
                hook()

    def _new_inode(self, mode: int, uid: int, gid: int, now: int) -> Inode:
        if self.used_inodes >= self.quota_inodes:
            raise _fail(errno.ENOSPC, "no inodes left")
        ino = self.next_ino
        self.next_ino += 1
        inode = Inode(ino=ino, mode=mode, uid=uid, gid=gid, atime=now, mtime=now, ctime=now, btime=now, gen=1)
        self.inodes[ino] = inode
        self.used_inodes += 1
        self.dirty.add(ino)
        self.changes += 1
        return inode

    def _charge(self, inode: Inode, delta: int) -> None:
        """Account ``delta`` bytes of storage to ``inode``'s owner, or fail without changing anything."""
        if delta > 0:
            if self.used_bytes + delta > self.quota_bytes:
                raise _fail(errno.ENOSPC)
            if self.used_bytes + delta > self._store_limit:
                raise _fail(errno.ENOSPC, "the store is full")
            if (
                self.user_quota_bytes is not None
                and inode.uid != 0
                and self.user_bytes.get(inode.uid, 0) + delta > self.user_quota_bytes
            ):
                raise _fail(errno.EDQUOT)
        self.used_bytes += delta
        self.user_bytes[inode.uid] = self.user_bytes.get(inode.uid, 0) + delta

    def _maybe_free(self, inode: Inode) -> None:
        """Release an inode once no name and no holder refers to it."""
        if inode.nlink > 0 or inode.refs > 0 or inode.ino not in self.inodes:
            return
        self._charge(inode, -inode.allocated - self._xattr_bytes(inode))
        if self.store is not None:
            ino = inode.ino
            if inode.chunks:
                self.dirty_chunks.update((ino, ci) for ci in inode.chunks)
            if inode.entries is not None and inode.entries.changed:
                self._extra_meta_delete.update(f"e:{ino}:{seq}" for seq in inode.entries.changed)
                inode.entries.changed = None
        inode.chunks = None
        inode.base = None
        inode.base_end = 0
        inode.data_bytes = 0
        inode.target = None
        inode.xattrs = None
        del self.inodes[inode.ino]
        self.locks.pop(inode.ino, None)
        self.used_inodes -= 1
        self.dirty.add(inode.ino)
        self.changes += 1

    def set_tree(self, inodes: dict[int, Inode], root: Inode, next_ino: int) -> None:
        """Make ``inodes`` (loaded from a store or a saved state) the whole tree, and count
        what they use again."""
        self.inodes = inodes
        self.root = root
        self.next_ino = next_ino
        self.used_inodes = len(inodes)
        self.used_bytes = 0
        self.user_bytes = {}
        for inode in inodes.values():
            used = inode.allocated + self._xattr_bytes(inode)
            self.used_bytes += used
            self.user_bytes[inode.uid] = self.user_bytes.get(inode.uid, 0) + used
        self.changes += 1

    def adopt_inodes(self, inodes: dict[int, Inode], root: Inode, next_ino: int) -> None:
        """:meth:`set_tree` for a tree built from a saved state: every inode is dirty, so a
        store this filesystem adopts receives all of it."""
        self.set_tree(inodes, root, next_ino)
        self.dirty = set(inodes)

    def forget_holders(self) -> None:
        """Start a fresh life (a loaded image): no fid holds any inode, no lock is held, and
        inodes only a holder kept are freed."""
        for inode in list(self.inodes.values()):
            inode.refs = 0
            self._maybe_free(inode)
        self.locks.clear()

    def ref(self, inode: Inode) -> None:
        inode.refs += 1

    def unref(self, inode: Inode) -> None:
        inode.refs -= 1
        if inode.refs <= 0 and inode.nlink <= 0:
            self._maybe_free(inode)

    def _touch(self, inode: Inode, now: int, *, m: bool = True, c: bool = True) -> None:
        if m:
            inode.mtime = now
        if c:
            inode.ctime = now
        self.dirty.add(inode.ino)
        self.changes += 1

    # ----------------------------------------------------------------- names

    @staticmethod
    def check_name(name: str) -> None:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise _fail(errno.EINVAL, repr(name))
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise _fail(errno.ENAMETOOLONG)

    def lookup(self, directory: Inode, name: str, cred: Cred = ROOT, session: Any = None) -> Inode:
        """The inode ``name`` names in ``directory``. A live directory whose listing does not
        have the name yet is asked again (for ``session``) before the answer is ENOENT."""
        if directory.entries is None:
            raise _fail(errno.ENOTDIR)
        if cred.uid != 0 and not cred.trusted:  # root may search any directory: skip the check
            self.check(directory, cred, X_OK)
        if name == "." or name == "":
            return directory
        if name == "..":
            return directory.parent or directory
        if "/" in name:
            raise _fail(errno.ENOENT, name)
        found = directory.entries.get(name)
        if found is None and directory.backend is not None:
            directory.backend.refresh(session)
            found = directory.entries.get(name)
        if found is None:
            if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
                raise _fail(errno.ENAMETOOLONG)
            raise _fail(errno.ENOENT, name)
        return found

    def linked_at(
        self, inode: Inode, parent: Inode | None = None, name: str | None = None
    ) -> tuple[Inode, str]:
        """Where ``inode`` is linked: ``(directory, name)``. A directory's place is its parent's
        entry; a file's is the hint given (where a client walked it from: hard links have
        several names) if it still holds, else any name it has in ``parent``. ENOENT when it
        has none there (unlinked, or moved away), EBUSY for the root."""
        if inode.is_dir():
            parent = inode.parent
        if parent is not None and parent.entries is not None and parent is not inode:
            if name is not None and parent.entries.get(name) is inode:
                return parent, name
            for other, child in parent.entries.items():
                if child is inode:
                    return parent, other
        if inode is self.root:
            raise _fail(errno.EBUSY, "the root")
        raise _fail(errno.ENOENT)

    def _link_new(self, directory: Inode, name: str, mode: int, cred: Cred, gid: int) -> Inode:
        self._may_create(directory, name, cred)
        mode, gid = self._init_owner(directory, mode, cred, gid)
        now = self.clock()
        inode = self._new_inode(mode, cred.uid, gid, now)
        inode.nlink = 1
        assert directory.entries is not None  # _may_create refused anything else
        directory.entries.add(name, inode)
        self._touch(directory, now)
        return inode

    # ----------------------------------------------------------------- creating

    def create(
        self, directory: Inode, name: str, mode: int, cred: Cred = ROOT, gid: int | None = None
    ) -> Inode:
        inode = self._link_new(
            directory, name, S_IFREG | (mode & 0o7777), cred, cred.gid if gid is None else gid
        )
        inode.chunks = {}
        return inode

    def mkdir(
        self, directory: Inode, name: str, mode: int, cred: Cred = ROOT, gid: int | None = None
    ) -> Inode:
        if directory.nlink >= LINK_MAX:
            raise _fail(errno.EMLINK)
        inode = self._link_new(
            directory, name, S_IFDIR | (mode & 0o7777), cred, cred.gid if gid is None else gid
        )
        inode.nlink = 2
        inode.entries = DirEntries()
        if self.store is not None:
            inode.entries.changed = set()
        inode.parent = directory
        directory.nlink += 1
        return inode

    def symlink(
        self, directory: Inode, name: str, target: str | bytes, cred: Cred = ROOT, gid: int | None = None
    ) -> Inode:
        raw = target if isinstance(target, bytes) else target.encode("utf-8", "surrogateescape")
        if not raw:
            raise _fail(errno.ENOENT, "empty symlink target")
        if len(raw) >= PATH_MAX:
            raise _fail(errno.ENAMETOOLONG)
        self._may_create(directory, name, cred)
        probe = Inode(0, S_IFLNK, cred.uid, 0, 0, 0, 0, 0)
        self._charge(probe, len(raw))
        try:
            inode = self._link_new(directory, name, S_IFLNK | 0o777, cred, cred.gid if gid is None else gid)
        except OSError:
            self._charge(probe, -len(raw))
            raise
        inode.target = raw
        inode.size = len(raw)
        return inode

    def mknod(
        self, directory: Inode, name: str, mode: int, rdev: int = 0, cred: Cred = ROOT, gid: int | None = None
    ) -> Inode:
        kind = mode & S_IFMT or S_IFREG
        if kind not in _NODE_TYPES:
            raise _fail(errno.EINVAL, "bad file type")
        if kind in (stat.S_IFCHR, stat.S_IFBLK) and not self._exempt(cred):
            raise _fail(errno.EPERM)
        inode = self._link_new(
            directory, name, kind | (mode & 0o7777), cred, cred.gid if gid is None else gid
        )
        if kind == S_IFREG:
            inode.chunks = {}
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            inode.rdev = rdev
        return inode

    def link(self, directory: Inode, name: str, inode: Inode, cred: Cred = ROOT) -> None:
        self._may_create(directory, name, cred)  # EEXIST comes before EPERM, as in Linux
        if inode.is_dir():
            raise _fail(errno.EPERM, "hard link to a directory")
        if inode.nlink == 0:
            raise _fail(errno.ENOENT, "file was removed")
        if inode.nlink >= LINK_MAX:
            raise _fail(errno.EMLINK)
        now = self.clock()
        inode.nlink += 1
        assert directory.entries is not None  # _may_create refused anything else
        directory.entries.add(name, inode)
        self._touch(directory, now)
        self._touch(inode, now, m=False)

    # ----------------------------------------------------------------- removing and renaming

    def unlink(self, directory: Inode, name: str, cred: Cred = ROOT, *, rmdir: bool = False) -> None:
        if directory.entries is None:
            raise _fail(errno.ENOTDIR)
        if rmdir and name == ".":
            raise _fail(errno.EINVAL)
        if rmdir and name == "..":
            raise _fail(errno.ENOTEMPTY)
        self.check_name(name)
        victim = self.lookup(directory, name, cred)
        self._may_delete(directory, victim, cred)  # Linux's may_delete: access, then type
        if rmdir:
            if not victim.is_dir():
                raise _fail(errno.ENOTDIR)
            assert victim.entries is not None  # a directory has entries
            if len(victim.entries):
                raise _fail(errno.ENOTEMPTY)
        elif victim.is_dir():
            raise _fail(errno.EISDIR)
        now = self.clock()
        directory.entries.remove(name)
        self._drop_link(directory, victim, now)
        self._touch(directory, now)

    def _drop_link(self, directory: Inode, victim: Inode, now: int) -> None:
        if victim.is_dir():
            victim.nlink = 0
            directory.nlink -= 1
        else:
            victim.nlink -= 1
        self._touch(victim, now, m=False)
        self._maybe_free(victim)

    def rename(self, old_dir: Inode, old_name: str, new_dir: Inode, new_name: str, cred: Cred = ROOT) -> None:
        old_entries, new_entries = old_dir.entries, new_dir.entries
        if old_entries is None or new_entries is None:
            raise _fail(errno.ENOTDIR)
        self.check_name(old_name)
        self.check_name(new_name)
        # Both parents are resolved (search permission) before either name is looked up.
        self.check(old_dir, cred, X_OK)
        self.check(new_dir, cred, X_OK)
        src = self.lookup(old_dir, old_name, cred)
        dst = new_entries.get(new_name)
        # Linux's order: the ancestry traps (do_renameat2), the same-inode no-op, then may_delete
        # of the source, may_delete (with the type rules) or may_create of the target, then the
        # write permission a directory changing parents needs for its "..", then the fs's checks.
        if src.is_dir() and self._is_ancestor(src, new_dir):
            raise _fail(errno.EINVAL, "directory into its own subtree")
        if dst is not None and dst.is_dir() and self._is_ancestor(dst, old_dir):
            raise _fail(errno.ENOTEMPTY, "target is an ancestor of the source")
        if src is dst:
            return
        self._may_delete(old_dir, src, cred)
        if dst is not None:
            self._may_delete(new_dir, dst, cred)
            if src.is_dir() and not dst.is_dir():
                raise _fail(errno.ENOTDIR)
            if dst.is_dir() and not src.is_dir():
                raise _fail(errno.EISDIR)
        else:
            if new_dir.nlink == 0:
                raise _fail(errno.ENOENT)
            self.check(new_dir, cred, W_OK | X_OK)
            if len(new_name.encode("utf-8", "surrogateescape")) > NAME_MAX:
                raise _fail(errno.ENAMETOOLONG)
        if src.is_dir():
            if new_dir is not old_dir and not self.permitted(src, cred, W_OK):
                raise _fail(errno.EACCES)
            if dst is not None:
                assert dst.entries is not None  # a directory (the type rules above)
                if len(dst.entries):
                    raise _fail(errno.ENOTEMPTY)
            elif new_dir is not old_dir and new_dir.nlink >= LINK_MAX:
                raise _fail(errno.EMLINK)
        now = self.clock()
        if dst is not None:
            new_entries.remove(new_name)
            self._drop_link(new_dir, dst, now)
        old_entries.remove(old_name)
        new_entries.add(new_name, src)
        if src.is_dir() and new_dir is not old_dir:
            src.parent = new_dir
            old_dir.nlink -= 1
            new_dir.nlink += 1
        self._touch(old_dir, now)
        self._touch(new_dir, now)
        self._touch(src, now, m=False)

    @staticmethod
    def _is_ancestor(ancestor: Inode, inode: Inode) -> bool:
        """Whether ``ancestor`` is ``inode`` or one of its parent directories."""
        cur: Inode | None = inode
        while cur is not None:
            if cur is ancestor:
                return True
            if cur.parent is cur:
                return False
            cur = cur.parent
        return False

    # ----------------------------------------------------------------- attributes

    def setattr(
        self,
        inode: Inode,
        cred: Cred = ROOT,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime: int | None = None,
        mtime: int | None = None,
        atime_now: bool = False,
        mtime_now: bool = False,
        ctime: bool = False,
    ) -> None:
        """Change attributes with chmod/chown/truncate/utimensat rules; all checks before any change."""
        self._check_setattr(inode, cred, mode, uid, gid, size, atime, mtime, atime_now, mtime_now)
        if uid == 0xFFFFFFFF:
            uid = None
        if gid == 0xFFFFFFFF:
            gid = None
        now = self.clock()
        if size is not None:
            self.truncate(inode, size, cred)
        if mode is not None:
            inode.mode = self._chmod_mode(inode, cred, mode, gid)
        if uid is not None or gid is not None:
            new_uid = inode.uid if uid is None else uid
            if new_uid != inode.uid:
                used = inode.allocated
                self.user_bytes[inode.uid] = self.user_bytes.get(inode.uid, 0) - used
                self.user_bytes[new_uid] = self.user_bytes.get(new_uid, 0) + used
            inode.uid = new_uid
            inode.gid = inode.gid if gid is None else gid
            if mode is None and not inode.is_dir():
                # Linux clears set-user-ID on any chown of a non-directory (root's too), and
                # set-group-ID when group-execute is set (otherwise it marks mandatory locking).
                self._kill_priv(inode)
        if atime_now:
            inode.atime = now
        elif atime is not None:
            inode.atime = atime
        if mtime_now:
            inode.mtime = now
        elif mtime is not None:
            inode.mtime = mtime
        inode.ctime = now
        self.dirty.add(inode.ino)
        self.changes += 1

    def statfs(self) -> StatFS:
        bsize = 4096
        blocks = self.quota_bytes // bsize
        used = (self.used_bytes + bsize - 1) // bsize
        free = max(0, blocks - used)
        if self.store is not None:
            self._refresh_room()  # the store may fill up before the quota does
            if self._store_limit != float("inf"):
                free = max(0, min(free, int(self._store_limit - self.used_bytes) // bsize))
        return StatFS(
            bsize=bsize,
            blocks=blocks,
            bfree=free,
            bavail=free,
            files=self.quota_inodes,
            ffree=max(0, self.quota_inodes - self.used_inodes),
            fsid=self.fsid,
        )

    # ----------------------------------------------------------------- directories

    def readdir(self, directory: Inode, cookie: int) -> Iterator[tuple[int, str, Inode]]:
        """Entries after ``cookie`` as (cookie, name, inode), starting with "." and ".."."""
        entries = directory.entries
        if entries is None:
            raise _fail(errno.ENOTDIR)
        if cookie < 1:
            yield 1, ".", directory
        if cookie < 2:
            yield 2, "..", directory.parent or directory
        yield from entries.iter_from(cookie)
        self._note_access(directory)
