"""The 9P2000.L session: one handler per message, and the one place errors become Rlerror.

``Server(fs).handle(frame) -> reply`` is the whole contract: bytes in, bytes out, nothing else.
A transport (the v86 shim, a TCP or WebSocket listener) is a loop around it. The server decodes a
request with :mod:`~pyninep_browser.protocol`, calls the
:class:`~pyninep_browser.fs.Filesystem`, and encodes the reply with the structs the protocol's
table compiles; every error becomes an ``Rlerror`` carrying the request's tag, in exactly one
place (:meth:`Server.handle_buffer`). One ``Server`` is one client session; several may share a
filesystem.

A session starts with Tversion: any other request before a Tversion that negotiated 9P2000.L is
refused with EPROTO (Linux's client always sends Tversion first; a TCP or WebSocket client that
does not is talking another protocol, and must not get a fid). A Tversion resets the session:
fids are clunked and deferred requests are answered EINTR.

The rest of the session lives beside this file: fids and their states (:mod:`.fids`), replies
that wait (:mod:`.deferred`), the in-place fast paths (:mod:`.fast`), and who a client is
(:mod:`.identity`). Saving and restoring a session is :mod:`.state`.
"""

from __future__ import annotations

import errno
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from .. import protocol as p
from ..device_numbers import makedev
from ..fs import (
    DT_BY_TYPE,
    F_UNLCK,
    LOCK_END,
    O_APPEND,
    O_CREAT,
    O_EXCL,
    O_TRUNC,
    S_IFDIR,
    S_IFMT,
    ChunksNeeded,
    Filesystem,
    Inode,
    fail,
)
from ..protocol import HEADER, HEADER_SIZE, IOHDRSZ, NOFID, ProtocolError, T
from .deferred import Deferrals
from .fast import FastPaths
from .fids import (
    _QID_TYPE,
    OPEN,
    WALKED,
    XATTR_READ,
    XATTR_WRITE,
    Fid,
    FidTable,
    data_version,
    open_qid,
    qid_of,
    qid_version,
)
from .identity import credentials

log = logging.getLogger("pyninep_browser")

V9FS_MAGIC = 0x01021997
AT_REMOVEDIR = 0x200
DEFAULT_MAX_MSIZE = 4 * 1024 * 1024
MIN_MSIZE = 512
DEFAULT_MAX_FIDS = 65536
PERMISSION_MODELS = ("client", "server")

# Reply layouts, compiled from protocol's table (never written out twice).
_RGETATTR = p.frame_struct(T.Rgetattr)
_RREAD_HDR = p.head_struct(T.Rread)
_RWRITE = p.frame_struct(T.Rwrite)
_EMPTY = p.frame_struct(T.Rclunk)  # every reply without fields: size, type, tag
_RQID = p.frame_struct(T.Rmkdir)  # Rmkdir, Rsymlink, Rmknod, Rattach: a qid
_RQID_IOUNIT = p.frame_struct(T.Rlopen)  # Rlopen, Rlcreate: a qid and iounit
_RWALK_HDR = p.head_struct(T.Rwalk)
_QID = struct.Struct("<BIQ")
_DIRENT = struct.Struct("<BIQQB")  # a readdir entry: qid, offset, type (then the name)
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
# Setattr valid bits as plain ints: IntFlag arithmetic is slow, and Tsetattr is frequent.
_SET_MODE, _SET_UID, _SET_GID, _SET_SIZE = 0x1, 0x2, 0x4, 0x8
_SET_ATIME, _SET_MTIME, _SET_CTIME, _SET_ATIME_SET, _SET_MTIME_SET = 0x10, 0x20, 0x40, 0x80, 0x100
# Plain ints for the hot paths (enum attribute lookups cost more than module globals).
_RGETATTR_T, _RCLUNK, _TVERSION = int(T.Rgetattr), int(T.Rclunk), int(T.Tversion)
_NS = 10**9
_GETATTR_VALID = int(p.GetattrMask.ALL)
_U64 = (1 << 64) - 1  # times before 1970 travel as two's-complement seconds


encode_rdev = makedev  # Tmknod's major and minor as the guest decodes st_rdev


class Server(FidTable, Deferrals, FastPaths):
    """One 9P2000.L session over a :class:`Filesystem`.

    ``permissions`` says who decides access. ``"client"`` (the default; what a Linux guest mounted
    with ``access=client`` expects, and what the page's guest uses): the client's kernel has
    checked every call with the caller's real credentials, so the server applies the request's
    uid and gid and refuses only what no client check covers (names, types, sizes, quotas, a
    removed directory). ``"server"``: the server is the only gatekeeper (``access=user``, clients
    that do not check): it enforces permissions with the attaching uid and the gid and groups
    the served /etc/passwd and /etc/group give it, which is all it can know: supplementary groups
    or capabilities granted any other way are invisible to it.
    """

    def __init__(
        self,
        fs: Filesystem | None = None,
        *,
        max_msize: int = DEFAULT_MAX_MSIZE,
        max_fids: int = DEFAULT_MAX_FIDS,
        max_locks: int | None = None,
        permissions: str = "client",
        on_reply: Callable[[bytes], None] | None = None,
    ) -> None:
        if permissions not in PERMISSION_MODELS:
            raise ValueError(f"permissions must be 'client' or 'server', not {permissions!r}")
        self.permissions = permissions
        self.fs = fs if fs is not None else Filesystem()
        self.max_msize = max_msize
        self.max_fids = max_fids
        # Lock ranges this session may hold at once (None: no cap of its own; the filesystem
        # still caps ranges per file). A server shared by many clients sets it: ENOLCK past it.
        self.max_locks = max_locks
        self.msize = max_msize
        self.version: str | None = None  # set by a Tversion that negotiated 9P2000.L
        self.fids: dict[int, Fid] = {}
        self.on_reply = on_reply
        self.pending: set[int] = set()
        self.deferred_frames: dict[int, bytes] = {}
        self._reruns: dict[int, object] = {}
        self.resume_frames: list[tuple[int, bytes | None]] = []
        # fids a restored session could not re-bind (their file is gone): ESTALE until clunked
        self.stale_fids: set[int] = set()
        self.session_id = id(self)
        self.stats: dict[str, Any] | None = None  # see enable_stats
        self._handlers: dict[int, Callable[..., bytes | None]] = {
            T.Tversion: self.version_,
            T.Tauth: self.auth,
            T.Tattach: self.attach,
            T.Tflush: self.flush,
            T.Twalk: self.walk,
            T.Tclunk: self.clunk,
            T.Tremove: self.remove,
            T.Tlopen: self.lopen,
            T.Tlcreate: self.lcreate,
            T.Tread: self.read,
            T.Twrite: self.write,
            T.Treaddir: self.readdir,
            T.Tfsync: self.fsync,
            T.Tgetattr: self.getattr,
            T.Tsetattr: self.setattr,
            T.Tstatfs: self.statfs,
            T.Treadlink: self.readlink,
            T.Tmkdir: self.mkdir,
            T.Tsymlink: self.symlink,
            T.Tmknod: self.mknod,
            T.Tlink: self.link,
            T.Trename: self.rename,
            T.Trenameat: self.renameat,
            T.Tunlinkat: self.unlinkat,
            T.Txattrwalk: self.xattrwalk,
            T.Txattrcreate: self.xattrcreate,
            T.Tlock: self.lock,
            T.Tgetlock: self.getlock,
        }
        self._fast: dict[int, Callable[[int, Any, int], bytes | None]] = {
            T.Twalk: self._walk_frame,
            T.Tgetattr: self._getattr_frame,
            T.Tclunk: self._clunk_frame,
        }

    # ----------------------------------------------------------------- the one entry point

    def handle(self, frame: bytes | bytearray | memoryview) -> bytes | None:
        """Answer one request frame with one reply frame (``None``: deferred or no tag to answer)."""
        try:
            buf = memoryview(frame)
            if buf.ndim != 1 or buf.itemsize != 1:
                buf = buf.cast("B")
        except (TypeError, ValueError):
            log.error("9P frame is not a bytes-like object: %s", type(frame).__name__)
            return None
        return self.handle_buffer(buf, len(buf))

    def handle_buffer(self, buf: bytearray | memoryview, length: int) -> bytes | None:
        """:meth:`handle` for a transport that reuses one buffer: the frame is ``buf[:length]``."""
        if length < HEADER_SIZE:
            return None
        size, mtype, tag = HEADER.unpack_from(buf, 0)
        try:
            if size < HEADER_SIZE or size > length:
                raise ProtocolError(errno.EPROTO, "size field does not match the frame")
            if self.version is None and mtype != _TVERSION:
                raise ProtocolError(errno.EPROTO, "no session: send Tversion (9P2000.L) first")
            if size > self.msize and mtype != _TVERSION:
                raise ProtocolError(errno.EMSGSIZE, "frame larger than msize")
            fast = self._fast.get(mtype)
            if fast is not None:
                return fast(tag, buf, size)
            if mtype not in self._handlers:
                raise ProtocolError(errno.EOPNOTSUPP, f"message type {mtype} not supported")
            return self._generic(mtype, tag, buf, size)
        except ChunksNeeded as exc:  # nothing changed: load the data, then run it again
            self._await_chunks(tag, bytes(buf[:size]), exc.keys)
            return None  # deferred
        except OSError as exc:
            return p.lerror(tag, exc.errno)
        except ProtocolError as exc:
            return p.lerror(tag, exc.errno)
        except Exception:  # a bug of ours: the guest gets EIO, never a hang
            log.exception("9P request type %s failed", mtype)
            return p.lerror(tag, errno.EIO)

    def enable_stats(self) -> dict[str, Any]:
        """Count requests by type and bytes in and out from now on (``/py/stats`` shows them).

        Off by default, so a server that does not ask pays nothing: this wraps
        :meth:`handle_buffer` for this instance only. Returns the live counters.
        """
        if self.stats is not None:
            return self.stats
        counts: dict[int, int] = {}
        stats = self.stats = {"since": time.time(), "requests": counts, "bytes_in": 0, "bytes_out": 0}
        plain = self.handle_buffer

        def counting(buf: bytearray | memoryview, length: int) -> bytes | None:
            reply = plain(buf, length)
            if length >= HEADER_SIZE:
                mtype = buf[4]
                counts[mtype] = counts.get(mtype, 0) + 1
                stats["bytes_in"] += min(_U32.unpack_from(buf, 0)[0], length)
                if reply is not None:
                    stats["bytes_out"] += len(reply)
            return reply

        # Deliberately dynamic: only this instance pays for counting (mypy forbids method assignment).
        self.handle_buffer = counting  # type: ignore[method-assign]
        return stats

    def _generic(self, mtype: int, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        return self._handlers[mtype](tag, *p.decode_body(mtype, memoryview(buf), HEADER_SIZE, size))

    @staticmethod
    def _qid_reply(rtype: int, tag: int, inode: Inode) -> bytes:
        return _RQID.pack(_RQID.size, rtype, tag, *qid_of(inode))

    @staticmethod
    def _open_reply(rtype: int, tag: int, inode: Inode) -> bytes:
        # iounit 0: the client then uses msize - 24, the most it can.
        return _RQID_IOUNIT.pack(_RQID_IOUNIT.size, rtype, tag, *open_qid(inode), 0)

    @staticmethod
    def _empty(rtype: int, tag: int) -> bytes:
        return _EMPTY.pack(HEADER_SIZE, rtype, tag)

    def reset(self) -> None:
        """End the session as a Tversion would: every fid clunked (locks released, live files
        dropped), every deferred request answered EINTR. The filesystem stays."""
        self._drop_all_fids()
        for tag in sorted(self.pending):
            self._abandon(tag)

    # ----------------------------------------------------------------- session

    def version_(self, tag: int, msize: int, version: str) -> bytes:
        self.reset()
        if msize < MIN_MSIZE:
            raise fail(errno.EINVAL, "msize too small")
        self.msize = min(msize, self.max_msize)
        if version == p.VERSION_9P2000L or version.startswith(p.VERSION_9P2000L + "."):
            self.version = p.VERSION_9P2000L
        else:
            self.version = None
            return p.encode(T.Rversion, tag, self.msize, "unknown")
        return p.encode(T.Rversion, tag, self.msize, self.version)

    def auth(self, tag: int, afid: int, uname: str, aname: str, n_uname: int) -> bytes:
        raise fail(errno.EOPNOTSUPP, "no authentication needed: attach with afid NOFID")

    def attach(self, tag: int, fid: int, afid: int, uname: str, aname: str, n_uname: int) -> bytes:
        if afid != NOFID:
            raise fail(errno.EBADF, "authentication is not used")
        self._new_fid_slot(fid)
        cred = credentials(self.fs, uname, n_uname, trusted=self.permissions == "client")
        root = self.fs.root
        if aname and aname != "/":
            root = self.fs.resolve(aname, cred=cred)
            if not root.is_dir():
                raise fail(errno.ENOTDIR, aname)
        self._bind(fid, Fid(root, cred, top=root if root is not self.fs.root else None))
        return self._qid_reply(T.Rattach, tag, root)

    def flush(self, tag: int, oldtag: int) -> bytes:
        self._abandon(oldtag)  # its reply goes out before Rflush, as 9P requires
        return self._empty(T.Rflush, tag)

    def clunk(self, tag: int, fid: int) -> bytes | None:
        f = self.fids.pop(fid, None)
        if f is None:
            if fid in self.stale_fids:
                self.stale_fids.discard(fid)
                return self._empty(T.Rclunk, tag)
            raise fail(errno.EBADF, f"fid {fid}")
        live, f.live = f.live, None
        try:
            if f.state is XATTR_WRITE:
                self._commit_xattr(f)
        finally:
            self._release(f)
        if live is not None:  # a live file's write function runs at close
            return self._after(tag, live.close(), lambda: _EMPTY.pack(HEADER_SIZE, _RCLUNK, tag))
        return _EMPTY.pack(HEADER_SIZE, _RCLUNK, tag)

    # ----------------------------------------------------------------- walking and opening

    def walk(self, tag: int, fid: int, newfid: int, wnames: list[str]) -> bytes:
        f = self._file_fid(fid)
        if wnames and f.state is OPEN:
            raise fail(errno.EBADF, "walk from an open fid")
        if newfid != fid:
            self._new_fid_slot(newfid)
        cur = f.inode
        parent, last = f.parent, f.name
        qids: list[bytes] = []
        for i, name in enumerate(wnames):
            try:
                nxt = self._step(f, cur, name)
            except OSError:
                if i == 0:
                    raise
                return self._rwalk(tag, qids)
            parent, cur, last = cur, nxt, name
            qids.append(_QID.pack(*qid_of(cur)))
        self._bind(newfid, f.walked(cur, parent, last))
        return self._rwalk(tag, qids)

    def _step(self, f: Fid, cur: Inode, name: str) -> Inode:
        """One name of a walk from ``cur`` by fid ``f``: ".." stops at the fid's attach point."""
        if cur.entries is None:
            raise fail(errno.ENOTDIR)
        if "/" in name or not name:
            raise fail(errno.ENOENT, repr(name))
        if name == ".." and cur is f.top:
            return cur
        return self.fs.lookup(cur, name, f.cred, session=self)

    @staticmethod
    def _rwalk(tag: int, packed_qids: list[bytes]) -> bytes:
        n = len(packed_qids)
        return b"".join([_RWALK_HDR.pack(9 + 13 * n, T.Rwalk, tag, n), *packed_qids])

    def lopen(self, tag: int, fid: int, flags: int) -> bytes | None:
        f = self._file_fid(fid)
        if f.state is not WALKED:
            raise fail(errno.EBADF, "fid already open")
        live = self.fs.open(f.inode, flags, f.cred, session=self)
        f.opened(flags, live)
        if live is not None:
            return self._after(tag, live.start(), lambda: self._open_reply(T.Rlopen, tag, f.inode))
        return self._open_reply(T.Rlopen, tag, f.inode)

    def lcreate(self, tag: int, fid: int, name: str, flags: int, mode: int, gid: int) -> bytes:
        f = self._dir_fid(fid)
        if f.state is not WALKED:
            raise fail(errno.EBADF, "fid already open")
        inode = self.fs.create(f.inode, name, mode, f.cred, gid)
        # The creator may write a file it just made read-only: open without permission checks.
        parent = f.inode
        self.fs.ref(inode)
        self.fs.unref(parent)
        f.inode = inode
        f.parent = parent
        f.name = name
        f.opened(flags & ~(O_CREAT | O_EXCL | O_TRUNC))
        return self._open_reply(T.Rlcreate, tag, inode)

    def read(self, tag: int, fid: int, offset: int, count: int) -> bytes:
        f = self._fid(fid)
        count = min(count, self.msize - IOHDRSZ)
        parts: list[bytes | bytearray | memoryview]
        if f.state is XATTR_READ:
            assert f.xattr is not None  # an xattr read fid holds the value
            parts = [f.xattr[offset : offset + count]]
        elif f.state is XATTR_WRITE:
            raise fail(errno.EBADF, "xattr fid is for writing")
        else:
            self._check_open(f, want_write=False)  # an xattr fid was handled above
            inode = f.inode
            if inode.is_dir():
                raise fail(errno.EISDIR)
            if f.live is not None:
                parts = [f.live.read(offset, count)] if count > 0 else []
            elif count <= 0:
                parts = []
            else:
                parts = self.fs.read(inode, offset, count)
        n = sum(len(x) for x in parts)
        return b"".join([_RREAD_HDR.pack(IOHDRSZ + n, T.Rread, tag, n), *parts])

    def write(self, tag: int, fid: int, offset: int, data: memoryview) -> bytes:
        f = self._fid(fid)
        if f.state is XATTR_WRITE:
            buf = f.xattr
            assert isinstance(buf, bytearray)
            end = offset + len(data)
            if end > f.xattr_size:
                raise fail(errno.ERANGE, "more than the announced xattr size")
            if len(buf) < offset:
                buf.extend(bytes(offset - len(buf)))
            buf[offset:end] = data
            return _RWRITE.pack(11, T.Rwrite, tag, len(data))
        if f.state is XATTR_READ:
            raise fail(errno.EBADF, "xattr fid is for reading")
        self._check_open(f, want_write=True)
        inode = f.inode
        if inode.is_dir():
            raise fail(errno.EISDIR)
        if f.live is not None:
            return _RWRITE.pack(11, T.Rwrite, tag, f.live.write(offset, data))
        if f.open_flags & O_APPEND:
            offset = inode.size
        n = self.fs.write(inode, offset, data, f.cred)
        return _RWRITE.pack(11, T.Rwrite, tag, n)

    def fsync(self, tag: int, fid: int, datasync: int) -> bytes | None:
        f = self._file_fid(fid)
        if f.live is not None:  # a live file's write function sees what was written so far
            return self._after(tag, f.live.fsync(), lambda: self._empty(T.Rfsync, tag))
        if self.fs.store is None:
            return self._empty(T.Rfsync, tag)
        return self._after_commit(tag, fid, datasync)

    def readdir(self, tag: int, fid: int, offset: int, count: int) -> bytes:
        f = self._dir_fid(fid)
        if f.state is not OPEN:
            raise fail(errno.EBADF, "directory not open")
        count = min(count, self.msize - IOHDRSZ)
        parts: list[bytes] = []
        used = 0
        pack = _DIRENT.pack
        for cookie, name, inode in self.fs.readdir(f.inode, offset):
            raw = name.encode("utf-8", "surrogateescape")
            need = 24 + len(raw)
            if used + need > count:
                if not parts:
                    raise fail(errno.EINVAL, "readdir buffer too small for an entry")
                break
            parts.append(pack(*qid_of(inode), cookie, DT_BY_TYPE.get(inode.mode & S_IFMT, 0)))
            parts.append(_U16.pack(len(raw)))
            parts.append(raw)
            used += need
        return b"".join([_RREAD_HDR.pack(IOHDRSZ + used, T.Rreaddir, tag, used), *parts])

    # ----------------------------------------------------------------- metadata

    def getattr(self, tag: int, fid: int, request_mask: int) -> bytes:
        return self._rgetattr(tag, self._file_fid(fid).inode)

    @staticmethod
    def _rgetattr(tag: int, i: Inode) -> bytes:
        kind = i.mode & S_IFMT
        if kind == S_IFDIR:
            size, blocks = 4096, 8
        else:
            size, blocks = i.size, i.blocks
        return _RGETATTR.pack(
            _RGETATTR.size,
            _RGETATTR_T,
            tag,
            _GETATTR_VALID,
            _QID_TYPE.get(kind, 0),
            qid_version(i),
            i.ino,
            i.mode,
            i.uid,
            i.gid,
            i.nlink,
            i.rdev,
            size,
            4096,
            blocks,
            (i.atime // _NS) & _U64,
            i.atime % _NS,
            (i.mtime // _NS) & _U64,
            i.mtime % _NS,
            (i.ctime // _NS) & _U64,
            i.ctime % _NS,
            (i.btime // _NS) & _U64,
            i.btime % _NS,
            i.gen,
            data_version(i),
        )

    def setattr(
        self,
        tag: int,
        fid: int,
        valid: int,
        mode: int,
        uid: int,
        gid: int,
        size: int,
        atime_sec: int,
        atime_nsec: int,
        mtime_sec: int,
        mtime_nsec: int,
    ) -> bytes:
        f = self._file_fid(fid)
        if valid & ~0x1FF:
            raise fail(errno.EINVAL, "unknown setattr bits")
        if valid:
            if (valid & _SET_ATIME_SET and atime_nsec >= _NS) or (
                valid & _SET_MTIME_SET and mtime_nsec >= _NS
            ):
                raise fail(errno.EINVAL, "nanoseconds out of range")
            if valid & _SET_SIZE and size >= 1 << 63:
                raise fail(errno.EINVAL)
            set_atime = valid & _SET_ATIME
            set_mtime = valid & _SET_MTIME
            self.fs.setattr(
                f.inode,
                f.cred,
                mode=mode if valid & _SET_MODE else None,
                uid=uid if valid & _SET_UID else None,
                gid=gid if valid & _SET_GID else None,
                size=size if valid & _SET_SIZE else None,
                atime=_signed(atime_sec) * _NS + atime_nsec if set_atime and valid & _SET_ATIME_SET else None,
                mtime=_signed(mtime_sec) * _NS + mtime_nsec if set_mtime and valid & _SET_MTIME_SET else None,
                atime_now=bool(set_atime and not valid & _SET_ATIME_SET),
                mtime_now=bool(set_mtime and not valid & _SET_MTIME_SET),
                ctime=bool(valid & _SET_CTIME),
            )
        return self._empty(T.Rsetattr, tag)

    def statfs(self, tag: int, fid: int) -> bytes:
        self._file_fid(fid)
        s = self.fs.statfs()
        return p.encode(
            T.Rstatfs,
            tag,
            V9FS_MAGIC,
            s.bsize,
            s.blocks,
            s.bfree,
            s.bavail,
            s.files,
            s.ffree,
            s.fsid,
            s.namelen,
        )

    def readlink(self, tag: int, fid: int) -> bytes:
        f = self._file_fid(fid)
        return p.encode(T.Rreadlink, tag, self.fs.readlink(f.inode))

    # ----------------------------------------------------------------- directory operations

    def mkdir(self, tag: int, dfid: int, name: str, mode: int, gid: int) -> bytes:
        f = self._dir_fid(dfid)
        inode = self.fs.mkdir(f.inode, name, mode, f.cred, gid)
        return self._qid_reply(T.Rmkdir, tag, inode)

    def symlink(self, tag: int, fid: int, name: str, symtgt: str, gid: int) -> bytes:
        f = self._dir_fid(fid)
        inode = self.fs.symlink(f.inode, name, symtgt, f.cred, gid)
        return self._qid_reply(T.Rsymlink, tag, inode)

    def mknod(self, tag: int, dfid: int, name: str, mode: int, major: int, minor: int, gid: int) -> bytes:
        f = self._dir_fid(dfid)
        inode = self.fs.mknod(f.inode, name, mode, encode_rdev(major, minor), f.cred, gid)
        return self._qid_reply(T.Rmknod, tag, inode)

    def link(self, tag: int, dfid: int, fid: int, name: str) -> bytes:
        d = self._dir_fid(dfid)
        f = self._file_fid(fid)
        self.fs.link(d.inode, name, f.inode, d.cred)
        return self._empty(T.Rlink, tag)

    def renameat(self, tag: int, olddirfid: int, oldname: str, newdirfid: int, newname: str) -> bytes:
        od = self._dir_fid(olddirfid)
        nd = self._dir_fid(newdirfid)
        self.fs.rename(od.inode, oldname, nd.inode, newname, od.cred)
        return self._empty(T.Rrenameat, tag)

    def rename(self, tag: int, fid: int, dfid: int, name: str) -> bytes:
        f = self._file_fid(fid)
        d = self._dir_fid(dfid)
        parent, old = self.fs.linked_at(f.inode, f.parent, f.name)
        self.fs.rename(parent, old, d.inode, name, f.cred)
        f.parent, f.name = d.inode, name
        return self._empty(T.Rrename, tag)

    def unlinkat(self, tag: int, dirfd: int, name: str, flags: int) -> bytes:
        d = self._dir_fid(dirfd)
        if flags & ~AT_REMOVEDIR:
            raise fail(errno.EINVAL, "unknown unlinkat flags")
        self.fs.unlink(d.inode, name, d.cred, rmdir=bool(flags & AT_REMOVEDIR))
        return self._empty(T.Runlinkat, tag)

    def remove(self, tag: int, fid: int) -> bytes:
        if fid in self.stale_fids:  # Tremove clunks the fid whatever it answers
            self.stale_fids.discard(fid)
            raise fail(errno.ESTALE, f"fid {fid}: its file is gone since the session was saved")
        f = self._file_fid(fid)
        try:
            parent, name = self.fs.linked_at(f.inode, f.parent, f.name)
            self.fs.unlink(parent, name, f.cred, rmdir=f.inode.is_dir())
        finally:
            # Tremove clunks the fid even when the remove fails.
            self.fids.pop(fid, None)
            self._release(f)
        return self._empty(T.Rremove, tag)

    # ----------------------------------------------------------------- xattrs

    def xattrwalk(self, tag: int, fid: int, newfid: int, name: str) -> bytes:
        f = self._file_fid(fid)
        self._new_fid_slot(newfid, allow=fid)
        if name:
            value = self.fs.getxattr(f.inode, name, f.cred)
        else:
            value = b"".join(
                n.encode("utf-8", "surrogateescape") + b"\0" for n in self.fs.listxattr(f.inode, f.cred)
            )
        x = f.walked(f.inode, f.parent, f.name)
        x.state, x.xattr = XATTR_READ, bytes(value)
        self._bind(newfid, x)
        return p.encode(T.Rxattrwalk, tag, len(value))

    def xattrcreate(self, tag: int, fid: int, name: str, attr_size: int, flags: int) -> bytes:
        f = self._file_fid(fid)
        if flags & ~3:
            raise fail(errno.EINVAL, "unknown xattr flags")
        # Access and XATTR_CREATE/REPLACE are checked now so the caller hears early; again at clunk.
        self.fs.check_setxattr(f.inode, name, attr_size, flags, f.cred)
        f.writing_xattr(name, attr_size, flags)
        return self._empty(T.Rxattrcreate, tag)

    def _commit_xattr(self, f: Fid) -> None:
        name = f.xattr_name
        assert name is not None
        value = bytes(f.xattr or b"")
        if f.xattr_size == 0 and not value:
            self.fs.removexattr(f.inode, name, f.cred)
            return
        if len(value) != f.xattr_size:
            raise fail(errno.EINVAL, "xattr value shorter than announced")
        self.fs.setxattr(f.inode, name, value, f.xattr_flags, f.cred)

    # ----------------------------------------------------------------- locks

    @staticmethod
    def _range(start: int, length: int) -> tuple[int, int]:
        if length == 0:
            return start, LOCK_END
        end = start + length - 1
        if end > LOCK_END:
            raise fail(errno.EOVERFLOW)
        return start, end

    def lock(
        self, tag: int, fid: int, type: int, flags: int, start: int, length: int, proc_id: int, client_id: str
    ) -> bytes:
        f = self._file_fid(fid)
        if type not in (0, 1, 2):
            raise fail(errno.EINVAL, "bad lock type")
        if f.state is not OPEN:
            raise fail(errno.EBADF, "fid not open")
        lo, hi = self._range(start, length)
        owner = (self.session_id, client_id, proc_id)
        if type != F_UNLCK and self.max_locks is not None and self._locks_held() >= self.max_locks:
            raise fail(errno.ENOLCK, f"this session holds {self.max_locks} locks")
        ok = self.fs.lock(f.inode, owner, type, lo, hi)
        if ok and type != F_UNLCK:
            if f.lock_owners is None:
                f.lock_owners = set()
            f.lock_owners.add(owner)
        status = p.LockStatus.SUCCESS if ok else p.LockStatus.BLOCKED
        return p.encode(T.Rlock, tag, status)

    def _locks_held(self) -> int:
        sid = self.session_id
        return sum(
            1
            for locks in self.fs.locks.values()
            for lk in locks
            if isinstance(lk.owner, tuple) and lk.owner[0] == sid
        )

    def getlock(
        self, tag: int, fid: int, type: int, start: int, length: int, proc_id: int, client_id: str
    ) -> bytes:
        f = self._file_fid(fid)
        if type not in (0, 1):
            raise fail(errno.EINVAL, "bad lock type")
        lo, hi = self._range(start, length)
        owner = (self.session_id, client_id, proc_id)
        lk = self.fs.conflict(f.inode, owner, type, lo, hi)
        if lk is None:
            return p.encode(T.Rgetlock, tag, F_UNLCK, start, length, proc_id, client_id)
        owner_id = lk.owner if isinstance(lk.owner, tuple) and len(lk.owner) == 3 else (0, "", 0)
        length_out = 0 if lk.end == LOCK_END else lk.end - lk.start + 1
        return p.encode(T.Rgetlock, tag, lk.type, lk.start, length_out, owner_id[2], owner_id[1])


def _signed(sec: int) -> int:
    """Seconds arrive as u64; times before 1970 are two's-complement negatives."""
    return sec - (1 << 64) if sec >= 1 << 63 else sec
