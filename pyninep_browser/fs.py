"""The filesystem: inodes, directories, links, data, xattrs, locks, timestamps, permissions, quota.

POSIX semantics with no 9P in it. Callers (the 9P server, the authoring API, image tools) hand it
inodes, names and credentials; it hands back inodes and data or raises ``OSError`` with the errno
Linux would give. It never sees a frame and never touches storage directly: everything lives in
memory, and a store (later) observes changes through ``dirty``.

Data is kept in chunks of ``CHUNK`` bytes so holes in sparse files cost nothing, and a chunk can be
loaded and persisted on its own.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
import time
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

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
    stat.S_IFDIR: 4, stat.S_IFREG: 8, stat.S_IFLNK: 10, stat.S_IFCHR: 2,
    stat.S_IFBLK: 6, stat.S_IFIFO: 1, stat.S_IFSOCK: 12,
}
_NODE_TYPES = (stat.S_IFREG, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK)
_DAY_NS = 86400 * 10**9


def _fail(err: int, what: str = "") -> OSError:
    return OSError(err, os.strerror(err) + (f": {what}" if what else ""))


class Cred(NamedTuple):
    """Who is asking: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups


ROOT = Cred(0, 0)


class DirEntries:
    """A directory's entries with cookies that stay valid while the directory changes.

    Each entry gets a sequence number when it is added; a readdir cookie is the sequence number of
    the last entry returned, so continuing from it neither repeats nor skips entries that were
    there all along, whatever was added or removed in between.
    """

    __slots__ = ("by_name", "_seqs", "_names", "_next", "_dead")
    FIRST = 3  # cookies 1 and 2 are "." and ".."

    def __init__(self) -> None:
        self.by_name: dict[str, tuple[int, Inode]] = {}
        self._seqs: list[int] = []
        self._names: list[str] = []
        self._next = self.FIRST
        self._dead = 0

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str) -> Inode | None:
        e = self.by_name.get(name)
        return e[1] if e is not None else None

    def add(self, name: str, inode: Inode) -> None:
        seq = self._next
        self._next += 1
        self.by_name[name] = (seq, inode)
        self._seqs.append(seq)
        self._names.append(name)

    def remove(self, name: str) -> None:
        del self.by_name[name]
        self._dead += 1
        if self._dead > 64 and self._dead > len(self._seqs) // 2:
            self._compact()

    def _compact(self) -> None:
        pairs = sorted((seq, n) for n, (seq, _) in self.by_name.items())
        self._seqs = [p[0] for p in pairs]
        self._names = [p[1] for p in pairs]
        self._dead = 0

    def iter_from(self, cookie: int) -> Iterator[tuple[int, str, Inode]]:
        i = bisect.bisect_right(self._seqs, cookie)
        seqs, names, by_name = self._seqs, self._names, self.by_name
        while i < len(seqs):
            seq, name = seqs[i], names[i]
            e = by_name.get(name)
            if e is not None and e[0] == seq:
                yield seq, name, e[1]
            i += 1

    def items(self) -> Iterator[tuple[str, Inode]]:
        for name, (_, inode) in self.by_name.items():
            yield name, inode


@dataclass(slots=True, eq=False)
class Inode:
    ino: int
    mode: int
    uid: int
    gid: int
    atime: int  # nanoseconds since the epoch
    mtime: int
    ctime: int
    btime: int
    nlink: int = 0
    rdev: int = 0
    size: int = 0
    gen: int = 0
    version: int = 0
    chunks: dict[int, bytearray] | None = None
    entries: DirEntries | None = None
    parent: Inode | None = None
    target: bytes | None = None
    xattrs: dict[str, bytes] | None = None
    data_bytes: int = 0  # sum of the chunks' lengths, kept up to date (getattr reads it often)
    refs: int = 0  # fids (or other holders) keeping the inode alive after its last unlink
    backend: object | None = None  # a live file's Python object (see authoring)

    @property
    def type(self) -> int:
        return self.mode & S_IFMT

    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    def is_reg(self) -> bool:
        return self.mode & S_IFMT == S_IFREG

    def is_symlink(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK

    @property
    def allocated(self) -> int:
        """Bytes of storage the inode uses (data chunks, symlink target)."""
        if self.chunks:
            return self.data_bytes
        if self.target is not None:
            return len(self.target)
        return 0

    @property
    def blocks(self) -> int:
        """Allocated size in 512-byte units, as stat(2) reports it."""
        return (self.allocated + 511) // 512


@dataclass(slots=True)
class Lock:
    start: int
    end: int  # inclusive; 2**64 - 1 means "to the end of the file, whatever it becomes"
    type: int  # 0 read, 1 write
    owner: object


LOCK_END = (1 << 64) - 1
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2


@dataclass
class StatFS:
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int = NAME_MAX


class Filesystem:
    """An in-memory POSIX filesystem.

    ``quota_bytes``/``quota_inodes`` bound the whole filesystem (ENOSPC past them and what statfs
    reports); ``user_quota_bytes`` bounds what any one non-root uid may own (EDQUOT);
    ``max_file_size`` bounds a file's size (EFBIG). ``clock`` returns nanoseconds since the epoch.
    """

    def __init__(self, *, clock: Callable[[], int] | None = None,
                 quota_bytes: int = 1 << 30, quota_inodes: int = 1 << 20,
                 user_quota_bytes: int | None = None, max_file_size: int = MAX_FILE_SIZE,
                 root_mode: int = 0o755, root_uid: int = 0, root_gid: int = 0,
                 fsid: int | None = None) -> None:
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
        now = self.clock()
        root = self._new_inode(S_IFDIR | (root_mode & 0o7777), root_uid, root_gid, now)
        root.nlink = 2
        root.entries = DirEntries()
        root.parent = root
        self.root = root

    # ----------------------------------------------------------------- bookkeeping

    def _new_inode(self, mode: int, uid: int, gid: int, now: int) -> Inode:
        if self.used_inodes >= self.quota_inodes:
            raise _fail(errno.ENOSPC, "no inodes left")
        ino = self.next_ino
        self.next_ino += 1
        inode = Inode(ino=ino, mode=mode, uid=uid, gid=gid, atime=now, mtime=now, ctime=now,
                      btime=now, gen=1)
        self.inodes[ino] = inode
        self.used_inodes += 1
        self.dirty.add(ino)
        return inode

    def _charge(self, inode: Inode, delta: int) -> None:
        """Account ``delta`` bytes of storage to ``inode``'s owner, or fail without changing anything."""
        if delta > 0:
            if self.used_bytes + delta > self.quota_bytes:
                raise _fail(errno.ENOSPC)
            if self.user_quota_bytes is not None and inode.uid != 0:
                if self.user_bytes.get(inode.uid, 0) + delta > self.user_quota_bytes:
                    raise _fail(errno.EDQUOT)
        self.used_bytes += delta
        self.user_bytes[inode.uid] = self.user_bytes.get(inode.uid, 0) + delta

    def _maybe_free(self, inode: Inode) -> None:
        """Release an inode once no name and no holder refers to it."""
        if inode.nlink > 0 or inode.refs > 0 or inode.ino not in self.inodes:
            return
        self._charge(inode, -inode.allocated - self._xattr_bytes(inode))
        inode.chunks = None
        inode.data_bytes = 0
        inode.target = None
        inode.xattrs = None
        del self.inodes[inode.ino]
        self.locks.pop(inode.ino, None)
        self.used_inodes -= 1
        self.dirty.add(inode.ino)

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

    # ----------------------------------------------------------------- permissions

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

    @staticmethod
    def check_name(name: str) -> None:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise _fail(errno.EINVAL, repr(name))
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise _fail(errno.ENAMETOOLONG)

    def lookup(self, directory: Inode, name: str, cred: Cred = ROOT) -> Inode:
        if directory.entries is None:
            raise _fail(errno.ENOTDIR)
        if cred.uid != 0:  # root may search any directory: skip the check on the hot path
            self.check(directory, cred, X_OK)
        if name == "." or name == "":
            return directory
        if name == "..":
            return directory.parent or directory
        if "/" in name:
            raise _fail(errno.ENOENT, name)
        found = directory.entries.get(name)
        if found is None:
            if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
                raise _fail(errno.ENAMETOOLONG)
            raise _fail(errno.ENOENT, name)
        return found

    def _may_create(self, directory: Inode, name: str, cred: Cred) -> None:
        if directory.entries is None:
            raise _fail(errno.ENOTDIR)
        if directory.nlink == 0:
            raise _fail(errno.ENOENT, "directory was removed")
        self.check_name(name)
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

    def _link_new(self, directory: Inode, name: str, mode: int, cred: Cred, gid: int) -> Inode:
        self._may_create(directory, name, cred)
        mode, gid = self._init_owner(directory, mode, cred, gid)
        now = self.clock()
        inode = self._new_inode(mode, cred.uid, gid, now)
        inode.nlink = 1
        directory.entries.add(name, inode)  # type: ignore[union-attr]
        self._touch(directory, now)
        return inode

    # ----------------------------------------------------------------- creating

    def create(self, directory: Inode, name: str, mode: int, cred: Cred = ROOT,
               gid: int | None = None) -> Inode:
        inode = self._link_new(directory, name, S_IFREG | (mode & 0o7777), cred,
                               cred.gid if gid is None else gid)
        inode.chunks = {}
        return inode

    def mkdir(self, directory: Inode, name: str, mode: int, cred: Cred = ROOT,
              gid: int | None = None) -> Inode:
        if directory.nlink >= LINK_MAX:
            raise _fail(errno.EMLINK)
        inode = self._link_new(directory, name, S_IFDIR | (mode & 0o7777), cred,
                               cred.gid if gid is None else gid)
        inode.nlink = 2
        inode.entries = DirEntries()
        inode.parent = directory
        directory.nlink += 1
        return inode

    def symlink(self, directory: Inode, name: str, target: str | bytes, cred: Cred = ROOT,
                gid: int | None = None) -> Inode:
        raw = target if isinstance(target, bytes) else target.encode("utf-8", "surrogateescape")
        if not raw:
            raise _fail(errno.ENOENT, "empty symlink target")
        if len(raw) >= PATH_MAX:
            raise _fail(errno.ENAMETOOLONG)
        self._may_create(directory, name, cred)
        probe = Inode(0, S_IFLNK, cred.uid, 0, 0, 0, 0, 0)
        self._charge(probe, len(raw))
        try:
            inode = self._link_new(directory, name, S_IFLNK | 0o777, cred,
                                   cred.gid if gid is None else gid)
        except OSError:
            self._charge(probe, -len(raw))
            raise
        inode.target = raw
        inode.size = len(raw)
        return inode

    def mknod(self, directory: Inode, name: str, mode: int, rdev: int = 0, cred: Cred = ROOT,
              gid: int | None = None) -> Inode:
        kind = mode & S_IFMT or S_IFREG
        if kind not in _NODE_TYPES:
            raise _fail(errno.EINVAL, "bad file type")
        if kind in (stat.S_IFCHR, stat.S_IFBLK) and cred.uid != 0:
            raise _fail(errno.EPERM)
        inode = self._link_new(directory, name, kind | (mode & 0o7777), cred,
                               cred.gid if gid is None else gid)
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
        directory.entries.add(name, inode)  # type: ignore[union-attr]
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
        if rmdir:
            if not victim.is_dir():
                raise _fail(errno.ENOTDIR)
            if len(victim.entries):  # type: ignore[arg-type]
                raise _fail(errno.ENOTEMPTY)
        elif victim.is_dir():
            raise _fail(errno.EISDIR)
        self._may_delete(directory, victim, cred)
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

    def rename(self, old_dir: Inode, old_name: str, new_dir: Inode, new_name: str,
               cred: Cred = ROOT) -> None:
        for d in (old_dir, new_dir):
            if d.entries is None:
                raise _fail(errno.ENOTDIR)
        self.check_name(old_name)
        self.check_name(new_name)
        src = self.lookup(old_dir, old_name, cred)
        self.check(new_dir, cred, X_OK)
        dst = new_dir.entries.get(new_name)  # type: ignore[union-attr]
        self._may_delete(old_dir, src, cred)
        if dst is not None:
            self._may_delete(new_dir, dst, cred)
        else:
            if new_dir.nlink == 0:
                raise _fail(errno.ENOENT)
            self.check(new_dir, cred, W_OK | X_OK)
            if len(new_name.encode("utf-8", "surrogateescape")) > NAME_MAX:
                raise _fail(errno.ENAMETOOLONG)
        if src is dst:
            return
        if dst is not None and dst.is_dir() and self._is_ancestor(dst, old_dir):
            raise _fail(errno.ENOTEMPTY, "target is an ancestor of the source")
        if src.is_dir():
            if self._is_ancestor(src, new_dir):
                raise _fail(errno.EINVAL, "directory into its own subtree")
            if new_dir is not old_dir and not self.permitted(src, cred, W_OK):
                raise _fail(errno.EACCES)
            if dst is not None:
                if not dst.is_dir():
                    raise _fail(errno.ENOTDIR)
                if len(dst.entries):  # type: ignore[arg-type]
                    raise _fail(errno.ENOTEMPTY)
            elif new_dir is not old_dir and new_dir.nlink >= LINK_MAX:
                raise _fail(errno.EMLINK)
        elif dst is not None and dst.is_dir():
            raise _fail(errno.EISDIR)
        now = self.clock()
        if dst is not None:
            new_dir.entries.remove(new_name)  # type: ignore[union-attr]
            self._drop_link(new_dir, dst, now)
        old_dir.entries.remove(old_name)  # type: ignore[union-attr]
        new_dir.entries.add(new_name, src)  # type: ignore[union-attr]
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

    # ----------------------------------------------------------------- data

    def open(self, inode: Inode, flags: int, cred: Cred = ROOT) -> None:
        """Check that ``inode`` may be opened with ``flags`` and apply O_TRUNC."""
        acc = flags & O_ACCMODE
        kind = inode.mode & S_IFMT
        if kind == S_IFLNK:
            raise _fail(errno.ELOOP)
        if flags & O_DIRECTORY and kind != S_IFDIR:
            raise _fail(errno.ENOTDIR)
        if kind == S_IFDIR and (acc != O_RDONLY or flags & O_TRUNC):
            raise _fail(errno.EISDIR)
        want = {O_RDONLY: R_OK, O_WRONLY: W_OK, O_RDWR: R_OK | W_OK}.get(acc, R_OK | W_OK)
        if flags & O_TRUNC:
            want |= W_OK
        self.check(inode, cred, want)
        if flags & O_NOATIME and not self._owner_or_root(inode, cred):
            raise _fail(errno.EPERM)
        # Linux truncates on O_TRUNC even with O_RDONLY, given write permission (checked above).
        if flags & O_TRUNC and kind == S_IFREG:
            self.truncate(inode, 0, cred)

    def read(self, inode: Inode, offset: int, count: int) -> list:
        """Up to ``count`` bytes at ``offset``, as a list of buffers (no copies for whole chunks)."""
        if inode.backend is not None:
            return [inode.backend.read(offset, count)]  # type: ignore[attr-defined]
        if inode.chunks is None:
            raise _fail(errno.EISDIR if inode.is_dir() else errno.EINVAL)
        end = min(offset + count, inode.size)
        parts: list = []
        pos = offset
        chunks = inode.chunks
        while pos < end:
            ci, co = divmod(pos, CHUNK)
            take = min(CHUNK - co, end - pos)
            chunk = chunks.get(ci)
            if chunk is None:
                parts.append(bytes(take))
            else:
                have = len(chunk) - co
                if have >= take:
                    parts.append(memoryview(chunk)[co:co + take])
                elif have > 0:
                    parts.append(memoryview(chunk)[co:])
                    parts.append(bytes(take - have))
                else:
                    parts.append(bytes(take))
            pos += take
        self._note_access(inode)
        return parts

    def read_bytes(self, inode: Inode, offset: int, count: int) -> bytes:
        return b"".join(self.read(inode, offset, count))

    def _note_access(self, inode: Inode) -> None:
        # relatime, as Linux mounts by default: cheap, and what `ls -lu` users expect.
        at = inode.atime
        if at <= inode.mtime or at <= inode.ctime:
            inode.atime = self.clock()
        else:
            now = self.clock()
            if now - at >= _DAY_NS:
                inode.atime = now

    def write(self, inode: Inode, offset: int, data, cred: Cred = ROOT) -> int:
        """Write ``data`` at ``offset``; returns how many bytes were written."""
        if inode.backend is not None:
            return inode.backend.write(offset, data)  # type: ignore[attr-defined]
        if inode.chunks is None:
            raise _fail(errno.EISDIR if inode.is_dir() else errno.EINVAL)
        n = len(data)
        if offset >= self.max_file_size and n:
            raise _fail(errno.EFBIG)
        if offset + n > self.max_file_size:
            n = self.max_file_size - offset
        if n == 0:
            return 0
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        chunks = inode.chunks
        # Charge first so a full disk fails before anything changes.
        grow = 0
        pos = offset
        end = offset + n
        while pos < end:
            ci, co = divmod(pos, CHUNK)
            take = min(CHUNK - co, end - pos)
            chunk = chunks.get(ci)
            have = 0 if chunk is None else len(chunk)
            if co + take > have:
                grow += co + take - have
            pos += take
        if grow:
            self._charge(inode, grow)
            inode.data_bytes += grow
        pos = offset
        src = 0
        while pos < end:
            ci, co = divmod(pos, CHUNK)
            take = min(CHUNK - co, end - pos)
            chunk = chunks.get(ci)
            if chunk is None:
                if co == 0 and take == CHUNK:
                    chunks[ci] = bytearray(mv[src:src + take])
                else:
                    chunk = chunks[ci] = bytearray(co)
                    chunk[co:] = mv[src:src + take]
            else:
                if len(chunk) < co:
                    chunk.extend(bytes(co - len(chunk)))
                chunk[co:co + take] = mv[src:src + take]
            pos += take
            src += take
        if end > inode.size:
            inode.size = end
        self._data_changed(inode, cred)
        return n

    def _data_changed(self, inode: Inode, cred: Cred) -> None:
        """After a write or truncate: new data version and times, privileges dropped for users."""
        inode.version += 1
        inode.mtime = inode.ctime = self.clock()
        if cred.uid != 0:
            self._kill_priv(inode)
        self.dirty.add(inode.ino)

    @staticmethod
    def _kill_priv(inode: Inode) -> None:
        """Clear set-user-ID, and set-group-ID where group-execute makes it meaningful."""
        if inode.mode & S_ISUID:
            inode.mode &= ~S_ISUID
        if inode.mode & (S_ISGID | S_IXGRP) == (S_ISGID | S_IXGRP):
            inode.mode &= ~S_ISGID

    def truncate(self, inode: Inode, size: int, cred: Cred = ROOT) -> None:
        if inode.is_dir():
            raise _fail(errno.EISDIR)
        if inode.chunks is None:
            if inode.backend is not None:
                return
            raise _fail(errno.EINVAL)
        if size < 0:
            raise _fail(errno.EINVAL)
        if size > self.max_file_size:
            raise _fail(errno.EFBIG)
        if size < inode.size:
            last, rem = divmod(size, CHUNK)
            freed = 0
            for ci in [ci for ci in inode.chunks if ci > last or (ci == last and rem == 0)]:
                freed += len(inode.chunks.pop(ci))
            chunk = inode.chunks.get(last)
            if chunk is not None and len(chunk) > rem:
                freed += len(chunk) - rem
                del chunk[rem:]
            self._charge(inode, -freed)
            inode.data_bytes -= freed
        inode.size = size
        self._data_changed(inode, cred)

    def readlink(self, inode: Inode) -> bytes:
        if inode.target is None:
            raise _fail(errno.EINVAL)
        self._note_access(inode)
        return inode.target

    # ----------------------------------------------------------------- attributes

    def setattr(self, inode: Inode, cred: Cred = ROOT, *, mode: int | None = None,
                uid: int | None = None, gid: int | None = None, size: int | None = None,
                atime: int | None = None, mtime: int | None = None,
                atime_now: bool = False, mtime_now: bool = False, ctime: bool = False) -> None:
        """Change attributes with chmod/chown/truncate/utimensat rules; all checks before any change."""
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
        if uid == 0xFFFFFFFF:
            uid = None
        if gid == 0xFFFFFFFF:
            gid = None
        now = self.clock()
        if size is not None:
            self.truncate(inode, size, cred)
        if mode is not None:
            new = (inode.mode & S_IFMT) | (mode & 0o7777)
            if cred.uid != 0 and not cred.in_group(gid if gid is not None else inode.gid):
                new &= ~S_ISGID
            inode.mode = new
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

    def statfs(self) -> StatFS:
        bsize = 4096
        blocks = self.quota_bytes // bsize
        used = (self.used_bytes + bsize - 1) // bsize
        free = max(0, blocks - used)
        return StatFS(bsize=bsize, blocks=blocks, bfree=free, bavail=free,
                      files=self.quota_inodes, ffree=max(0, self.quota_inodes - self.used_inodes),
                      fsid=self.fsid)

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

    # ----------------------------------------------------------------- xattrs

    @staticmethod
    def _xattr_bytes(inode: Inode) -> int:
        if not inode.xattrs:
            return 0
        return sum(len(k.encode("utf-8", "surrogateescape")) + len(v) for k, v in inode.xattrs.items())

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

    def getxattr(self, inode: Inode, name: str, cred: Cred = ROOT) -> bytes:
        self._xattr_access(inode, name, cred, write=False)
        value = (inode.xattrs or {}).get(name)
        if value is None:
            raise _fail(errno.ENODATA)
        return value

    def listxattr(self, inode: Inode, cred: Cred = ROOT) -> list[str]:
        names = list(inode.xattrs or ())
        if cred.uid != 0:
            names = [n for n in names if not n.startswith("trusted.")]
        return names

    def setxattr(self, inode: Inode, name: str, value: bytes, flags: int = 0,
                 cred: Cred = ROOT) -> None:
        self._xattr_access(inode, name, cred, write=True)
        if len(value) > XATTR_SIZE_MAX:
            raise _fail(errno.E2BIG)
        xattrs = inode.xattrs or {}
        old = xattrs.get(name)
        if flags & 1 and old is not None:
            raise _fail(errno.EEXIST)
        if flags & 2 and old is None:
            raise _fail(errno.ENODATA)
        key = len(name.encode("utf-8", "surrogateescape"))
        delta = len(value) + key - (0 if old is None else len(old) + key)
        if self._xattr_bytes(inode) + delta > XATTR_TOTAL_MAX:
            raise _fail(errno.ENOSPC)
        self._charge(inode, delta)
        xattrs[name] = bytes(value)
        inode.xattrs = xattrs
        inode.ctime = self.clock()
        self.dirty.add(inode.ino)

    def removexattr(self, inode: Inode, name: str, cred: Cred = ROOT) -> None:
        self._xattr_access(inode, name, cred, write=True)
        if not inode.xattrs or name not in inode.xattrs:
            raise _fail(errno.ENODATA)
        old = inode.xattrs.pop(name)
        self._charge(inode, -(len(old) + len(name.encode("utf-8", "surrogateescape"))))
        inode.ctime = self.clock()
        self.dirty.add(inode.ino)

    # ----------------------------------------------------------------- POSIX byte-range locks

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
                if (lk.owner == owner and lk.type == ltype
                        and lk.start <= new.end + 1 and new.start <= lk.end + 1
                        and not (new.end == LOCK_END and lk.start > new.end)):
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

    # ----------------------------------------------------------------- paths (authoring and tools)

    def _split(self, path: str) -> list[str]:
        if not path.startswith("/"):
            raise _fail(errno.EINVAL, f"not an absolute path: {path!r}")
        return [p for p in path.split("/") if p and p != "."]

    def resolve(self, path: str, *, follow: bool = True, cred: Cred = ROOT) -> Inode:
        """The inode at an absolute path, following symlinks like the kernel (40 at most)."""
        inode, _ = self._walk_path(self._split(path), follow, cred, 0)
        return inode

    def _walk_path(self, parts: list[str], follow: bool, cred: Cred, depth: int
                   ) -> tuple[Inode, int]:
        cur = self.root
        stack = [self.root]
        i = 0
        while i < len(parts):
            name = parts[i]
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                cur = stack[-1]
                i += 1
                continue
            nxt = self.lookup(cur, name, cred)
            last = i == len(parts) - 1
            if nxt.is_symlink() and (follow or not last):
                depth += 1
                if depth > MAX_SYMLINK_DEPTH:
                    raise _fail(errno.ELOOP)
                target = nxt.target.decode("utf-8", "surrogateescape")  # type: ignore[union-attr]
                rest = [p for p in target.split("/") if p and p != "."]
                if target.startswith("/"):
                    stack = [self.root]
                    cur = self.root
                parts = rest + parts[i + 1:]
                i = 0
                continue
            cur = nxt
            stack.append(cur)
            i += 1
        return cur, depth

    def _parent_of(self, path: str, *, create: bool = False) -> tuple[Inode, str]:
        """The directory holding ``path`` and the last name; ``create`` makes missing parents."""
        parts = self._split(path)
        if not parts:
            raise _fail(errno.EEXIST, "/")
        if create:
            return self.makedirs("/" + "/".join(parts[:-1])), parts[-1]
        parent, _ = self._walk_path(parts[:-1], True, ROOT, 0)
        return parent, parts[-1]

    def makedirs(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        """Create a directory and any missing parents (existing ones are fine); returns it."""
        cur = self.root
        for name in self._split(path):
            nxt = cur.entries.get(name) if cur.entries is not None else None  # type: ignore[union-attr]
            if nxt is not None and nxt.is_symlink():
                nxt = self.resolve(self.path_of(cur) + "/" + name)
            if nxt is None:
                nxt = self.mkdir(cur, name, mode, Cred(uid, gid))
            elif not nxt.is_dir():
                raise _fail(errno.ENOTDIR, path)
            cur = nxt
        return cur

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644, uid: int = 0,
                   gid: int = 0) -> Inode:
        """Create or replace a regular file's content (parents are created)."""
        if isinstance(data, str):
            data = data.encode()
        parent, name = self._parent_of(path, create=True)
        inode = parent.entries.get(name)  # type: ignore[union-attr]
        if inode is not None and inode.is_symlink():
            inode = self.resolve(path)
        if inode is None:
            inode = self.create(parent, name, mode, Cred(uid, gid), gid)
        elif not inode.is_reg():
            raise _fail(errno.EISDIR if inode.is_dir() else errno.EINVAL, path)
        else:
            self.truncate(inode, 0)
        self.write(inode, 0, data)
        return inode

    def read_file(self, path: str) -> bytes:
        inode = self.resolve(path)
        if inode.is_dir():
            raise _fail(errno.EISDIR, path)
        return b"".join(self.read(inode, 0, inode.size))

    def add_symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> Inode:
        parent, name = self._parent_of(path, create=True)
        return self.symlink(parent, name, target, Cred(uid, gid), gid)

    def add_node(self, path: str, mode: int, rdev: int = 0, uid: int = 0, gid: int = 0) -> Inode:
        parent, name = self._parent_of(path, create=True)
        inode = self.mknod(parent, name, mode, rdev, ROOT, gid)
        inode.uid = uid
        return inode

    def add_hardlink(self, path: str, existing_path: str) -> Inode:
        inode = self.resolve(existing_path, follow=False)
        parent, name = self._parent_of(path, create=True)
        self.link(parent, name, inode)
        return inode

    def listdir(self, path: str = "/") -> list[str]:
        inode = self.resolve(path)
        if inode.entries is None:
            raise _fail(errno.ENOTDIR, path)
        return [name for name, _ in inode.entries.items()]

    def remove(self, path: str) -> None:
        parent, name = self._parent_of(path)
        victim = self.lookup(parent, name)
        self.unlink(parent, name, rmdir=victim.is_dir())

    def path_of(self, inode: Inode) -> str:
        """An absolute path of a directory (walking parents); files: the first name found."""
        if inode is self.root:
            return ""
        parts = []
        cur = inode
        while cur is not self.root:
            parent = cur.parent
            if parent is None:
                raise _fail(errno.ENOENT)
            for name, child in parent.entries.items():  # type: ignore[union-attr]
                if child is cur:
                    parts.append(name)
                    break
            else:
                raise _fail(errno.ENOENT)
            cur = parent
        return "/" + "/".join(reversed(parts))
