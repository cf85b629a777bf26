"""An independent 9P2000.L client for tests: its own encoder and decoder, written from the wire
reference (shared/9P2000L.md), deliberately not using pyninep_browser.protocol, so the server is
checked against a second implementation. Every reply's size, tag and type are verified.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

NOFID = 0xFFFFFFFF
NOTAG = 0xFFFF


class NinePError(OSError):
    """An Rlerror reply; ``errno`` is the Linux errno the server sent."""


def s(text: str | bytes) -> bytes:
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return struct.pack("<H", len(raw)) + raw


@dataclass
class Stat:
    valid: int
    qid: tuple
    mode: int
    uid: int
    gid: int
    nlink: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime: int  # ns
    mtime: int
    ctime: int
    btime: int
    gen: int
    data_version: int


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def str(self) -> str:
        (n,) = self.take("H")
        raw = self.data[self.pos:self.pos + n]
        assert len(raw) == n, "string past end of reply"
        self.pos += n
        return raw.decode("utf-8", "surrogateescape")

    def qid(self) -> tuple:
        return self.take("BIQ")

    def done(self) -> None:
        assert self.pos == len(self.data), f"{len(self.data) - self.pos} trailing bytes in reply"


class Client:
    """Talks to anything with ``handle(frame) -> reply`` (a Server) one request at a time."""

    def __init__(self, server: Any, msize: int = 1 << 20, uid: int = 0, attach: bool = True) -> None:
        self.server = server
        self.tag = 0
        self.next_fid = 100
        if attach:
            self.msize = self.version(msize)
            self.attach(0, uid=uid)

    # ----------------------------------------------------------------- framing

    def raw(self, frame: bytes) -> bytes | None:
        return self.server.handle(frame)

    def rpc(self, mtype: int, body: bytes, tag: int | None = None) -> Reader:
        if tag is None:
            self.tag = (self.tag + 1) % 0xFFFF
            tag = self.tag
        frame = struct.pack("<IBH", 7 + len(body), mtype, tag) + body
        reply = self.server.handle(frame)
        assert reply is not None, f"no reply to type {mtype}"
        size, rtype, rtag = struct.unpack_from("<IBH", reply)
        assert size == len(reply), "reply size field does not match its length"
        assert rtag == tag, f"reply tag {rtag} for request tag {tag}"
        if rtype == 7:
            assert size == 11, "Rlerror must be 11 bytes"
            (ecode,) = struct.unpack_from("<I", reply, 7)
            raise NinePError(ecode, f"Rlerror {ecode} for type {mtype}")
        assert rtype == mtype + 1, f"reply type {rtype} for request {mtype}"
        return Reader(reply[7:])

    def fid(self) -> int:
        self.next_fid += 1
        return self.next_fid

    # ----------------------------------------------------------------- session

    def version(self, msize: int, version: str = "9P2000.L") -> int:
        r = self.rpc(100, struct.pack("<I", msize) + s(version), tag=NOTAG)
        (got,) = r.take("I")
        self.version_string = r.str()
        r.done()
        return got

    def attach(self, fid: int, uid: int = 0, uname: str = "", aname: str = "", afid: int = NOFID) -> tuple:
        r = self.rpc(104, struct.pack("<II", fid, afid) + s(uname) + s(aname) + struct.pack("<I", uid))
        q = r.qid()
        r.done()
        return q

    def auth(self, afid: int, uname: str = "", aname: str = "", uid: int = 0) -> tuple:
        r = self.rpc(102, struct.pack("<I", afid) + s(uname) + s(aname) + struct.pack("<I", uid))
        return r.qid()

    def flush(self, oldtag: int) -> None:
        self.rpc(108, struct.pack("<H", oldtag)).done()

    def clunk(self, fid: int) -> None:
        self.rpc(120, struct.pack("<I", fid)).done()

    def remove(self, fid: int) -> None:
        self.rpc(122, struct.pack("<I", fid)).done()

    # ----------------------------------------------------------------- walking and opening

    def walk(self, fid: int, newfid: int, names: list[str]) -> list[tuple]:
        body = struct.pack("<IIH", fid, newfid, len(names)) + b"".join(s(n) for n in names)
        r = self.rpc(110, body)
        (n,) = r.take("H")
        qids = [r.qid() for _ in range(n)]
        r.done()
        return qids

    def walk_new(self, path: str, start: int = 0) -> int:
        """A new fid for a path relative to ``start`` (the root fid by default)."""
        f = self.fid()
        names = [p for p in path.split("/") if p]
        qids = self.walk(start, f, names)
        if len(qids) != len(names):
            raise NinePError(2, "partial walk")
        return f

    def lopen(self, fid: int, flags: int) -> tuple[tuple, int]:
        r = self.rpc(12, struct.pack("<II", fid, flags))
        q = r.qid()
        (iounit,) = r.take("I")
        r.done()
        return q, iounit

    def lcreate(self, fid: int, name: str, flags: int, mode: int, gid: int = 0) -> tuple[tuple, int]:
        r = self.rpc(14, struct.pack("<I", fid) + s(name) + struct.pack("<III", flags, mode, gid))
        q = r.qid()
        (iounit,) = r.take("I")
        r.done()
        return q, iounit

    def read(self, fid: int, offset: int, count: int) -> bytes:
        r = self.rpc(116, struct.pack("<IQI", fid, offset, count))
        (n,) = r.take("I")
        data = r.data[r.pos:r.pos + n]
        assert len(data) == n
        r.pos += n
        r.done()
        return data

    def write(self, fid: int, offset: int, data: bytes) -> int:
        r = self.rpc(118, struct.pack("<IQI", fid, offset, len(data)) + data)
        (n,) = r.take("I")
        r.done()
        return n

    def readdir(self, fid: int, offset: int = 0, count: int = 8192) -> list[tuple]:
        """Entries as (qid, offset, type, name)."""
        r = self.rpc(40, struct.pack("<IQI", fid, offset, count))
        (n,) = r.take("I")
        end = r.pos + n
        assert end == len(r.data)
        out = []
        while r.pos < end:
            q = r.qid()
            off, dtype = r.take("QB")
            out.append((q, off, dtype, r.str()))
        r.done()
        return out

    def readdir_all(self, fid: int, count: int = 8192) -> list[str]:
        names, offset = [], 0
        while True:
            batch = self.readdir(fid, offset, count)
            if not batch:
                return names
            names += [e[3] for e in batch]
            offset = batch[-1][1]

    def fsync(self, fid: int, datasync: int = 0) -> None:
        self.rpc(50, struct.pack("<II", fid, datasync)).done()

    # ----------------------------------------------------------------- metadata

    def getattr(self, fid: int, mask: int = 0x3FFF) -> Stat:
        r = self.rpc(24, struct.pack("<IQ", fid, mask))
        (valid,) = r.take("Q")
        q = r.qid()
        mode, uid, gid = r.take("III")
        nlink, rdev, size, blksize, blocks = r.take("QQQQQ")
        t = r.take("QQQQQQQQ")
        gen, dv = r.take("QQ")
        r.done()
        ns = [t[i] * 10**9 + t[i + 1] for i in range(0, 8, 2)]
        return Stat(valid, q, mode, uid, gid, nlink, rdev, size, blksize, blocks, *ns, gen, dv)

    def setattr(self, fid: int, valid: int, mode: int = 0, uid: int = 0, gid: int = 0, size: int = 0,
                atime: tuple[int, int] = (0, 0), mtime: tuple[int, int] = (0, 0)) -> None:
        body = struct.pack("<IIIIIQQQQQ", fid, valid, mode, uid, gid, size, *atime, *mtime)
        self.rpc(26, body).done()

    def statfs(self, fid: int) -> tuple:
        r = self.rpc(8, struct.pack("<I", fid))
        vals = r.take("IIQQQQQQI")
        r.done()
        return vals

    def readlink(self, fid: int) -> str:
        r = self.rpc(22, struct.pack("<I", fid))
        target = r.str()
        r.done()
        return target

    # ----------------------------------------------------------------- directory operations

    def mkdir(self, dfid: int, name: str, mode: int = 0o755, gid: int = 0) -> tuple:
        r = self.rpc(72, struct.pack("<I", dfid) + s(name) + struct.pack("<II", mode, gid))
        return r.qid()

    def symlink(self, dfid: int, name: str, target: str, gid: int = 0) -> tuple:
        r = self.rpc(16, struct.pack("<I", dfid) + s(name) + s(target) + struct.pack("<I", gid))
        return r.qid()

    def mknod(self, dfid: int, name: str, mode: int, major: int = 0, minor: int = 0, gid: int = 0) -> tuple:
        body = struct.pack("<I", dfid) + s(name) + struct.pack("<IIII", mode, major, minor, gid)
        return self.rpc(18, body).qid()

    def link(self, dfid: int, fid: int, name: str) -> None:
        self.rpc(70, struct.pack("<II", dfid, fid) + s(name)).done()

    def rename(self, fid: int, dfid: int, name: str) -> None:
        self.rpc(20, struct.pack("<II", fid, dfid) + s(name)).done()

    def renameat(self, olddir: int, oldname: str, newdir: int, newname: str) -> None:
        body = struct.pack("<I", olddir) + s(oldname) + struct.pack("<I", newdir) + s(newname)
        self.rpc(74, body).done()

    def unlinkat(self, dfid: int, name: str, flags: int = 0) -> None:
        self.rpc(76, struct.pack("<I", dfid) + s(name) + struct.pack("<I", flags)).done()

    # ----------------------------------------------------------------- xattrs and locks

    def xattrwalk(self, fid: int, newfid: int, name: str) -> int:
        r = self.rpc(30, struct.pack("<II", fid, newfid) + s(name))
        (size,) = r.take("Q")
        r.done()
        return size

    def xattrcreate(self, fid: int, name: str, size: int, flags: int = 0) -> None:
        self.rpc(32, struct.pack("<I", fid) + s(name) + struct.pack("<QI", size, flags)).done()

    def getxattr(self, fid: int, name: str) -> bytes:
        x = self.fid()
        size = self.xattrwalk(fid, x, name)
        data = self.read(x, 0, size) if size else b""
        self.clunk(x)
        return data

    def setxattr(self, fid: int, name: str, value: bytes, flags: int = 0) -> None:
        x = self.fid()
        self.walk(fid, x, [])
        self.xattrcreate(x, name, len(value), flags)
        if value:
            self.write(x, 0, value)
        self.clunk(x)

    def lock(self, fid: int, ltype: int, start: int, length: int, proc_id: int = 1,
             client_id: str = "test", flags: int = 0) -> int:
        body = struct.pack("<IBIQQI", fid, ltype, flags, start, length, proc_id) + s(client_id)
        r = self.rpc(52, body)
        (status,) = r.take("B")
        r.done()
        return status

    def getlock(self, fid: int, ltype: int, start: int, length: int, proc_id: int = 1,
                client_id: str = "test") -> tuple:
        body = struct.pack("<IBQQI", fid, ltype, start, length, proc_id) + s(client_id)
        r = self.rpc(54, body)
        vals = r.take("BQQI")
        cid = r.str()
        r.done()
        return (*vals, cid)
