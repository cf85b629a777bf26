"""The 9P2000.L session: version and attach, fids, walking, opening, readdir cookies, locks, flush.

``Server(fs).handle(frame) -> reply`` is the whole contract: bytes in, bytes out, nothing else.
A transport (the v86 shim, a TCP or WebSocket listener) is a loop around it. The server decodes a
request with :mod:`protocol`, calls the :class:`~pyninep_browser.fs.Filesystem`, and encodes the
reply; every error becomes an ``Rlerror`` carrying the request's tag, in exactly one place
(:meth:`Server.handle`). One ``Server`` is one client session; several may share a filesystem.

A reply may be *deferred*: a handler calls :meth:`Server.defer` and returns ``None``, and whoever
finishes the work calls :meth:`Server.complete`, which delivers the reply through ``on_reply``.
Every request gets exactly one reply: Tflush (or a Tversion reset) answers a deferred request that
has not completed with EINTR, before Rflush, and its late completion is dropped.

Live files (:mod:`pyninep_browser.authoring`): an inode whose ``backend`` is set is opened through
it; the open fid holds the handle it returns, and read, write, fsync and clunk go to that handle.
A handle call may return an awaitable (an async live function): the reply is then deferred.
"""

from __future__ import annotations

import errno
import logging
import time
import stat
import struct
from dataclasses import dataclass
from typing import Any, Callable

from . import protocol as p
from .fs import (S_IFMT, DT_BY_TYPE, F_UNLCK, LOCK_END, O_ACCMODE, O_APPEND, O_CREAT, O_EXCL,
                 O_RDONLY, O_TRUNC, O_WRONLY, ChunksNeeded, Cred, Filesystem, Inode, _fail,
                 NAME_MAX, XATTR_SIZE_MAX)
from .protocol import HEADER, HEADER_SIZE, IOHDRSZ, NOFID, ProtocolError, T

log = logging.getLogger("pyninep_browser")

V9FS_MAGIC = 0x01021997
AT_REMOVEDIR = 0x200
DEFAULT_MAX_MSIZE = 4 * 1024 * 1024
MIN_MSIZE = 512
DEFAULT_MAX_FIDS = 65536
NONUNAME = 0xFFFFFFFF
NOBODY = 65534

_RGETATTR = struct.Struct("<IBHQBIQIII" + "Q" * 15)
_RREAD_HDR = struct.Struct("<IBHI")
_RWRITE = struct.Struct("<IBHI")
_EMPTY = struct.Struct("<IBH")
_QID_ENTRY = struct.Struct("<BIQQB")
_QID = struct.Struct("<BIQ")
_RQID = struct.Struct("<IBHBIQ")  # Rmkdir, Rsymlink, Rmknod, Rattach: a qid
_RQID_IOUNIT = struct.Struct("<IBHBIQI")  # Rlopen, Rlcreate: a qid and iounit
# Setattr valid bits as plain ints: IntFlag arithmetic is slow, and Tsetattr is frequent.
_SET_MODE, _SET_UID, _SET_GID, _SET_SIZE = 0x1, 0x2, 0x4, 0x8
_SET_ATIME, _SET_MTIME, _SET_CTIME, _SET_ATIME_SET, _SET_MTIME_SET = 0x10, 0x20, 0x40, 0x80, 0x100
_RWALK_HDR = struct.Struct("<IBHH")
_RWALK1 = struct.Struct("<IBHHBIQ")  # an Rwalk with one qid
_TWALK_HDR = struct.Struct("<IIH")
_TFSYNC = struct.Struct("<IBHII")
_U32 = struct.Struct("<I")
# Plain ints for the hot paths (enum attribute lookups cost more than module globals).
_RWALK, _RGETATTR_T, _RCLUNK = int(T.Rwalk), int(T.Rgetattr), int(T.Rclunk)
_S_IFDIR = stat.S_IFDIR
_U16 = struct.Struct("<H")
_NS = 10**9
_GETATTR_VALID = int(p.GetattrMask.ALL)
_U64 = (1 << 64) - 1  # times before 1970 travel as two's-complement seconds


_QID_TYPE = {stat.S_IFDIR: int(p.QidType.DIR), stat.S_IFLNK: int(p.QidType.SYMLINK)}


def qid_of(inode: Inode) -> tuple[int, int, int]:
    """(type, version, path). version stays 0: Linux keys its inode cache on (path, version), and
    a changing version makes it build a second inode for a file it already has; getattr's
    data_version carries the data version instead."""
    return (_QID_TYPE.get(inode.mode & S_IFMT, 0), 0, inode.ino)


def encode_rdev(major: int, minor: int) -> int:
    """Linux's new_encode_dev: what the guest decodes st_rdev with."""
    return (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & ~0xFF) << 12)


@dataclass(slots=True, eq=False)
class Fid:
    inode: Inode
    cred: Cred
    parent: Inode | None = None  # the directory it was walked from (for Tremove and Trename)
    name: str | None = None  # the name it was walked by there (hard links have several)
    open_flags: int = -1  # -1: not open
    xattr: bytearray | bytes | None = None  # value being read or written through an xattr fid
    xattr_name: str | None = None  # set: an xattr fid created by Txattrcreate
    xattr_size: int = 0
    xattr_flags: int = 0
    lock_owners: set | None = None  # owners that locked through this fid (made on first lock)
    top: Inode | None = None  # the directory it was attached at, if not the root: ".." stops there
    live: Any = None  # an open live file's per-open handle (see authoring)

    @property
    def is_open(self) -> bool:
        return self.open_flags >= 0

    @property
    def is_xattr(self) -> bool:
        return self.xattr is not None


PERMISSION_MODELS = ("client", "server")


class Server:
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

    def __init__(self, fs: Filesystem | None = None, *, max_msize: int = DEFAULT_MAX_MSIZE,
                 max_fids: int = DEFAULT_MAX_FIDS, permissions: str = "client",
                 on_reply: Callable[[bytes], None] | None = None) -> None:
        if permissions not in PERMISSION_MODELS:
            raise ValueError(f"permissions must be 'client' or 'server', not {permissions!r}")
        self.permissions = permissions
        self.fs = fs if fs is not None else Filesystem()
        self.max_msize = max_msize
        self.max_fids = max_fids
        self.msize = max_msize
        self.version: str | None = None
        self.fids: dict[int, Fid] = {}
        self.on_reply = on_reply
        self.pending: set[int] = set()  # tags whose reply is deferred
        # Deferred requests that are re-run or answered from their frame (data loading, fsync),
        # by tag; a snapshot records them so a restored server can answer them.
        self.deferred_frames: dict[int, bytes] = {}
        self._reruns: dict[int, object] = {}
        self.resume_frames: list[tuple[int, bytes | None]] = []  # from a restored state
        # fids a restored session could not re-bind (their file is gone): ESTALE until clunked
        self.stale_fids: set[int] = set()
        self.session_id = id(self)
        self.stats: dict[str, Any] | None = None  # see enable_stats
        self._handlers: dict[int, Callable[..., bytes | None]] = {
            T.Tversion: self.version_, T.Tauth: self.auth, T.Tattach: self.attach,
            T.Tflush: self.flush, T.Twalk: self.walk, T.Tclunk: self.clunk,
            T.Tremove: self.remove, T.Tlopen: self.lopen, T.Tlcreate: self.lcreate,
            T.Tread: self.read, T.Twrite: self.write, T.Treaddir: self.readdir,
            T.Tfsync: self.fsync, T.Tgetattr: self.getattr, T.Tsetattr: self.setattr,
            T.Tstatfs: self.statfs, T.Treadlink: self.readlink, T.Tmkdir: self.mkdir,
            T.Tsymlink: self.symlink, T.Tmknod: self.mknod, T.Tlink: self.link,
            T.Trename: self.rename, T.Trenameat: self.renameat, T.Tunlinkat: self.unlinkat,
            T.Txattrwalk: self.xattrwalk, T.Txattrcreate: self.xattrcreate,
            T.Tlock: self.lock, T.Tgetlock: self.getlock,
        }
        # The lookup triplet is nine messages in ten a guest sends (stat, open, create all walk,
        # getattr and clunk): these decode their own fixed layouts and skip the generic decoder.
        self._fast: dict[int, Callable[[int, Any, int], bytes | None]] = {
            T.Twalk: self._walk_frame, T.Tgetattr: self._getattr_frame, T.Tclunk: self._clunk_frame,
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
            if size > self.msize and mtype != T.Tversion:
                raise ProtocolError(errno.EMSGSIZE, "frame larger than msize")
            fast = self._fast.get(mtype)
            if fast is not None:
                return fast(tag, buf, size)
            if mtype not in self._handlers:
                raise ProtocolError(errno.EOPNOTSUPP, f"message type {mtype} not supported")
            return self._generic(mtype, tag, buf, size)
        except ChunksNeeded as exc:  # nothing changed: load the data, then run it again
            return self._await_chunks(tag, bytes(buf[:size]), exc.keys)
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

        self.handle_buffer = counting  # type: ignore[method-assign]
        return stats

    def _generic(self, mtype: int, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        return self._handlers[mtype](tag, *p.decode_body(mtype, memoryview(buf), HEADER_SIZE, size))

    # Fast paths: the same checks and the same answers as walk, getattr and clunk below (the
    # differential and unit tests run through them), with the frame decoded in place.

    def _walk_frame(self, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        if size < 17:
            raise ProtocolError(errno.EPROTO, "frame too short")
        fid, newfid, nwname = _TWALK_HDR.unpack_from(buf, HEADER_SIZE)
        if nwname == 0 and size == 17:  # a clone: the client is about to open or create
            f = self._file_fid(fid)
            if newfid != fid:
                self._new_fid_slot(newfid)
            self._bind(newfid, Fid(f.inode, f.cred, f.parent, f.name, top=f.top))
            return _RWALK_HDR.pack(9, _RWALK, tag, 0)
        if nwname != 1 or size < 19:
            return self._generic(T.Twalk, tag, buf, size)
        (length,) = _U16.unpack_from(buf, 17)
        if 19 + length != size:
            return self._generic(T.Twalk, tag, buf, size)  # it says what is wrong
        name = str(buf[19:size], "utf-8", "surrogateescape")
        f = self._file_fid(fid)
        if f.open_flags >= 0:
            raise _fail(errno.EBADF, "walk from an open fid")
        if newfid != fid:
            self._new_fid_slot(newfid)
        cur = f.inode
        entries = cur.entries
        cred = f.cred
        searchable = cred.uid == 0 or cred.trusted  # no search permission to check
        hit = entries.by_name.get(name) if entries is not None and searchable else None
        if hit is not None:
            nxt = hit[1]
        elif (entries is not None and searchable and len(name) < NAME_MAX // 4 and name
              and name != "." and name != ".." and "/" not in name and cur.backend is None):
            # A plain miss (every create starts with one): what lookup would raise, without the
            # exception. Names this short cannot be ENAMETOOLONG in any encoding.
            return p.lerror(tag, errno.ENOENT)
        else:  # the full rules, and their errors
            nxt = self._step(f, cur, name)
        self.fs.ref(nxt)
        fids = self.fids
        old = fids.get(newfid)
        fids[newfid] = Fid(nxt, cred, cur, name, top=f.top)
        if old is not None:
            self._release(old)
        return _RWALK1.pack(22, _RWALK, tag, 1, _QID_TYPE.get(nxt.mode & S_IFMT, 0), 0, nxt.ino)

    def _getattr_frame(self, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        if size != 19:
            raise ProtocolError(errno.EPROTO, "frame size does not match the message")
        (fid,) = _U32.unpack_from(buf, HEADER_SIZE)  # every attribute is always returned
        return self._rgetattr(tag, self._file_fid(fid).inode)

    def _clunk_frame(self, tag: int, buf: bytearray | memoryview, size: int) -> bytes | None:
        if size != 11:
            raise ProtocolError(errno.EPROTO, "frame size does not match the message")
        (fid,) = _U32.unpack_from(buf, HEADER_SIZE)
        return self.clunk(tag, fid)

    def defer(self, tag: int) -> None:
        """Mark ``tag``'s reply as deferred: :meth:`complete` will deliver it."""
        self.pending.add(tag)

    def complete(self, tag: int, reply: bytes) -> None:
        """Deliver a deferred reply, unless the request was flushed meanwhile."""
        if tag in self.pending:
            self.pending.discard(tag)
            self.deferred_frames.pop(tag, None)
            self._reruns.pop(tag, None)
            if self.on_reply is not None:
                self.on_reply(reply)

    def _abandon(self, tag: int) -> None:
        """Answer a deferred request that will not complete (flushed, or the session reset) with
        EINTR now: a transport such as virtio holds a slot for every request until it is answered,
        and Linux ignores a reply to a request it flushed."""
        if tag in self.pending:
            self.complete(tag, p.lerror(tag, errno.EINTR))

    # ----------------------------------------------------------------- persistence (store)

    def _await_chunks(self, tag: int, frame: bytes, keys: list[str]) -> None:
        """Defer a request until the store has delivered ``keys``, then run its frame again."""
        token = object()
        self.defer(tag)
        self.deferred_frames[tag] = frame
        self._reruns[tag] = token

        def loaded(err: int) -> None:
            if self._reruns.get(tag) is not token or tag not in self.pending:
                return  # flushed (and maybe the tag reused) meanwhile
            del self._reruns[tag]
            if err:
                self.complete(tag, p.lerror(tag, err))
                return
            reply = self.handle_buffer(frame, len(frame))
            if reply is not None:
                self.complete(tag, reply)

        self.fs.load_chunks(keys, loaded)
        return None

    def tick(self, now_ms: float) -> None:
        """Call often (every 100 ms or so) from the transport: write-behind for a stored
        filesystem, and answers for requests a restored state left open."""
        if self.resume_frames:
            self.resume()
        self.fs.tick(now_ms)

    def flush_store(self, done: Callable[[int], None]) -> None:
        """``done(0)`` once everything so far is durably committed (``done(errno)`` if not)."""
        self.fs.persist(True, done)

    def resume(self) -> None:
        """Answer the requests that were deferred when the restored state was saved: run their
        frames again (a read waiting for data, an fsync) or answer EINTR when there is nothing
        to re-run. Call once ``on_reply`` is set; :meth:`tick` calls it too."""
        frames, self.resume_frames = self.resume_frames, []
        for tag, frame in frames:
            if tag not in self.pending:
                continue
            reply = None
            if frame is not None:
                self.pending.discard(tag)
                reply = self.handle_buffer(frame, len(frame))
                if reply is None:
                    continue  # deferred again: answered when that completes
                self.pending.add(tag)
            self.complete(tag, reply if reply is not None else p.lerror(tag, errno.EINTR))

    # ----------------------------------------------------------------- helpers

    def _fid(self, fid: int) -> Fid:
        f = self.fids.get(fid)
        if f is None:
            raise self._missing(fid)
        return f

    def _file_fid(self, fid: int) -> Fid:
        f = self.fids.get(fid)
        if f is None or f.xattr is not None:
            raise self._missing(fid)
        return f

    def _missing(self, fid: int) -> OSError:
        if fid in self.stale_fids:  # its file went away while the machine was saved
            return _fail(errno.ESTALE, f"fid {fid}: its file is gone since the session was saved")
        return _fail(errno.EBADF, f"fid {fid}")

    def _dir_fid(self, fid: int) -> Fid:
        f = self._file_fid(fid)
        if not f.inode.is_dir():
            raise _fail(errno.ENOTDIR)
        return f

    def _new_fid_slot(self, newfid: int, allow: int | None = None) -> None:
        if newfid == NOFID:
            raise _fail(errno.EBADF, "NOFID")
        self.stale_fids.discard(newfid)
        if newfid in self.fids and newfid != allow:
            raise _fail(errno.EBADF, f"fid {newfid} in use")
        if newfid not in self.fids and len(self.fids) >= self.max_fids:
            raise _fail(errno.EMFILE)

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

    @staticmethod
    def _qid_reply(rtype: int, tag: int, inode: Inode) -> bytes:
        return _RQID.pack(_RQID.size, rtype, tag, *qid_of(inode))

    @staticmethod
    def _open_reply(rtype: int, tag: int, inode: Inode) -> bytes:
        # iounit 0: the client then uses msize - 24, the most it can.
        return _RQID_IOUNIT.pack(_RQID_IOUNIT.size, rtype, tag, *qid_of(inode), 0)

    @staticmethod
    def _empty(rtype: int, tag: int) -> bytes:
        return _EMPTY.pack(HEADER_SIZE, rtype, tag)

    def _reset(self) -> None:
        fids, self.fids = self.fids, {}
        self.stale_fids.clear()
        for f in fids.values():
            self._release(f)
        for tag in sorted(self.pending):
            self._abandon(tag)

    def _cred_for(self, uname: str, n_uname: int) -> Cred:
        """uid from n_uname (or uname), gid and groups from the served /etc/passwd and /etc/group."""
        users = self._read_table("/etc/passwd")
        uid = n_uname
        if uid == NONUNAME:
            uid = NOBODY
            for row in users:
                if len(row) > 2 and row[0] == uname and row[2].isdigit():
                    uid = int(row[2])
                    break
        gid = uid
        name = None  # a uid /etc/passwd does not list is in no group but its own
        for row in users:
            if len(row) > 3 and row[2] == str(uid) and row[3].isdigit():
                gid = int(row[3])
                name = row[0]
                break
        groups = set()
        for row in self._read_table("/etc/group"):
            if len(row) > 3 and row[2].isdigit() and name in row[3].split(","):
                groups.add(int(row[2]))  # (an empty member list splits to [""]: never a name)
        return Cred(uid, gid, frozenset(groups), trusted=self.permissions == "client")

    def _read_table(self, path: str) -> list[list[str]]:
        try:
            inode = self.fs.resolve(path)
            if not inode.is_reg() or inode.size > 1 << 20:
                return []
            text = self.fs.read_bytes(inode, 0, inode.size).decode("utf-8", "replace")
        except OSError:
            return []
        return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]

    # ----------------------------------------------------------------- session

    def version_(self, tag: int, msize: int, version: str) -> bytes:
        self._reset()
        if msize < MIN_MSIZE:
            raise _fail(errno.EINVAL, "msize too small")
        self.msize = min(msize, self.max_msize)
        if version == p.VERSION_9P2000L or version.startswith(p.VERSION_9P2000L + "."):
            self.version = p.VERSION_9P2000L
        else:
            self.version = None
            return p.encode(T.Rversion, tag, self.msize, "unknown")
        return p.encode(T.Rversion, tag, self.msize, self.version)

    def auth(self, tag: int, afid: int, uname: str, aname: str, n_uname: int) -> bytes:
        raise _fail(errno.EOPNOTSUPP, "no authentication needed: attach with afid NOFID")

    def attach(self, tag: int, fid: int, afid: int, uname: str, aname: str, n_uname: int) -> bytes:
        if afid != NOFID:
            raise _fail(errno.EBADF, "authentication is not used")
        self._new_fid_slot(fid)
        cred = self._cred_for(uname, n_uname)
        root = self.fs.root
        if aname and aname != "/":
            root = self.fs.resolve(aname, cred=cred)
            if not root.is_dir():
                raise _fail(errno.ENOTDIR, aname)
        self._bind(fid, Fid(root, cred, top=root if root is not self.fs.root else None))
        return self._qid_reply(T.Rattach, tag, root)

    def flush(self, tag: int, oldtag: int) -> bytes:
        self._abandon(oldtag)  # its reply goes out before Rflush, as 9P requires
        return self._empty(T.Rflush, tag)

    def clunk(self, tag: int, fid: int) -> bytes:
        f = self.fids.pop(fid, None)
        if f is None:
            if fid in self.stale_fids:
                self.stale_fids.discard(fid)
                return self._empty(T.Rclunk, tag)
            raise _fail(errno.EBADF, f"fid {fid}")
        live, f.live = f.live, None
        try:
            if f.xattr_name is not None:
                self._commit_xattr(f)
        finally:
            self._release(f)
        if live is not None:  # a live file's write function runs at close
            return self._after(tag, live.close(), lambda: _EMPTY.pack(HEADER_SIZE, _RCLUNK, tag))
        return _EMPTY.pack(HEADER_SIZE, _RCLUNK, tag)

    # ----------------------------------------------------------------- walking and opening

    def walk(self, tag: int, fid: int, newfid: int, wnames: list[str]) -> bytes:
        f = self._file_fid(fid)
        if wnames and f.open_flags >= 0:
            raise _fail(errno.EBADF, "walk from an open fid")
        if newfid != fid:
            self._new_fid_slot(newfid)
        cur = f.inode
        parent, last = f.parent, f.name
        qids = []
        for i, name in enumerate(wnames):
            try:
                nxt = self._step(f, cur, name)
            except OSError:
                if i == 0:
                    raise
                return self._rwalk(tag, qids)
            parent, cur, last = cur, nxt, name
            qids.append(_QID.pack(*qid_of(cur)))
        self._bind(newfid, Fid(cur, f.cred, parent, last, top=f.top))
        return self._rwalk(tag, qids)

    def _step(self, f: Fid, cur: Inode, name: str) -> Inode:
        """One name of a walk from ``cur`` by fid ``f``: ".." stops at the fid's attach point."""
        if cur.entries is None:
            raise _fail(errno.ENOTDIR)
        if "/" in name or not name:
            raise _fail(errno.ENOENT, repr(name))
        if name == ".." and cur is f.top:
            return cur
        try:
            return self.fs.lookup(cur, name, f.cred)
        except FileNotFoundError:
            if cur.backend is None:
                raise
            cur.backend.refresh(self)  # a live directory: the name may exist now
            return self.fs.lookup(cur, name, f.cred)

    @staticmethod
    def _rwalk(tag: int, packed_qids: list[bytes]) -> bytes:
        n = len(packed_qids)
        return b"".join([_RWALK_HDR.pack(9 + 13 * n, T.Rwalk, tag, n), *packed_qids])

    def lopen(self, tag: int, fid: int, flags: int) -> bytes:
        f = self._file_fid(fid)
        if f.is_open:
            raise _fail(errno.EBADF, "fid already open")
        self.fs.open(f.inode, flags, f.cred)
        backend = f.inode.backend
        if backend is not None:
            f.live = backend.open(self, f.cred, flags)
            f.open_flags = flags
            return self._after(tag, f.live.start(), lambda: self._open_reply(T.Rlopen, tag, f.inode))
        f.open_flags = flags
        return self._open_reply(T.Rlopen, tag, f.inode)

    def _after(self, tag: int, pending: Any, make_reply: Callable[[], bytes]) -> bytes | None:
        """The reply to a live file's call: now, or, if it returned an awaitable (an async live
        function), deferred until that finishes."""
        if pending is None:
            return make_reply()
        self.defer(tag)

        def done(future: Any) -> None:
            try:
                future.result()
                reply = make_reply()
            except OSError as exc:
                reply = p.lerror(tag, exc.errno or errno.EIO)
            except BaseException:  # noqa: BLE001 - the live layer logged it; the guest gets EIO
                reply = p.lerror(tag, errno.EIO)
            self.complete(tag, reply)

        pending.add_done_callback(done)
        return None

    def lcreate(self, tag: int, fid: int, name: str, flags: int, mode: int, gid: int) -> bytes:
        f = self._dir_fid(fid)
        if f.is_open:
            raise _fail(errno.EBADF, "fid already open")
        inode = self.fs.create(f.inode, name, mode, f.cred, gid)
        # The creator may write a file it just made read-only: open without permission checks.
        parent = f.inode
        self.fs.ref(inode)
        self.fs.unref(parent)
        f.inode = inode
        f.parent = parent
        f.name = name
        f.open_flags = flags & ~(O_CREAT | O_EXCL | O_TRUNC)
        return self._open_reply(T.Rlcreate, tag, inode)

    def _open_for(self, f: Fid, want_write: bool) -> None:
        if not f.is_open:
            raise _fail(errno.EBADF, "fid not open")
        acc = f.open_flags & O_ACCMODE
        if want_write and acc == O_RDONLY:
            raise _fail(errno.EBADF, "not open for writing")
        if not want_write and acc == O_WRONLY:
            raise _fail(errno.EBADF, "not open for reading")

    def read(self, tag: int, fid: int, offset: int, count: int) -> bytes:
        f = self._fid(fid)
        count = min(count, self.msize - IOHDRSZ)
        if f.xattr is not None:
            if f.xattr_name is not None:
                raise _fail(errno.EBADF, "xattr fid is for writing")
            parts = [f.xattr[offset:offset + count]]
        else:
            self._open_for(f, want_write=False)
            inode = f.inode
            if inode.is_dir():
                raise _fail(errno.EISDIR)
            if f.live is not None:
                parts = [f.live.read(offset, count)] if count > 0 else []
            elif count <= 0 or (offset >= inode.size and inode.backend is None):
                parts = []
            else:
                parts = self.fs.read(inode, offset, count)
        n = sum(len(x) for x in parts)
        return b"".join([_RREAD_HDR.pack(IOHDRSZ + n, T.Rread, tag, n), *parts])

    def write(self, tag: int, fid: int, offset: int, data: memoryview) -> bytes:
        f = self._fid(fid)
        if f.xattr is not None:
            if f.xattr_name is None:
                raise _fail(errno.EBADF, "xattr fid is for reading")
            buf = f.xattr
            end = offset + len(data)
            if end > f.xattr_size:
                raise _fail(errno.ERANGE, "more than the announced xattr size")
            if len(buf) < offset:
                buf.extend(bytes(offset - len(buf)))  # type: ignore[union-attr]
            buf[offset:end] = data  # type: ignore[index]
            return _RWRITE.pack(11, T.Rwrite, tag, len(data))
        self._open_for(f, want_write=True)
        inode = f.inode
        if inode.is_dir():
            raise _fail(errno.EISDIR)
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
        # Answered once a durable commit holding everything up to now is in the store: inline
        # for a synchronous store, else deferred until the store calls back.
        inline: list[int] = []
        deferred = False

        def committed(err: int) -> None:
            if not deferred:
                inline.append(err)
            else:
                self.complete(tag, p.lerror(tag, err) if err else self._empty(T.Rfsync, tag))

        self.fs.persist(True, committed)
        if inline:
            if inline[0]:
                raise _fail(inline[0], "committing to the store")
            return self._empty(T.Rfsync, tag)
        deferred = True
        self.defer(tag)
        self.deferred_frames[tag] = _TFSYNC.pack(_TFSYNC.size, T.Tfsync, tag, fid, datasync)
        return None

    def readdir(self, tag: int, fid: int, offset: int, count: int) -> bytes:
        f = self._dir_fid(fid)
        if not f.is_open:
            raise _fail(errno.EBADF, "directory not open")
        count = min(count, self.msize - IOHDRSZ)
        parts = []
        used = 0
        pack = _QID_ENTRY.pack
        for cookie, name, inode in self.fs.readdir(f.inode, offset):
            raw = name.encode("utf-8", "surrogateescape")
            need = 24 + len(raw)
            if used + need > count:
                if not parts:
                    raise _fail(errno.EINVAL, "readdir buffer too small for an entry")
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
        if kind == _S_IFDIR:
            size, blocks = 4096, 8
        else:
            size, blocks = i.size, i.blocks
        return _RGETATTR.pack(
            _RGETATTR.size, _RGETATTR_T, tag, _GETATTR_VALID, _QID_TYPE.get(kind, 0), 0, i.ino,
            i.mode, i.uid, i.gid, i.nlink, i.rdev, size, 4096, blocks,
            (i.atime // _NS) & _U64, i.atime % _NS, (i.mtime // _NS) & _U64, i.mtime % _NS,
            (i.ctime // _NS) & _U64, i.ctime % _NS, (i.btime // _NS) & _U64, i.btime % _NS,
            i.gen, i.version)

    def setattr(self, tag: int, fid: int, valid: int, mode: int, uid: int, gid: int, size: int,
                atime_sec: int, atime_nsec: int, mtime_sec: int, mtime_nsec: int) -> bytes:
        f = self._file_fid(fid)
        if valid & ~0x1FF:
            raise _fail(errno.EINVAL, "unknown setattr bits")
        if valid:
            if (valid & _SET_ATIME_SET and atime_nsec >= _NS) or (valid & _SET_MTIME_SET and mtime_nsec >= _NS):
                raise _fail(errno.EINVAL, "nanoseconds out of range")
            if valid & _SET_SIZE and size >= 1 << 63:
                raise _fail(errno.EINVAL)
            set_atime = valid & _SET_ATIME
            set_mtime = valid & _SET_MTIME
            self.fs.setattr(
                f.inode, f.cred,
                mode=mode if valid & _SET_MODE else None,
                uid=uid if valid & _SET_UID else None,
                gid=gid if valid & _SET_GID else None,
                size=size if valid & _SET_SIZE else None,
                atime=_signed(atime_sec) * _NS + atime_nsec if set_atime and valid & _SET_ATIME_SET else None,
                mtime=_signed(mtime_sec) * _NS + mtime_nsec if set_mtime and valid & _SET_MTIME_SET else None,
                atime_now=bool(set_atime and not valid & _SET_ATIME_SET),
                mtime_now=bool(set_mtime and not valid & _SET_MTIME_SET),
                ctime=bool(valid & _SET_CTIME))
        return self._empty(T.Rsetattr, tag)

    def statfs(self, tag: int, fid: int) -> bytes:
        self._file_fid(fid)
        s = self.fs.statfs()
        return p.encode(T.Rstatfs, tag, V9FS_MAGIC, s.bsize, s.blocks, s.bfree, s.bavail,
                        s.files, s.ffree, s.fsid, s.namelen)

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

    def mknod(self, tag: int, dfid: int, name: str, mode: int, major: int, minor: int,
              gid: int) -> bytes:
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

    def _name_in_parent(self, f: Fid) -> tuple[Inode, str]:
        """Where the fid's file is linked: its walk parent (or a directory's own parent)."""
        inode = f.inode
        parent = inode.parent if inode.is_dir() else f.parent
        if parent is not None and parent.entries is not None and parent is not inode:
            if f.name is not None and parent.entries.get(f.name) is inode:
                return parent, f.name
            for name, child in parent.entries.items():
                if child is inode:
                    return parent, name
        if inode is self.fs.root:
            raise _fail(errno.EBUSY, "the root")
        raise _fail(errno.ENOENT)

    def rename(self, tag: int, fid: int, dfid: int, name: str) -> bytes:
        f = self._file_fid(fid)
        d = self._dir_fid(dfid)
        parent, old = self._name_in_parent(f)
        self.fs.rename(parent, old, d.inode, name, f.cred)
        f.parent, f.name = d.inode, name
        return self._empty(T.Rrename, tag)

    def unlinkat(self, tag: int, dirfd: int, name: str, flags: int) -> bytes:
        d = self._dir_fid(dirfd)
        if flags & ~AT_REMOVEDIR:
            raise _fail(errno.EINVAL, "unknown unlinkat flags")
        self.fs.unlink(d.inode, name, d.cred, rmdir=bool(flags & AT_REMOVEDIR))
        return self._empty(T.Runlinkat, tag)

    def remove(self, tag: int, fid: int) -> bytes:
        if fid in self.stale_fids:  # Tremove clunks the fid whatever it answers
            self.stale_fids.discard(fid)
            raise _fail(errno.ESTALE, f"fid {fid}: its file is gone since the session was saved")
        f = self._file_fid(fid)
        try:
            parent, name = self._name_in_parent(f)
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
            value = b"".join(n.encode("utf-8", "surrogateescape") + b"\0"
                             for n in self.fs.listxattr(f.inode, f.cred))
        self._bind(newfid, Fid(f.inode, f.cred, f.parent, f.name, xattr=bytes(value), top=f.top))
        return p.encode(T.Rxattrwalk, tag, len(value))

    def xattrcreate(self, tag: int, fid: int, name: str, attr_size: int, flags: int) -> bytes:
        f = self._file_fid(fid)
        if flags & ~3:
            raise _fail(errno.EINVAL, "unknown xattr flags")
        if attr_size > XATTR_SIZE_MAX:
            raise _fail(errno.E2BIG)
        # Check access and CREATE/REPLACE now so the caller hears early; again at clunk.
        self.fs._xattr_access(f.inode, name, f.cred, write=True)
        exists = name in (f.inode.xattrs or {})
        if flags & 1 and exists:
            raise _fail(errno.EEXIST)
        if flags & 2 and not exists:
            raise _fail(errno.ENODATA)
        if f.is_open:
            f.open_flags = -1
        f.xattr = bytearray()
        f.xattr_name = name
        f.xattr_size = attr_size
        f.xattr_flags = flags
        return self._empty(T.Rxattrcreate, tag)

    def _commit_xattr(self, f: Fid) -> None:
        name = f.xattr_name
        value = bytes(f.xattr or b"")
        if f.xattr_size == 0 and not value:
            self.fs.removexattr(f.inode, name, f.cred)  # type: ignore[arg-type]
            return
        if len(value) != f.xattr_size:
            raise _fail(errno.EINVAL, "xattr value shorter than announced")
        self.fs.setxattr(f.inode, name, value, f.xattr_flags, f.cred)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- locks

    @staticmethod
    def _range(start: int, length: int) -> tuple[int, int]:
        if length == 0:
            return start, LOCK_END
        end = start + length - 1
        if end > LOCK_END:
            raise _fail(errno.EOVERFLOW)
        return start, end

    def lock(self, tag: int, fid: int, type: int, flags: int, start: int, length: int,
             proc_id: int, client_id: str) -> bytes:
        f = self._file_fid(fid)
        if type not in (0, 1, 2):
            raise _fail(errno.EINVAL, "bad lock type")
        if not f.is_open:
            raise _fail(errno.EBADF, "fid not open")
        lo, hi = self._range(start, length)
        owner = (self.session_id, client_id, proc_id)
        ok = self.fs.lock(f.inode, owner, type, lo, hi)
        if ok and type != F_UNLCK:
            if f.lock_owners is None:
                f.lock_owners = set()
            f.lock_owners.add(owner)
        status = p.LockStatus.SUCCESS if ok else p.LockStatus.BLOCKED
        return p.encode(T.Rlock, tag, status)

    def getlock(self, tag: int, fid: int, type: int, start: int, length: int, proc_id: int,
                client_id: str) -> bytes:
        f = self._file_fid(fid)
        if type not in (0, 1):
            raise _fail(errno.EINVAL, "bad lock type")
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
